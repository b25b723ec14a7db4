package templates

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/internal/testsvc"
)

// dbTestSecrets holds a test password for every secret of obcms. Each
// holds every character that breaks a URL, a shell, a conninfo string or
// interpolation when written raw (hostileChars: " ' \ space = $ % @ / :
// ? # & ;), so that a quoting mistake anywhere shows as a login, a
// connection or a replica that fails.
func dbTestSecrets() MapSecrets {
	return MapSecrets{
		"postgres_password":    "super-Pw-0" + hostileChars,
		"replication_password": `repl'Pw"1\x` + hostileChars + "${HOME}",
		"obcms_user_password":  `user'Pw"2 with spaces` + hostileChars + "%41",
		"obcms_admin_password": `admin\Pw'3` + hostileChars + "$(id)",
		"obcms_stats_password": `stats"Pw;4` + hostileChars + "`id`",
	}
}

func renderDatabaseByPath(t *testing.T, stack *stackhcl.Stack, secrets SecretSource) map[string]Artifact {
	t.Helper()
	artifacts, err := renderDatabase(stack, secrets)
	if err != nil {
		t.Fatalf("renderDatabase: %v", err)
	}
	return indexByPath(t, artifacts)
}

func dbArtifact(t *testing.T, byPath map[string]Artifact, path string, mode int) []byte {
	t.Helper()
	artifact, ok := byPath[path]
	if !ok {
		t.Fatalf("no artifact %s", path)
	}
	if int(artifact.Mode) != mode {
		t.Fatalf("%s has mode %o, want %o", path, artifact.Mode, mode)
	}
	return artifact.Data
}

// replaceOnce replaces old with new in s and fails unless old occurs
// exactly once: a rewrite that silently did nothing would test the
// container config instead of the test one.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("%q occurs %d times, want once, in:\n%s", old, n, s)
	}
	return strings.Replace(s, old, new, 1)
}

// testPostgresArgs rewrites the container's hba_file path in rendered
// postgres arguments to the test's copy of pg_hba.conf. (testsvc replaces
// port and listen_addresses with the test's own; nothing else changes.)
func testPostgresArgs(t *testing.T, args []string, hbaPath string) []string {
	t.Helper()
	out := slices.Clone(args)
	index := slices.Index(out, "hba_file="+ContainerPostgresHBA)
	if index < 0 {
		t.Fatalf("rendered args have no hba_file=%s: %q", ContainerPostgresHBA, args)
	}
	out[index] = "hba_file=" + hbaPath
	return out
}

// startRenderedPrimary starts a real PostgreSQL 15 with the rendered flags
// and pg_hba.conf, creates the stack's database (as the official image does
// from POSTGRES_DB), and applies roles.sql twice, as the superuser, to
// prove that it is idempotent.
func startRenderedPrimary(t *testing.T, stack *stackhcl.Stack, byPath map[string]Artifact) *testsvc.Postgres {
	t.Helper()
	db := stack.First(stackhcl.KindPostgres)
	files := testsvc.Dir(t)
	hbaPath := filepath.Join(files, "pg_hba.conf")
	testsvc.WriteFile(t, hbaPath, dbArtifact(t, byPath, PathPostgresHBA, 0o644), 0o644)
	rolesPath := filepath.Join(files, "roles.sql")
	testsvc.WriteFile(t, rolesPath, dbArtifact(t, byPath, PathPostgresRoles, 0o600), 0o600)

	primary := testsvc.StartPostgres(t, testsvc.WithArgs(testPostgresArgs(t, PostgresPrimaryArgs(db), hbaPath)...))
	primary.Exec("postgres", "CREATE DATABASE "+quoteIdent(db.Postgres.Database))
	for run := 1; run <= 2; run++ {
		if out, err := primary.Psql("-d", db.Postgres.Database, "-f", rolesPath); err != nil {
			t.Fatalf("roles.sql, run %d: %v\n%s", run, err, out)
		}
	}
	return primary
}

// startRenderedPgBouncer starts a real PgBouncer with the rendered ini and
// userlist. Only the server's host and port change here; testsvc replaces
// listen address and port, auth_file's path, socket dir, pidfile and
// logfile with the test's own.
func startRenderedPgBouncer(t *testing.T, stack *stackhcl.Stack, byPath map[string]Artifact, primary *testsvc.Postgres) *testsvc.PgBouncer {
	t.Helper()
	db := stack.First(stackhcl.KindPostgres)
	ini := string(dbArtifact(t, byPath, PathPgBouncerIni, 0o644))
	ini = replaceOnce(t, ini, "host="+db.Name+" port="+strconv.Itoa(db.Port)+" ",
		"host="+primary.Host+" port="+strconv.Itoa(primary.Port)+" ")
	userlist := dbArtifact(t, byPath, PathPgBouncerUserlist, 0o600)
	return testsvc.StartPgBouncer(t, ini, testsvc.WithAuthFile(userlist))
}

func connectThroughPgBouncer(ctx context.Context, bouncer *testsvc.PgBouncer, user, password, database string) (*pgx.Conn, error) {
	config, err := pgx.ParseConfig(bouncer.DSN(user, password, database))
	if err != nil {
		return nil, err
	}
	// PgBouncer 1.18 in transaction mode cannot pool prepared statements.
	config.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	return pgx.ConnectConfig(ctx, config)
}

// assertUsersLogInThroughPgBouncer logs every configured user in through
// PgBouncer with its password, and checks that a wrong one is refused.
func assertUsersLogInThroughPgBouncer(t *testing.T, stack *stackhcl.Stack, secrets MapSecrets, bouncer *testsvc.PgBouncer) {
	t.Helper()
	pool := stack.First(stackhcl.KindPgBouncer)
	database := stack.First(stackhcl.KindPostgres).Postgres.Database
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, user := range pool.PgBouncer.Users {
		conn, err := connectThroughPgBouncer(ctx, bouncer, user.Name, secrets[user.Password], database)
		if err != nil {
			t.Fatalf("%s could not log in through pgbouncer: %v\n%s", user.Name, err, bouncer.Log())
		}
		var one int
		var currentUser string
		if err := conn.QueryRow(ctx, "SELECT 1, current_user").Scan(&one, &currentUser); err != nil {
			t.Fatalf("%s: SELECT 1 through pgbouncer: %v\n%s", user.Name, err, bouncer.Log())
		}
		if one != 1 || currentUser != user.Name {
			t.Fatalf("%s: got (%d, %q)", user.Name, one, currentUser)
		}
		conn.Close(ctx)

		conn, err = connectThroughPgBouncer(ctx, bouncer, user.Name, secrets[user.Password]+"-wrong", database)
		if err == nil {
			conn.Close(ctx)
			t.Fatalf("%s logged in with a wrong password", user.Name)
		}
		var pgErr *pgconn.PgError
		// PgBouncer 1.18 reports a failed SCRAM exchange as 08P01, a failed
		// md5 one as 28P01 (invalid_password).
		if !errors.As(err, &pgErr) || pgErr.Severity != "FATAL" || (pgErr.Code != "28P01" && pgErr.Code != "08P01") ||
			!strings.Contains(pgErr.Message, "authentication failed") {
			t.Fatalf("%s with a wrong password: %v, want PgBouncer's FATAL authentication error", user.Name, err)
		}
	}
}

// assertDjangoGrants checks the grants the way Django uses them: the
// migrate user (the admin) creates a table through PgBouncer, the app
// user writes and reads it, the stats user may monitor.
func assertDjangoGrants(t *testing.T, stack *stackhcl.Stack, secrets MapSecrets, bouncer *testsvc.PgBouncer) {
	t.Helper()
	pool := stack.First(stackhcl.KindPgBouncer).PgBouncer
	database := stack.First(stackhcl.KindPostgres).Postgres.Database
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	as := func(userName string) *pgx.Conn {
		conn, err := connectThroughPgBouncer(ctx, bouncer, userName, secrets[pool.User(userName).Password], database)
		if err != nil {
			t.Fatalf("%s: %v", userName, err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	migrate := as(stack.Django.MigrateUser)
	if _, err := migrate.Exec(ctx, "CREATE TABLE IF NOT EXISTS notes (id bigserial PRIMARY KEY, body text)"); err != nil {
		t.Fatalf("migrate user %s cannot create a table: %v", stack.Django.MigrateUser, err)
	}
	app := as(stack.Django.DBUser)
	if _, err := app.Exec(ctx, "INSERT INTO notes (body) VALUES ('hello')"); err != nil {
		t.Fatalf("app user %s cannot insert into the migrate user's table: %v", stack.Django.DBUser, err)
	}
	var count int
	if err := app.QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&count); err != nil || count < 1 {
		t.Fatalf("app user reads %d rows: %v", count, err)
	}
	if _, err := app.Exec(ctx, "CREATE TABLE app_owned (n int)"); err == nil {
		t.Fatalf("app user %s may create tables; only the migrate user should", stack.Django.DBUser)
	}
	stats := as("obcms_stats")
	var monitor, readAll bool
	if err := stats.QueryRow(ctx, "SELECT pg_has_role('pg_monitor', 'MEMBER'), pg_has_role('obcms_admin', 'pg_read_all_data', 'MEMBER')").
		Scan(&monitor, &readAll); err != nil {
		t.Fatal(err)
	}
	if !monitor || !readAll {
		t.Fatalf("stats user in pg_monitor: %v; admin in pg_read_all_data: %v", monitor, readAll)
	}
	// admin_users reach PgBouncer's console; others do not.
	console, err := connectThroughPgBouncer(ctx, bouncer, "obcms_admin", secrets["obcms_admin_password"], "pgbouncer")
	if err != nil {
		t.Fatalf("admin user on the pgbouncer console: %v", err)
	}
	defer console.Close(ctx)
	if _, err := console.Exec(ctx, "SHOW POOLS"); err != nil {
		t.Fatalf("admin user: SHOW POOLS: %v", err)
	}
	if conn, err := connectThroughPgBouncer(ctx, bouncer, "obcms_user", secrets["obcms_user_password"], "pgbouncer"); err == nil {
		conn.Close(ctx)
		t.Fatal("the app user reached the pgbouncer console")
	}
}

func TestDatabase_SCRAMUsersLogInThroughRealPgBouncer(t *testing.T) {
	stack := loadOBCMS(t, "staging")
	secrets := dbTestSecrets()
	byPath := renderDatabaseByPath(t, stack, secrets)
	userlist := string(dbArtifact(t, byPath, PathPgBouncerUserlist, 0o600))

	primary := startRenderedPrimary(t, stack, byPath)
	// PgBouncer can log in to the server with a client's SCRAM proof only
	// if both hold the same verifier.
	for _, user := range stack.First(stackhcl.KindPgBouncer).PgBouncer.Users {
		out, err := primary.Psql("-d", "postgres", "-Atc", "SELECT rolpassword FROM pg_authid WHERE rolname = "+quoteLiteral(user.Name))
		if err != nil {
			t.Fatal(err)
		}
		line := userlistField(user.Name) + " " + userlistField(strings.TrimSpace(out)) + "\n"
		if !strings.HasPrefix(out, "SCRAM-SHA-256$4096:") || !strings.Contains(userlist, line) {
			t.Fatalf("role %s holds %q, which is not its userlist verifier:\n%s", user.Name, out, userlist)
		}
	}
	bouncer := startRenderedPgBouncer(t, stack, byPath, primary)
	assertUsersLogInThroughPgBouncer(t, stack, secrets, bouncer)
	assertDjangoGrants(t, stack, secrets, bouncer)
}

func TestDatabase_MD5UsersLogInThroughRealPgBouncer(t *testing.T) {
	stack := loadOBCMS(t, "staging")
	stack.First(stackhcl.KindPgBouncer).PgBouncer.AuthType = "md5"
	secrets := dbTestSecrets()
	byPath := renderDatabaseByPath(t, stack, secrets)

	userlist := string(dbArtifact(t, byPath, PathPgBouncerUserlist, 0o600))
	for _, user := range stack.First(stackhcl.KindPgBouncer).PgBouncer.Users {
		want := userlistField(user.Name) + " " + userlistField(MD5Verifier(user.Name, secrets[user.Password])) + "\n"
		if !strings.Contains(userlist, want) {
			t.Fatalf("userlist lacks %q:\n%s", want, userlist)
		}
	}
	if ini := string(byPath[PathPgBouncerIni].Data); !strings.Contains(ini, "\nauth_type = md5\n") {
		t.Fatalf("pgbouncer.ini does not use md5:\n%s", ini)
	}
	primary := startRenderedPrimary(t, stack, byPath)
	bouncer := startRenderedPgBouncer(t, stack, byPath, primary)
	assertUsersLogInThroughPgBouncer(t, stack, secrets, bouncer)
}

func TestPgBouncer_UserlistIsQuotedPairsAfterOneComment(t *testing.T) {
	byPath := renderDatabaseByPath(t, loadOBCMS(t, "staging"), dbTestSecrets())
	lines := strings.Split(strings.TrimSuffix(string(dbArtifact(t, byPath, PathPgBouncerUserlist, 0o600)), "\n"), "\n")
	if !strings.HasPrefix(lines[0], "; Generated by obcd") {
		t.Fatalf("first line %q is not the generated comment", lines[0])
	}
	if len(lines) != 4 {
		t.Fatalf("%d lines, want the comment and 3 users:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, line := range lines[1:] {
		// PgBouncer stops reading at the first line that does not start with a quote.
		if !strings.HasPrefix(line, `"`) || !strings.HasSuffix(line, `"`) || strings.Count(line, `" "`) != 1 {
			t.Fatalf("line %q is not a quoted pair", line)
		}
	}
	if got := userlistField(`we"ird`); got != `"we""ird"` {
		t.Fatalf("userlistField = %s", got)
	}
}

func TestDatabase_RenderIsByteIdenticalAcrossRuns(t *testing.T) {
	for _, environment := range []string{"staging", "production"} {
		first := renderDatabaseByPath(t, loadOBCMS(t, environment), dbTestSecrets())
		second := renderDatabaseByPath(t, loadOBCMS(t, environment), dbTestSecrets())
		for path, artifact := range first {
			if string(second[path].Data) != string(artifact.Data) || second[path].Mode != artifact.Mode {
				t.Fatalf("%s: %s differs between two renders", environment, path)
			}
		}
	}
	staging := renderDatabaseByPath(t, loadOBCMS(t, "staging"), dbTestSecrets())
	production := renderDatabaseByPath(t, loadOBCMS(t, "production"), dbTestSecrets())
	if string(staging[PathPgBouncerUserlist].Data) == string(production[PathPgBouncerUserlist].Data) {
		t.Fatal("staging and production have the same verifiers for the same passwords")
	}
}

func TestDatabase_NoSecretValueInAnyArtifact(t *testing.T) {
	secrets := dbTestSecrets()
	for _, environment := range []string{"staging", "production"} {
		for path, artifact := range renderDatabaseByPath(t, loadOBCMS(t, environment), secrets) {
			for name, value := range secrets {
				if strings.Contains(string(artifact.Data), value) {
					t.Errorf("%s %s contains the value of %s", environment, path, name)
				}
			}
		}
	}
}

func TestDatabase_MissingSecretIsNamedNeverShown(t *testing.T) {
	for _, tc := range []struct{ environment, secret string }{
		{"staging", "obcms_user_password"},
		{"staging", "obcms_admin_password"},
		{"staging", "obcms_stats_password"},
		{"production", "replication_password"},
	} {
		secrets := dbTestSecrets()
		delete(secrets, tc.secret)
		_, err := renderDatabase(loadOBCMS(t, tc.environment), secrets)
		var missing *MissingSecretError
		if !errors.As(err, &missing) {
			t.Fatalf("%s without %s: err = %v, want *MissingSecretError", tc.environment, tc.secret, err)
		}
		if missing.Name != tc.secret || !strings.Contains(err.Error(), strconv.Quote(tc.secret)) {
			t.Errorf("%s without %s: error names %q: %v", tc.environment, tc.secret, missing.Name, err)
		}
		for name, value := range secrets {
			if strings.Contains(err.Error(), value) {
				t.Errorf("error shows the value of %s: %v", name, err)
			}
		}
	}
}

func TestPostgres_HBAAllowsReplicationOnlyWithReplicas(t *testing.T) {
	staging := string(renderDatabaseByPath(t, loadOBCMS(t, "staging"), dbTestSecrets())[PathPostgresHBA].Data)
	production := renderDatabaseByPath(t, loadOBCMS(t, "production"), dbTestSecrets())
	if strings.Contains(staging, "replication") {
		t.Errorf("staging has no replicas but its pg_hba.conf allows replication:\n%s", staging)
	}
	hba := string(production[PathPostgresHBA].Data)
	if !strings.Contains(hba, "\nhost    replication  \"replicator\"") {
		t.Errorf("production pg_hba.conf lacks the replication line:\n%s", hba)
	}
	if _, ok := production[PathPostgresReplica]; !ok {
		t.Error("production has replicas but no replica entrypoint")
	}
	if dbArtifact(t, production, PathPostgresReplica, 0o755) == nil {
		t.Error("empty replica entrypoint")
	}
}

func TestPostgres_PrimaryArgsSizeReplicationForReplicas(t *testing.T) {
	db := loadOBCMS(t, "production").Service("db")
	args := strings.Join(PostgresPrimaryArgs(db), " ")
	for _, want := range []string{
		"-c wal_level=replica", "-c max_wal_senders=7", "-c max_replication_slots=7", "-c hot_standby=on",
		"-c max_connections=200", "-c shared_buffers=512MB", "-c hba_file=/etc/obcd/postgres/pg_hba.conf",
		"-c cluster_name=db", "-c password_encryption=scram-sha-256", "-c port=5432",
	} {
		if !strings.Contains(args+" ", want+" ") {
			t.Errorf("primary args lack %q: %s", want, args)
		}
	}
	replica := strings.Join(PostgresReplicaArgs(db, "db-replica-1"), " ")
	if !strings.Contains(replica, "-c cluster_name=db-replica-1") || !strings.Contains(replica, "-c max_connections=200") {
		t.Errorf("replica args: %s", replica)
	}
	env := PostgresReplicaEnv(db, "db-replica-1")
	want := map[string]string{"PRIMARY_HOST": "db", "PRIMARY_PORT": "5432", "REPLICATION_USER": "replicator",
		"REPLICA_SLOT": "db_replica_1", "REPLICA_NAME": "db-replica-1"}
	if len(env) != len(want) {
		t.Errorf("replica env %v, want %v", env, want)
	}
	for key, value := range want {
		if env[key] != value {
			t.Errorf("replica env %s = %q, want %q", key, env[key], value)
		}
	}
}

// startRenderedReplica runs the rendered replica entrypoint as the service
// user, with PostgresReplicaEnv's environment (the primary's host and port
// rewritten to the test server's) and the rendered replica arguments.
func startRenderedReplica(t *testing.T, stack *stackhcl.Stack, byPath map[string]Artifact, primary *testsvc.Postgres, replicaName string) *testsvc.Postgres {
	t.Helper()
	db := stack.First(stackhcl.KindPostgres)
	files := testsvc.Dir(t)
	script := filepath.Join(files, "replica-entrypoint.sh")
	testsvc.WriteFile(t, script, dbArtifact(t, byPath, PathPostgresReplica, 0o755), 0o755)
	hbaPath := filepath.Join(files, "pg_hba.conf")
	testsvc.WriteFile(t, hbaPath, byPath[PathPostgresHBA].Data, 0o644)

	env := PostgresReplicaEnv(db, replicaName)
	env["PRIMARY_HOST"] = primary.Host
	env["PRIMARY_PORT"] = strconv.Itoa(primary.Port)
	env["PGPASSWORD"] = dbTestSecrets()[db.Postgres.ReplicationPassword]
	env["PRIMARY_WAIT_SECONDS"] = "60"
	return testsvc.StartPostgres(t,
		testsvc.WithEntrypoint(script, env),
		testsvc.WithArgs(testPostgresArgs(t, PostgresReplicaArgs(db, replicaName), hbaPath)...),
		testsvc.WithStartTimeout(90*time.Second))
}

// waitStreaming waits until the primary streams to replicaName, and checks
// that it does so through the replica's one active slot.
func waitStreaming(t *testing.T, primary *testsvc.Postgres, replicaName string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, primary.SuperuserDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var state string
	for {
		err := conn.QueryRow(ctx, "SELECT state FROM pg_stat_replication WHERE application_name = $1", replicaName).Scan(&state)
		if err == nil && state == "streaming" {
			break
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatalf("pg_stat_replication: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no streaming replication to %s within the deadline (state %q)\n%s", replicaName, state, primary.Log())
		case <-time.After(200 * time.Millisecond):
		}
	}
	var slots int
	var active bool
	if err := conn.QueryRow(ctx, "SELECT count(*), bool_and(active) FROM pg_replication_slots WHERE slot_name = $1 AND slot_type = 'physical'",
		stackhcl.SlotName(replicaName)).Scan(&slots, &active); err != nil {
		t.Fatal(err)
	}
	if slots != 1 || !active {
		t.Fatalf("%d physical slots named %s, active %v; want one active", slots, stackhcl.SlotName(replicaName), active)
	}
}

func assertInRecoveryWithRow(t *testing.T, replica *testsvc.Postgres, database, marker string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, replica.SuperuserDSN(database))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("replica pg_is_in_recovery() = %v, %v; want true", inRecovery, err)
	}
	for {
		var found bool
		err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM replicated WHERE marker = $1)", marker).Scan(&found)
		if err == nil && found {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("row %q never reached the replica (last error %v)\n%s", marker, err, replica.Log())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestReplica_StreamsFromRealPrimaryAndRebootstrapsThroughItsSlot(t *testing.T) {
	stack := loadOBCMS(t, "production")
	db := stack.First(stackhcl.KindPostgres)
	if db.Replicas != 2 {
		t.Fatalf("production db has %d replicas, want 2", db.Replicas)
	}
	byPath := renderDatabaseByPath(t, stack, dbTestSecrets())
	primary := startRenderedPrimary(t, stack, byPath)
	database := db.Postgres.Database
	primary.Exec(database, "CREATE TABLE replicated (marker text); INSERT INTO replicated VALUES ('before')")

	replicaName := db.ReplicaNames()[0]
	replica := startRenderedReplica(t, stack, byPath, primary, replicaName)
	waitStreaming(t, primary, replicaName)
	primary.Exec(database, "INSERT INTO replicated VALUES ('streamed')")
	assertInRecoveryWithRow(t, replica, database, "streamed")

	// Rebuilt from an empty volume, the replica finds its slot already on
	// the primary and clones through it.
	replica.Stop()
	rebuilt := startRenderedReplica(t, stack, byPath, primary, replicaName)
	waitStreaming(t, primary, replicaName)
	primary.Exec(database, "INSERT INTO replicated VALUES ('after rebuild')")
	assertInRecoveryWithRow(t, rebuilt, database, "after rebuild")
	if !strings.Contains(rebuilt.Log(), "exists on the primary; cloning through it") {
		t.Errorf("the rebuilt replica did not take the existing-slot path:\n%s", rebuilt.Log())
	}
	if secret := dbTestSecrets()["replication_password"]; strings.Contains(replica.Log()+rebuilt.Log(), secret) {
		t.Error("the replica's output shows the replication password")
	}
}
