// Package stackenv starts the real servers of a rendered stack for tests:
// PostgreSQL with the rendered flags, pg_hba.conf and roles.sql, and
// PgBouncer with the rendered ini and userlist, on loopback ports.
package stackenv

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/templates"
)

// Database is a running primary and the PgBouncer in front of it.
type Database struct {
	Primary *testsvc.Postgres
	Bouncer *testsvc.PgBouncer
	Name    string // the stack's database
}

// StartDatabase renders the stack's database artifacts with secrets,
// starts a real primary and PgBouncer from them, and points the stack's
// postgres and pgbouncer services' Address at them. Only addresses and
// file paths differ from what a container would get.
func StartDatabase(t testing.TB, stack *stackhcl.Stack, secrets templates.SecretSource) *Database {
	t.Helper()
	artifacts, err := templates.Render(stack, secrets)
	if err != nil {
		t.Fatalf("stackenv: render: %v", err)
	}
	byPath := map[string][]byte{}
	for _, a := range artifacts {
		byPath[a.Path] = a.Data
	}
	pg := stack.First(stackhcl.KindPostgres)
	files := testsvc.Dir(t)
	hba := filepath.Join(files, "pg_hba.conf")
	testsvc.WriteFile(t, hba, byPath[templates.PathPostgresHBA], 0o644)
	roles := filepath.Join(files, "roles.sql")
	testsvc.WriteFile(t, roles, byPath[templates.PathPostgresRoles], 0o600)

	args := slices.Clone(templates.PostgresPrimaryArgs(pg))
	for i, a := range args {
		if strings.HasPrefix(a, "hba_file=") {
			args[i] = "hba_file=" + hba
		}
	}
	primary := testsvc.StartPostgres(t, testsvc.WithArgs(args...))
	primary.Exec("postgres", fmt.Sprintf("CREATE DATABASE %q", pg.Postgres.Database))
	if out, err := primary.Psql("-d", pg.Postgres.Database, "-f", roles); err != nil {
		t.Fatalf("stackenv: roles.sql: %v\n%s", err, out)
	}
	ini := strings.Replace(string(byPath[templates.PathPgBouncerIni]),
		"host="+pg.Name+" port="+strconv.Itoa(pg.Port)+" ",
		"host="+primary.Host+" port="+strconv.Itoa(primary.Port)+" ", 1)
	bouncer := testsvc.StartPgBouncer(t, ini, testsvc.WithAuthFile(byPath[templates.PathPgBouncerUserlist]))

	pg.Address = fmt.Sprintf("%s:%d", primary.Host, primary.Port)
	if pool := stack.First(stackhcl.KindPgBouncer); pool != nil {
		pool.Address = bouncerAddr(bouncer)
	}
	return &Database{Primary: primary, Bouncer: bouncer, Name: pg.Postgres.Database}
}

func bouncerAddr(b *testsvc.PgBouncer) string {
	config, err := pgx.ParseConfig(b.DSN("x", "x", "x"))
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s:%d", config.Host, config.Port)
}

// ApplyMigrations creates django_migrations as user (the migrate role,
// which owns the app's tables) with n applied migrations, connecting
// directly to the primary as Django's migrate does.
func (db *Database) ApplyMigrations(t testing.TB, user, password string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.Primary.DSN(user, password, db.Name))
	if err != nil {
		t.Fatalf("stackenv: connect as %s: %v", user, err)
	}
	defer conn.Close(ctx)
	sql := `CREATE TABLE IF NOT EXISTS django_migrations (id serial PRIMARY KEY, app text NOT NULL, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now());
		INSERT INTO django_migrations (app, name) SELECT 'notes', '000' || g || '_auto' FROM generate_series(1, ` + strconv.Itoa(n) + `) g`
	if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("stackenv: migrations table: %v", err)
	}
}
