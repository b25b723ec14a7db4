package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Binaries of Debian's postgresql-15.
const (
	PostgresBinDir = "/usr/lib/postgresql/15/bin"
	initdbBin      = PostgresBinDir + "/initdb"
	postgresBin    = PostgresBinDir + "/postgres"
	psqlBin        = PostgresBinDir + "/psql"
)

// Postgres is a running PostgreSQL server.
type Postgres struct {
	Host      string // loopback address it listens on
	Port      int
	Dir       string // instance dir: data, socket, log, and room for test files
	DataDir   string
	SocketDir string
	Superuser string // bootstrap superuser, "postgres"
	Password  string // superuser password; "" when the data was not made by initdb here

	t    testing.TB
	proc *process
}

type postgresConfig struct {
	args         []string
	entrypoint   string
	env          map[string]string
	startTimeout time.Duration
}

// PostgresOption configures StartPostgres.
type PostgresOption func(*postgresConfig)

// WithArgs adds server arguments, such as "-c", "wal_level=replica".
// The port, listen address and socket dir are always the test's own.
func WithArgs(args ...string) PostgresOption {
	return func(c *postgresConfig) { c.args = append(c.args, args...) }
}

// WithSetting adds -c name=value.
func WithSetting(name, value string) PostgresOption {
	return WithArgs("-c", name+"="+value)
}

// WithHBAFile makes the server read pg_hba.conf from path, which the
// service user must be able to read (see WriteFile).
func WithHBAFile(path string) PostgresOption {
	return WithSetting("hba_file", path)
}

// WithEntrypoint starts the server through a shell script instead of
// initdb and postgres: `sh script postgres ARGS...` with PGDATA set to an
// empty path and env added, as a container entrypoint would run. The
// script must create the cluster and exec postgres.
func WithEntrypoint(script string, env map[string]string) PostgresOption {
	return func(c *postgresConfig) {
		c.entrypoint = script
		c.env = env
		if c.startTimeout < 2*time.Minute {
			c.startTimeout = 2 * time.Minute
		}
	}
}

// WithStartTimeout bounds the wait for the server to accept connections.
func WithStartTimeout(timeout time.Duration) PostgresOption {
	return func(c *postgresConfig) { c.startTimeout = timeout }
}

// StartPostgres starts a PostgreSQL server on a free loopback port, with a
// new cluster made by initdb (or by WithEntrypoint's script), and waits
// until the superuser can connect. It stops when the test ends.
func StartPostgres(t testing.TB, opts ...PostgresOption) *Postgres {
	t.Helper()
	RequireBinaries(t, initdbBin, postgresBin, psqlBin)
	config := postgresConfig{startTimeout: 30 * time.Second}
	for _, opt := range opts {
		opt(&config)
	}
	dir := Dir(t)
	pg := &Postgres{
		Host: "127.0.0.1", Port: FreePort(t), Dir: dir,
		DataDir: filepath.Join(dir, "data"), SocketDir: dir, Superuser: "postgres", t: t,
	}
	args := append([]string{}, config.args...)
	// Last, so that they win over the same settings in config.args.
	args = append(args,
		"-c", "listen_addresses="+pg.Host,
		"-c", "port="+strconv.Itoa(pg.Port),
		"-c", "unix_socket_directories="+pg.SocketDir,
		"-c", "logging_collector=off",
	)
	var cmd = command(t, dir, nil, postgresBin, append([]string{"-D", pg.DataDir}, args...)...)
	if config.entrypoint != "" {
		env := map[string]string{"PGDATA": pg.DataDir}
		for key, value := range config.env {
			env[key] = value
		}
		cmd = command(t, dir, env, "/bin/sh", append([]string{config.entrypoint, "postgres"}, args...)...)
	} else {
		pg.initdb(t)
	}
	name := fmt.Sprintf("postgres on %s:%d", pg.Host, pg.Port)
	pg.proc = startProcess(t, name, cmd, filepath.Join(dir, "postgres.log"), syscall.SIGINT)
	pg.proc.waitReady(t, config.startTimeout, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, pg.SuperuserDSN("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return conn.Ping(ctx)
	})
	return pg
}

// initdb creates the cluster: trust on the socket, SCRAM over TCP.
func (pg *Postgres) initdb(t testing.TB) {
	t.Helper()
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	pg.Password = hex.EncodeToString(secret)
	pwfile := filepath.Join(pg.Dir, "superuser.pw")
	WriteFile(t, pwfile, []byte(pg.Password+"\n"), 0o600)
	if _, err := run(t, pg.Dir, nil, initdbBin, "-D", pg.DataDir, "-U", pg.Superuser, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-locale",
		"--no-sync", "--no-instructions"); err != nil {
		t.Fatalf("testsvc: %v", err)
	}
}

// DSN is a TCP connection string for user on database.
func (pg *Postgres) DSN(user, password, database string) string {
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable",
		pg.Host, pg.Port, quoteDSN(user), quoteDSN(password), quoteDSN(database))
}

// SuperuserDSN connects as the superuser through the unix socket, which
// needs a `local` line in pg_hba.conf that lets the superuser in.
func (pg *Postgres) SuperuserDSN(database string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		pg.SocketDir, pg.Port, quoteDSN(pg.Superuser), quoteDSN(database))
}

// Exec runs sql, which may hold several statements, as the superuser on
// database, and fails the test on error.
func (pg *Postgres) Exec(database, sql string) {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.SuperuserDSN(database))
	if err != nil {
		pg.t.Fatalf("testsvc: connecting to %s: %v", database, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		pg.t.Fatalf("testsvc: on %s: %v", database, err)
	}
}

// Psql runs psql as the superuser through the socket, with .psqlrc
// ignored and ON_ERROR_STOP set, and returns its output.
func (pg *Postgres) Psql(args ...string) (string, error) {
	pg.t.Helper()
	base := []string{"-X", "-v", "ON_ERROR_STOP=1", "-h", pg.SocketDir, "-p", strconv.Itoa(pg.Port), "-U", pg.Superuser}
	return run(pg.t, pg.Dir, nil, psqlBin, append(base, args...)...)
}

// Stop shuts the server down (fast mode) and waits for it. The test's
// cleanup does this too; Stop is for tests that restart or replace one.
func (pg *Postgres) Stop() {
	pg.t.Helper()
	if err := pg.proc.stop(30 * time.Second); err != nil {
		pg.t.Fatalf("testsvc: %v", err)
	}
}

// quoteDSN quotes a keyword/value connection string value.
func quoteDSN(value string) string {
	quoted := []byte{'\''}
	for i := 0; i < len(value); i++ {
		if value[i] == '\'' || value[i] == '\\' {
			quoted = append(quoted, '\\')
		}
		quoted = append(quoted, value[i])
	}
	return string(append(quoted, '\''))
}

// Log returns the end of the server's log (with WithEntrypoint, the
// script's output too).
func (pg *Postgres) Log() string { return pg.proc.logTail(16000) }
