package testsvc

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStartRedis_AnswersPingAndRequiresPassword(t *testing.T) {
	rds := StartRedis(t, WithRedisPassword("redis-pw"))
	if rds.Addr == "" || rds.Password != "redis-pw" {
		t.Fatalf("Addr %q, Password %q", rds.Addr, rds.Password)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	client := redis.NewClient(&redis.Options{Addr: rds.Addr, Password: rds.Password, MaxRetries: -1, ContextTimeoutEnabled: true})
	defer client.Close()
	if err := client.Set(ctx, "probe", "42", 0).Err(); err != nil {
		t.Fatalf("SET with the password: %v\n%s", err, rds.Log())
	}
	if got, err := client.Get(ctx, "probe").Result(); err != nil || got != "42" {
		t.Fatalf("GET = %q, %v", got, err)
	}
	if save, err := client.ConfigGet(ctx, "save").Result(); err != nil || save["save"] != "" {
		t.Fatalf("save = %q (%v), want persistence off", save["save"], err)
	}

	anonymous := redis.NewClient(&redis.Options{Addr: rds.Addr, MaxRetries: -1, Protocol: 2})
	defer anonymous.Close()
	if err := anonymous.Ping(ctx).Err(); err == nil {
		t.Fatal("PING without the password was answered")
	}
}

func TestStartRedis_StopIsIdempotent(t *testing.T) {
	rds := StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rds.Ping(ctx); err != nil {
		t.Fatalf("PING before Stop: %v", err)
	}
	rds.Stop()
	rds.Stop()
	if err := rds.Ping(ctx); err == nil {
		t.Fatal("server still answers after Stop")
	}
}
