package probe

// redis.go checks a Redis server: a write/read/delete roundtrip, and
// memory use against maxmemory.

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultMaxMemoryRatio is the share of maxmemory a Redis probe tolerates.
const DefaultMaxMemoryRatio = 0.9

// RedisConfig says which Redis to check.
type RedisConfig struct {
	Addr     string // host:port
	Password string // "" = no AUTH
	DB       int
	// MaxMemoryRatio fails the probe when used_memory/maxmemory exceeds
	// it (only when maxmemory is set); 0 = DefaultMaxMemoryRatio.
	MaxMemoryRatio float64
}

const (
	redisProbeKeyPrefix  = "obcd:probe:"
	redisProbeKeyTTL     = 30 * time.Second // the key outlives no failed attempt for long
	redisDefaultTimeout  = 10 * time.Second // per I/O when ctx has no deadline
	redisInfoUsedMemory  = "used_memory"
	redisInfoMaxMemory   = "maxmemory"
	redisPasswordRedacts = "[password redacted]"
)

// redisQuietLog silences go-redis's process-wide logger, which otherwise
// prints every failed dial to stderr; probes report failures themselves.
var redisQuietLog sync.Once

type redisDiscardLog struct{}

func (redisDiscardLog) Printf(context.Context, string, ...any) {}

type redisChecker struct{ cfg RedisConfig }

// Redis returns a Checker that writes a unique short-lived key, reads it
// back, deletes it, and compares used_memory with maxmemory.
func Redis(cfg RedisConfig) Checker {
	if cfg.MaxMemoryRatio <= 0 {
		cfg.MaxMemoryRatio = DefaultMaxMemoryRatio
	}
	return redisChecker{cfg: cfg}
}

// newRedisClient is a client for one attempt: one connection, no retries,
// ctx deadlines honoured, no HELLO or CLIENT SETINFO (any Redis or proxy).
func newRedisClient(addr, password string, db int) *redis.Client {
	redisQuietLog.Do(func() { redis.SetLogger(redisDiscardLog{}) })
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		Password:              password,
		DB:                    db,
		Protocol:              2,
		DisableIdentity:       true,
		DialTimeout:           redisDefaultTimeout,
		ReadTimeout:           redisDefaultTimeout,
		WriteTimeout:          redisDefaultTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		PoolSize:              1,
	})
}

// Check implements Checker.
func (c redisChecker) Check(ctx context.Context) Attempt {
	client := newRedisClient(c.cfg.Addr, c.cfg.Password, c.cfg.DB)
	defer client.Close()
	if attempt, ok := c.roundtrip(ctx, client); !ok {
		return c.redact(attempt)
	}
	return c.redact(c.memory(ctx, client))
}

// roundtrip writes, reads back and deletes a unique key.
func (c redisChecker) roundtrip(ctx context.Context, client *redis.Client) (Attempt, bool) {
	key := redisProbeKeyPrefix + rand.Text() // unique: 26 random base32 characters
	value := key + ":value"
	if err := client.Set(ctx, key, value, redisProbeKeyTTL).Err(); err != nil {
		if redis.IsOOMError(err) {
			return c.outOfMemory(ctx, client, err), false
		}
		return c.commandFailure("SET", err), false
	}
	got, err := client.Get(ctx, key).Result()
	if err != nil {
		return c.commandFailure("GET", err), false
	}
	if got != value {
		return Failed("redis at %s: GET %s returned %q, want the %q just SET", c.cfg.Addr, key, got, value), false
	}
	if err := client.Del(ctx, key).Err(); err != nil {
		return c.commandFailure("DEL", err), false
	}
	return Attempt{}, true
}

// memory compares used_memory with maxmemory from INFO memory.
func (c redisChecker) memory(ctx context.Context, client *redis.Client) Attempt {
	used, maxMemory, err := redisMemory(ctx, client)
	if err != nil {
		return c.commandFailure("INFO memory", err)
	}
	if maxMemory == 0 {
		return Passed("redis at %s: SET/GET/DEL ok; maxmemory not set (0), used_memory %d bytes", c.cfg.Addr, used)
	}
	ratio := float64(used) / float64(maxMemory)
	if ratio > c.cfg.MaxMemoryRatio {
		return Failed("redis at %s: used_memory %d bytes is %.0f%% of maxmemory %d bytes, over the %.0f%% allowed",
			c.cfg.Addr, used, ratio*100, maxMemory, c.cfg.MaxMemoryRatio*100)
	}
	return Passed("redis at %s: SET/GET/DEL ok; used_memory %d of maxmemory %d bytes (%.0f%%)",
		c.cfg.Addr, used, maxMemory, ratio*100)
}

// outOfMemory explains a write refused for memory, with the numbers.
func (c redisChecker) outOfMemory(ctx context.Context, client *redis.Client, setErr error) Attempt {
	used, maxMemory, err := redisMemory(ctx, client)
	if err != nil {
		return Failed("redis at %s refused SET: %v", c.cfg.Addr, setErr)
	}
	return Failed("redis at %s refused SET: %v (used_memory %d bytes, maxmemory %d bytes)", c.cfg.Addr, setErr, used, maxMemory)
}

// commandFailure says why a command failed: refused credentials or
// permissions are fatal, anything else may pass on the next attempt.
func (c redisChecker) commandFailure(command string, err error) Attempt {
	switch {
	case redis.IsAuthError(err):
		return Fatalf("redis at %s: authentication failed on %s: %v", c.cfg.Addr, command, err)
	case redis.IsPermissionError(err):
		return Fatalf("redis at %s: %s not permitted: %v", c.cfg.Addr, command, err)
	default:
		return Failed("redis at %s: %s failed: %v", c.cfg.Addr, command, err)
	}
}

func (c redisChecker) redact(attempt Attempt) Attempt {
	if c.cfg.Password != "" {
		attempt.Message = strings.ReplaceAll(attempt.Message, c.cfg.Password, redisPasswordRedacts)
	}
	return attempt
}

// redisMemory reads used_memory and maxmemory from INFO memory.
func redisMemory(ctx context.Context, client *redis.Client) (used, maxMemory int64, err error) {
	info, err := client.Info(ctx, "memory").Result()
	if err != nil {
		return 0, 0, err
	}
	fields := redisInfoFields(info)
	used, err = redisInfoInt(fields, redisInfoUsedMemory)
	if err != nil {
		return 0, 0, err
	}
	maxMemory, err = redisInfoInt(fields, redisInfoMaxMemory)
	return used, maxMemory, err
}

// redisInfoFields parses INFO's "key:value" lines.
func redisInfoFields(info string) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if key, value, ok := strings.Cut(line, ":"); ok {
			fields[key] = value
		}
	}
	return fields
}

func redisInfoInt(fields map[string]string, key string) (int64, error) {
	raw, ok := fields[key]
	if !ok {
		return 0, fmt.Errorf("INFO memory has no %s field", key)
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("INFO memory field %s = %q is not a number", key, raw)
	}
	return n, nil
}
