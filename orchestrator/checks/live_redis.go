package checks

// live_redis.go reaches the cache: monitoring.E010.

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// liveQuietRedis silences go-redis's package-wide logger, which otherwise
// prints every failed dial to stderr; the check reports failures itself.
var liveQuietRedis sync.Once

type liveDiscardRedisLog struct{}

func (liveDiscardRedisLog) Printf(context.Context, string, ...any) {}

// redis is monitoring.E010: one PING to django.cache's address, with no
// retries, under the step timeout.
func (run *liveRun) redis(ctx context.Context) []Finding {
	dj := &run.stack.Django
	if dj.Cache == "" {
		return nil
	}
	svc := run.stack.Service(dj.Cache)
	if svc == nil {
		return []Finding{{Rule: liveRedisUnreachable, Range: run.djangoRange("cache"),
			Message: fmt.Sprintf("django.cache names %q, which is no service of the stack", dj.Cache)}}
	}
	if svc.Address == "" {
		return []Finding{run.noAddress(svc, liveRedisUnreachable)}
	}
	liveQuietRedis.Do(func() { redis.SetLogger(liveDiscardRedisLog{}) })
	addr := liveWithDefaultPort(svc.Address, svc.Port)
	rdb := redis.NewClient(&redis.Options{
		Addr:                  addr,
		Protocol:              2, // plain PING, no HELLO: works with any Redis and proxy
		DisableIdentity:       true,
		DialTimeout:           run.timeout,
		ReadTimeout:           run.timeout,
		WriteTimeout:          run.timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // one attempt
		DialerRetries:         1,
		PoolSize:              1,
	})
	defer rdb.Close()
	stepCtx, cancel := context.WithTimeout(ctx, run.timeout)
	defer cancel()
	if err := rdb.Ping(stepCtx).Err(); err != nil {
		at := svc.DeclRange
		if r, ok := svc.Ranges["address"]; ok && r.Filename != "" {
			at = r
		}
		return []Finding{{Rule: liveRedisUnreachable, Range: at, Message: fmt.Sprintf(
			"cannot connect to the Redis cache (service %q at %s): %s", svc.Name, addr, liveStepError(err, run.timeout))}}
	}
	return nil
}
