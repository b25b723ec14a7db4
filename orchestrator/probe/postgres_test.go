package probe_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/probe"
)

// Passwords of the test roles; no message may contain them.
const (
	// Each holds every character that breaks a URL, a shell or a
	// conninfo string when written raw: the probe must quote it.
	pgTestAppPassword    = `app-Pw-7c1e9b0a" ' \ =$%@/:?#&;`
	pgTestReaderPassword = `reader-Pw-52f3d8aa" ' \ =$%@/:?#&;%41`
	pgTestWrongPassword  = "wrong-Pw-9e0d4b21"
)

// probeWithin runs checker as one probe through probe.Run, with a short
// interval, under an overall deadline.
func probeWithin(t *testing.T, checker probe.Checker, timeout, overall time.Duration) probe.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), overall)
	defer cancel()
	spec := probe.Spec{Name: t.Name(), Kind: "test", Check: checker, Timeout: timeout, Interval: 100 * time.Millisecond, Critical: true}
	return probe.Run(ctx, []probe.Spec{spec})[0]
}

// checkOnce makes one attempt under timeout.
func checkOnce(checker probe.Checker, timeout time.Duration) probe.Attempt {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return checker.Check(ctx)
}

func assertNoSecret(t *testing.T, message string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if strings.Contains(message, secret) {
			t.Errorf("message reveals a password: %s", message)
		}
	}
}

// pgStack is a postgres with a "shop" database and two login roles, and
// a PgBouncer in front of it in transaction pooling mode.
type pgStack struct {
	pg      *testsvc.Postgres
	bouncer *testsvc.PgBouncer
}

func (s pgStack) bouncerAddr() string {
	return net.JoinHostPort(s.bouncer.Host, strconv.Itoa(s.bouncer.Port))
}

func (s pgStack) directAddr() string {
	return net.JoinHostPort(s.pg.Host, strconv.Itoa(s.pg.Port))
}

func startPgStack(t *testing.T) pgStack {
	t.Helper()
	pg := testsvc.StartPostgres(t)
	literal := func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
	pg.Exec("postgres", fmt.Sprintf(`CREATE ROLE app LOGIN PASSWORD %s;
		CREATE ROLE reader LOGIN PASSWORD %s;`, literal(pgTestAppPassword), literal(pgTestReaderPassword)))
	pg.Exec("postgres", "CREATE DATABASE shop OWNER app")
	ini := fmt.Sprintf("[databases]\nshop = host=127.0.0.1 port=%d dbname=shop\n\n"+
		"[pgbouncer]\nauth_type = scram-sha-256\npool_mode = transaction\n", pg.Port)
	// PgBouncer's userlist doubles a quote inside a field; nothing else
	// is escaped.
	field := func(v string) string { return `"` + strings.ReplaceAll(v, `"`, `""`) + `"` }
	userlist := field("app") + " " + field(pgTestAppPassword) + "\n" + field("reader") + " " + field(pgTestReaderPassword) + "\n"
	bouncer := testsvc.StartPgBouncer(t, ini, testsvc.WithAuthFile([]byte(userlist)))
	return pgStack{pg: pg, bouncer: bouncer}
}

func TestPostgres_LoginThroughPgBouncerAsEachUserPasses(t *testing.T) {
	stack := startPgStack(t)
	for user, password := range map[string]string{"app": pgTestAppPassword, "reader": pgTestReaderPassword} {
		checker := probe.Postgres(probe.PostgresConfig{Mode: probe.PostgresLogin, Addr: stack.bouncerAddr(),
			User: user, Password: password, Database: "shop"})
		result := probeWithin(t, checker, 5*time.Second, 20*time.Second)
		if !result.Passed() {
			t.Fatalf("login as %s through pgbouncer: %s %q\n%s", user, result.Status, result.Message, stack.bouncer.Log())
		}
		if !strings.Contains(result.Message, strconv.Quote(user)) || !strings.Contains(result.Message, stack.bouncerAddr()) {
			t.Errorf("pass message %q does not name the role and address", result.Message)
		}
		assertNoSecret(t, result.Message, pgTestAppPassword, pgTestReaderPassword)
	}
}

func TestPostgres_WrongPasswordIsFatalAuthentication(t *testing.T) {
	stack := startPgStack(t)
	for name, addr := range map[string]string{"pgbouncer": stack.bouncerAddr(), "postgres": stack.directAddr()} {
		t.Run(name, func(t *testing.T) {
			checker := probe.Postgres(probe.PostgresConfig{Addr: addr, User: "app", Password: pgTestWrongPassword, Database: "shop"})

			attempt := checkOnce(checker, 5*time.Second)
			if attempt.Outcome != probe.Fatal || !strings.Contains(attempt.Message, "authentication") {
				t.Fatalf("wrong password: outcome %d, %q; want Fatal mentioning authentication", attempt.Outcome, attempt.Message)
			}
			assertNoSecret(t, attempt.Message, pgTestWrongPassword, pgTestAppPassword)

			began := time.Now()
			result := probeWithin(t, checker, 5*time.Second, 20*time.Second)
			if result.Passed() || result.Attempts != 1 || time.Since(began) > 5*time.Second {
				t.Errorf("runner: %s after %d attempts in %s; want a failure after one attempt",
					result.Status, result.Attempts, time.Since(began))
			}
		})
	}
}

// PgBouncer 1.18 refuses both with SQLSTATE 08P01; Postgres with 3D000.
func TestPostgres_UnknownDatabaseIsFatal(t *testing.T) {
	stack := startPgStack(t)
	for name, addr := range map[string]string{"pgbouncer": stack.bouncerAddr(), "postgres": stack.directAddr()} {
		attempt := checkOnce(probe.Postgres(probe.PostgresConfig{Addr: addr, User: "app", Password: pgTestAppPassword, Database: "nodb"}), 5*time.Second)
		if attempt.Outcome != probe.Fatal || !strings.Contains(attempt.Message, `database "nodb" at `+addr+" does not exist") {
			t.Errorf("%s: outcome %d, %q; want Fatal saying the database does not exist", name, attempt.Outcome, attempt.Message)
		}
	}
}

func TestPostgres_StoppedServerAndClosedPortFailNamingTheAddress(t *testing.T) {
	stack := startPgStack(t)
	addr := stack.directAddr()
	checker := probe.Postgres(probe.PostgresConfig{Addr: addr, User: "app", Password: pgTestAppPassword, Database: "shop"})
	if attempt := checkOnce(checker, 5*time.Second); attempt.Outcome != probe.Pass {
		t.Fatalf("before Stop: %d %q", attempt.Outcome, attempt.Message)
	}
	stack.pg.Stop()
	attempt := checkOnce(checker, 5*time.Second)
	t.Logf("stopped server: %s", attempt.Message)
	if attempt.Outcome != probe.Fail || !strings.Contains(attempt.Message, addr) {
		t.Errorf("stopped server: outcome %d, %q; want Fail naming %s", attempt.Outcome, attempt.Message, addr)
	}
	result := probeWithin(t, checker, time.Second, 1500*time.Millisecond)
	if result.Status != probe.StatusFail || result.Attempts < 2 || !strings.Contains(result.Message, addr) {
		t.Errorf("runner on a stopped server: %s after %d attempts, %q; want fail after retrying", result.Status, result.Attempts, result.Message)
	}

	// PgBouncer holds the login while it cannot reach the server: the
	// attempt's timeout ends it, and the probe fails naming the pooler.
	pooled := probe.Postgres(probe.PostgresConfig{Addr: stack.bouncerAddr(), User: "app", Password: pgTestAppPassword, Database: "shop"})
	result = probeWithin(t, pooled, time.Second, 2500*time.Millisecond)
	t.Logf("pgbouncer before a stopped server: %s", result.Message)
	if result.Status != probe.StatusFail || !strings.Contains(result.Message, stack.bouncerAddr()) {
		t.Errorf("pgbouncer before a stopped server: %s, %q; want fail naming %s", result.Status, result.Message, stack.bouncerAddr())
	}

	closed := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	attempt = checkOnce(probe.Postgres(probe.PostgresConfig{Addr: closed, User: "app", Password: pgTestAppPassword, Database: "shop"}), 5*time.Second)
	if attempt.Outcome != probe.Fail || !strings.Contains(attempt.Message, closed) {
		t.Errorf("closed port: outcome %d, %q; want Fail naming %s", attempt.Outcome, attempt.Message, closed)
	}
	assertNoSecret(t, attempt.Message, pgTestAppPassword)
}

func TestPostgres_MigrationsCountMatchMismatchAndMissingTable(t *testing.T) {
	stack := startPgStack(t)
	migrations := func(expect int) probe.Attempt {
		return checkOnce(probe.Postgres(probe.PostgresConfig{Mode: probe.PostgresMigrations, Addr: stack.bouncerAddr(),
			User: "app", Password: pgTestAppPassword, Database: "shop", ExpectMigrations: expect}), 5*time.Second)
	}

	attempt := migrations(-1)
	if attempt.Outcome != probe.Fatal || !strings.Contains(attempt.Message, "django_migrations") {
		t.Fatalf("missing table: outcome %d, %q; want Fatal naming django_migrations", attempt.Outcome, attempt.Message)
	}

	stack.pg.Exec("shop", `SET ROLE app;
		CREATE TABLE django_migrations (id serial PRIMARY KEY, app varchar(255), name varchar(255), applied timestamptz);
		INSERT INTO django_migrations (app, name, applied) VALUES
			('contenttypes', '0001_initial', now()), ('auth', '0001_initial', now()), ('shop', '0001_initial', now());`)
	for _, expect := range []int{-1, 3} {
		if attempt := migrations(expect); attempt.Outcome != probe.Pass || !strings.Contains(attempt.Message, "3 migrations") {
			t.Errorf("expect %d with 3 applied: outcome %d, %q; want Pass", expect, attempt.Outcome, attempt.Message)
		}
	}
	attempt = migrations(4)
	if attempt.Outcome != probe.Fail || !strings.Contains(attempt.Message, "expected 4") || !strings.Contains(attempt.Message, "found 3") {
		t.Errorf("expect 4 with 3 applied: outcome %d, %q; want Fail saying expected 4, found 3", attempt.Outcome, attempt.Message)
	}
}

// startPgReplica starts a streaming replica of primary, made with
// pg_basebackup -R over the primary's socket, with application_name name.
func startPgReplica(t *testing.T, primary *testsvc.Postgres, name string) *testsvc.Postgres {
	t.Helper()
	script := filepath.Join(testsvc.Dir(t), "replica.sh")
	testsvc.WriteFile(t, script, []byte(`set -e
shift # "postgres"
pg_basebackup -D "$PGDATA" -R -X stream -c fast \
	-d "host=$PRIMARY_SOCKET port=$PRIMARY_PORT user=postgres application_name=$REPLICA_NAME"
chmod 700 "$PGDATA"
exec postgres -D "$PGDATA" "$@"
`), 0o755)
	env := map[string]string{"PRIMARY_SOCKET": primary.SocketDir, "PRIMARY_PORT": strconv.Itoa(primary.Port), "REPLICA_NAME": name}
	return testsvc.StartPostgres(t, testsvc.WithEntrypoint(script, env), testsvc.WithSetting("cluster_name", name))
}

func TestPostgres_ReplicationAndRecoveryAgainstARealReplica(t *testing.T) {
	primary := testsvc.StartPostgres(t)
	replica := startPgReplica(t, primary, "replica-a")
	startPgReplica(t, primary, "replica-b")
	primaryAddr := net.JoinHostPort(primary.Host, strconv.Itoa(primary.Port))
	replicaAddr := net.JoinHostPort(replica.Host, strconv.Itoa(replica.Port))
	config := func(mode probe.PostgresMode, addr string, replicas ...string) probe.PostgresConfig {
		// The replica is a copy of the primary: same roles, same password.
		return probe.PostgresConfig{Mode: mode, Addr: addr, User: "postgres", Password: primary.Password,
			Database: "postgres", Replicas: replicas}
	}

	t.Run("streaming replicas pass", func(t *testing.T) {
		result := probeWithin(t, probe.Postgres(config(probe.PostgresReplication, primaryAddr, "replica-a", "replica-b")), 3*time.Second, 30*time.Second)
		if !result.Passed() || !strings.Contains(result.Message, `"replica-a" (streaming`) || !strings.Contains(result.Message, `"replica-b" (streaming`) {
			t.Fatalf("%s after %d attempts: %q\n%s", result.Status, result.Attempts, result.Message, replica.Log())
		}
		assertNoSecret(t, result.Message, primary.Password)
		if attempt := checkOnce(probe.Postgres(config(probe.PostgresReplication, primaryAddr)), 5*time.Second); attempt.Outcome != probe.Pass {
			t.Errorf("no replicas named, one streaming: %d %q; want Pass", attempt.Outcome, attempt.Message)
		}
	})
	t.Run("missing replica fails naming it", func(t *testing.T) {
		attempt := checkOnce(probe.Postgres(config(probe.PostgresReplication, primaryAddr, "replica-a", "replica-c", "replica-b")), 5*time.Second)
		if attempt.Outcome != probe.Fail || !strings.Contains(attempt.Message, `replica "replica-c" is not connected`) ||
			strings.Contains(attempt.Message, `replica "replica-a" is`) || strings.Contains(attempt.Message, `replica "replica-b" is`) {
			t.Errorf("outcome %d, %q; want Fail naming only replica-c", attempt.Outcome, attempt.Message)
		}
	})
	t.Run("recovery is true on the replica, false on the primary", func(t *testing.T) {
		if attempt := checkOnce(probe.Postgres(config(probe.PostgresRecovery, replicaAddr)), 5*time.Second); attempt.Outcome != probe.Pass {
			t.Errorf("replica: %d %q; want Pass", attempt.Outcome, attempt.Message)
		}
		attempt := checkOnce(probe.Postgres(config(probe.PostgresRecovery, primaryAddr)), 5*time.Second)
		if attempt.Outcome != probe.Fail || !strings.Contains(attempt.Message, "found a primary") {
			t.Errorf("primary: %d %q; want Fail saying it found a primary", attempt.Outcome, attempt.Message)
		}
	})
	t.Run("replication asked of a replica is fatal", func(t *testing.T) {
		attempt := checkOnce(probe.Postgres(config(probe.PostgresReplication, replicaAddr, "replica-a")), 5*time.Second)
		if attempt.Outcome != probe.Fatal || !strings.Contains(attempt.Message, replicaAddr) {
			t.Errorf("%d %q; want Fatal naming %s", attempt.Outcome, attempt.Message, replicaAddr)
		}
	})
	t.Run("paused replay lags and fails with the byte count", func(t *testing.T) {
		replica.Exec("postgres", "SELECT pg_wal_replay_pause()")
		primary.Exec("postgres", "CREATE TABLE filler AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 20000) g")
		cfg := config(probe.PostgresReplication, primaryAddr, "replica-a", "replica-b")
		cfg.MaxLagBytes = 64 << 10
		var attempt probe.Attempt
		for range 50 { // until replica-b has replayed the table
			if attempt = checkOnce(probe.Postgres(cfg), 5*time.Second); !strings.Contains(attempt.Message, `replica "replica-b"`) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if attempt.Outcome != probe.Fail || !strings.Contains(attempt.Message, `replication from `+primaryAddr+`: replica "replica-a" lags by`) ||
			!strings.Contains(attempt.Message, "(max 65536)") || strings.Contains(attempt.Message, `replica "replica-b"`) {
			t.Errorf("%d %q; want Fail saying only replica-a lags", attempt.Outcome, attempt.Message)
		}
		t.Logf("paused replica: %s", attempt.Message)
		replica.Exec("postgres", "SELECT pg_wal_replay_resume()")
		if result := probeWithin(t, probe.Postgres(cfg), 3*time.Second, 30*time.Second); !result.Passed() {
			t.Errorf("after resuming replay: %s %q", result.Status, result.Message)
		}
	})
}
