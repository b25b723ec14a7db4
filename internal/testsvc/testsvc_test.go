package testsvc

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartPostgres_SuperuserConnectsOverSocketAndTCP(t *testing.T) {
	pg := StartPostgres(t, WithSetting("application_name", "testsvc"))
	pg.Exec("postgres", "CREATE TABLE probe (n int); INSERT INTO probe VALUES (42);")

	out, err := pg.Psql("-d", "postgres", "-Atc", "SELECT n FROM probe")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "42" {
		t.Fatalf("psql read %q, want 42", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.DSN(pg.Superuser, pg.Password, "postgres"))
	if err != nil {
		t.Fatalf("TCP login with the superuser password: %v", err)
	}
	defer conn.Close(ctx)
	var user string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
		t.Fatal(err)
	}
	if user != "postgres" {
		t.Fatalf("current_user = %q", user)
	}
	if _, err := pgx.Connect(ctx, pg.DSN(pg.Superuser, "wrong", "postgres")); err == nil {
		t.Fatal("a wrong password was accepted over TCP")
	}
}

func TestStartPostgres_StopIsIdempotent(t *testing.T) {
	pg := StartPostgres(t)
	pg.Stop()
	pg.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, pg.SuperuserDSN("postgres")); err == nil {
		conn.Close(ctx)
		t.Fatal("server still answers after Stop")
	}
}

func TestStartPgBouncer_PoolsToPostgres(t *testing.T) {
	pg := StartPostgres(t)
	pg.Exec("postgres", "CREATE ROLE app LOGIN PASSWORD 'app-pw'")
	ini := "[databases]\npostgres = host=127.0.0.1 port=" + strconv.Itoa(pg.Port) + " dbname=postgres\n\n" +
		"[pgbouncer]\nlisten_addr = 0.0.0.0\nlisten_port = 6432\nauth_type = scram-sha-256\npool_mode = transaction\n"
	bouncer := StartPgBouncer(t, ini, WithAuthFile([]byte(`"app" "app-pw"`+"\n")))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	config, err := pgx.ParseConfig(bouncer.DSN("app", "app-pw", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	config.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, config)
	if err != nil {
		t.Fatalf("login through pgbouncer: %v\n%s", err, bouncer.Log())
	}
	defer conn.Close(ctx)
	var port int
	if err := conn.QueryRow(ctx, "SELECT current_setting('port')::int").Scan(&port); err != nil {
		t.Fatal(err)
	}
	if port != pg.Port {
		t.Fatalf("pooled to port %d, want the test server's %d", port, pg.Port)
	}
}

func TestPgBouncer_SetIniKeyReplacesOrAppendsInSection(t *testing.T) {
	ini := "; c\n[databases]\nx = host=a\n\n[pgbouncer]\nlisten_port = 6432\nlogfile = /var/log/p.log\n\n[users]\n"
	got, err := SetIniKey(ini, "pgbouncer", "listen_port", "7000")
	if err != nil {
		t.Fatal(err)
	}
	got, err = SetIniKey(got, "pgbouncer", "pidfile", "/tmp/p.pid")
	if err != nil {
		t.Fatal(err)
	}
	want := "; c\n[databases]\nx = host=a\n\n[pgbouncer]\nlisten_port = 7000\nlogfile = /var/log/p.log\npidfile = /tmp/p.pid\n\n[users]\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := SetIniKey(ini, "nope", "a", "b"); err == nil {
		t.Fatal("missing section accepted")
	}
}
