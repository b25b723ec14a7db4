package probe_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/redis/go-redis/v9"
)

const redisTestPassword = "redis-Pw-3a9c61f0"

func redisTestClient(t *testing.T, rds *testsvc.Redis) *redis.Client {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: rds.Addr, Password: rds.Password, MaxRetries: -1,
		ContextTimeoutEnabled: true, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { client.Close() })
	return client
}

func TestRedis_RoundtripPassesAndLeavesNoKey(t *testing.T) {
	rds := testsvc.StartRedis(t, testsvc.WithRedisPassword(redisTestPassword))
	result := probeWithin(t, probe.Redis(probe.RedisConfig{Addr: rds.Addr, Password: redisTestPassword, DB: 2}), 2*time.Second, 10*time.Second)
	if !result.Passed() || !strings.Contains(result.Message, "maxmemory not set") || !strings.Contains(result.Message, rds.Addr) {
		t.Fatalf("%s: %q; want a pass noting maxmemory is not set", result.Status, result.Message)
	}
	assertNoSecret(t, result.Message, redisTestPassword)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := redisTestClient(t, rds)
	for db := range 16 {
		if err := client.Do(ctx, "SELECT", db).Err(); err != nil {
			t.Fatal(err)
		}
		if keys, err := client.Keys(ctx, "*").Result(); err != nil || len(keys) > 0 {
			t.Errorf("db %d holds %q (%v) after the probe; want its key deleted", db, keys, err)
		}
	}
}

func TestRedis_WrongPasswordIsFatalAuthentication(t *testing.T) {
	rds := testsvc.StartRedis(t, testsvc.WithRedisPassword(redisTestPassword))
	for _, password := range []string{"wrong-" + redisTestPassword, ""} {
		attempt := checkOnce(probe.Redis(probe.RedisConfig{Addr: rds.Addr, Password: password}), 5*time.Second)
		if attempt.Outcome != probe.Fatal || !strings.Contains(attempt.Message, "authentication") || !strings.Contains(attempt.Message, rds.Addr) {
			t.Errorf("password %q: outcome %d, %q; want Fatal mentioning authentication and the address", password, attempt.Outcome, attempt.Message)
		}
		if password != "" {
			assertNoSecret(t, attempt.Message, password)
		}
	}
}

func TestRedis_StoppedServerFailsNamingTheAddress(t *testing.T) {
	rds := testsvc.StartRedis(t)
	checker := probe.Redis(probe.RedisConfig{Addr: rds.Addr})
	if attempt := checkOnce(checker, 5*time.Second); attempt.Outcome != probe.Pass {
		t.Fatalf("before Stop: %d %q", attempt.Outcome, attempt.Message)
	}
	rds.Stop()
	result := probeWithin(t, checker, time.Second, 1500*time.Millisecond)
	if result.Status != probe.StatusFail || result.Attempts < 2 || !strings.Contains(result.Message, rds.Addr) {
		t.Errorf("%s after %d attempts: %q; want fail after retrying, naming %s", result.Status, result.Attempts, result.Message, rds.Addr)
	}
	t.Logf("stopped redis: %s", result.Message)
}

func TestRedis_MemoryAboveTheRatioFailsNamingUsedAndMax(t *testing.T) {
	const maxMemory = 4 << 20
	rds := testsvc.StartRedis(t, testsvc.WithRedisArgs("--maxmemory", strconv.Itoa(maxMemory), "--maxmemory-policy", "noeviction"))
	checker := probe.Redis(probe.RedisConfig{Addr: rds.Addr})
	attempt := checkOnce(checker, 5*time.Second)
	if attempt.Outcome != probe.Pass || !strings.Contains(attempt.Message, fmt.Sprintf("of maxmemory %d bytes", maxMemory)) {
		t.Fatalf("nearly empty: %d %q; want Pass with the maxmemory", attempt.Outcome, attempt.Message)
	}

	used := redisFill(t, rds, 0.94, maxMemory)
	attempt = checkOnce(checker, 5*time.Second)
	if attempt.Outcome != probe.Fail || !strings.Contains(attempt.Message, fmt.Sprintf("of maxmemory %d bytes, over the 90%% allowed", maxMemory)) ||
		!strings.Contains(attempt.Message, "used_memory ") {
		t.Fatalf("filled to %d of %d bytes: %d %q; want Fail naming used_memory and maxmemory", used, maxMemory, attempt.Outcome, attempt.Message)
	}
	t.Logf("full redis: %s", attempt.Message)

	relaxed := checkOnce(probe.Redis(probe.RedisConfig{Addr: rds.Addr, MaxMemoryRatio: 0.99}), 5*time.Second)
	if relaxed.Outcome != probe.Pass {
		t.Errorf("ratio 0.99 at %d of %d bytes: %d %q; want Pass", used, maxMemory, relaxed.Outcome, relaxed.Message)
	}
}

// redisFill writes 16 KiB values until used_memory is above ratio of
// maxMemory, and returns used_memory.
func redisFill(t *testing.T, rds *testsvc.Redis, ratio float64, maxMemory int64) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := redisTestClient(t, rds)
	value := strings.Repeat("x", 16<<10)
	for i := 0; ; i++ {
		info, err := client.Info(ctx, "memory").Result()
		if err != nil {
			t.Fatal(err)
		}
		var used int64
		for _, line := range strings.Split(info, "\r\n") {
			if raw, ok := strings.CutPrefix(line, "used_memory:"); ok {
				used, _ = strconv.ParseInt(raw, 10, 64)
			}
		}
		if float64(used) > ratio*float64(maxMemory) {
			return used
		}
		if err := client.Set(ctx, fmt.Sprintf("filler:%d", i), value, 0).Err(); err != nil {
			t.Fatalf("filling at %d of %d bytes: %v", used, maxMemory, err)
		}
	}
}
