package testsvc

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RedisBin is Debian's redis-server.
const RedisBin = "/usr/bin/redis-server"

// Redis is a running redis-server.
type Redis struct {
	Host     string // loopback address it listens on
	Port     int
	Addr     string // host:port
	Password string // requirepass; "" when none
	Dir      string // working dir: log, and where a dump would go

	t    testing.TB
	proc *process
}

type redisConfig struct {
	password string
	args     []string
}

// RedisOption configures StartRedis.
type RedisOption func(*redisConfig)

// WithRedisPassword sets requirepass: clients must AUTH with password.
func WithRedisPassword(password string) RedisOption {
	return func(c *redisConfig) { c.password = password }
}

// WithRedisArgs adds server arguments, such as "--maxmemory", "16mb". The
// port, bind address, persistence and dir are always the test's own.
func WithRedisArgs(args ...string) RedisOption {
	return func(c *redisConfig) { c.args = append(c.args, args...) }
}

// StartRedis starts redis-server on a free loopback port, without
// persistence, in a temp dir, and waits until it answers PING. It runs as
// ServiceUser when the test runs as root, like the other servers here,
// and stops when the test ends.
func StartRedis(t testing.TB, opts ...RedisOption) *Redis {
	t.Helper()
	RequireBinaries(t, RedisBin)
	var config redisConfig
	for _, opt := range opts {
		opt(&config)
	}
	dir := Dir(t)
	rds := &Redis{Host: "127.0.0.1", Port: FreePort(t), Dir: dir, Password: config.password, t: t}
	rds.Addr = net.JoinHostPort(rds.Host, strconv.Itoa(rds.Port))
	args := append([]string{}, config.args...)
	// Last, so that they win over the same settings in config.args.
	args = append(args,
		"--port", strconv.Itoa(rds.Port),
		"--bind", rds.Host,
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--logfile", "",
	)
	if config.password != "" {
		args = append(args, "--requirepass", config.password)
	}
	cmd := command(t, dir, nil, RedisBin, args...)
	rds.proc = startProcess(t, "redis on "+rds.Addr, cmd, filepath.Join(dir, "redis.log"), syscall.SIGTERM)
	rds.proc.waitReady(t, 15*time.Second, func(ctx context.Context) error { return rds.Ping(ctx) })
	return rds
}

// Ping sends PING (after AUTH when the server has a password) over a new
// connection and wants +PONG back. It speaks RESP directly, so it needs no
// client library and logs nothing.
func (rds *Redis) Ping(ctx context.Context) error {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", rds.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return err
		}
	}
	reader := bufio.NewReader(conn)
	if rds.Password != "" {
		if err := redisCommand(conn, reader, "+OK", "AUTH", rds.Password); err != nil {
			return err
		}
	}
	return redisCommand(conn, reader, "+PONG", "PING")
}

// redisCommand sends one command as a RESP array and checks the reply line.
func redisCommand(conn net.Conn, reader *bufio.Reader, want string, args ...string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, arg := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(arg), arg)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return err
	}
	line, err := reader.ReadString('\n')
	if err != nil {
		return err
	}
	if got := strings.TrimRight(line, "\r\n"); got != want {
		return fmt.Errorf("redis answered %s with %q, want %q", args[0], got, want)
	}
	return nil
}

// Stop shuts the server down and waits for it. The test's cleanup does
// this too; Stop is for tests that need the server gone.
func (rds *Redis) Stop() {
	rds.t.Helper()
	if err := rds.proc.stop(30 * time.Second); err != nil {
		rds.t.Fatalf("testsvc: %v", err)
	}
}

// Log returns the end of the server's log.
func (rds *Redis) Log() string { return rds.proc.logTail(16000) }
