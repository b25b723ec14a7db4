package probe

// postgres.go checks a PostgreSQL server, directly or through PgBouncer:
// a login, Django's migration count, streaming replicas, recovery mode.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresMode is what a Postgres probe proves.
type PostgresMode string

// Postgres probe modes.
const (
	// PostgresLogin: the user logs in and SELECT 1 answers.
	PostgresLogin PostgresMode = "login"
	// PostgresMigrations: django_migrations is readable (and holds the expected count).
	PostgresMigrations PostgresMode = "migrations"
	// PostgresReplication: the primary streams to the expected replicas without lag.
	PostgresReplication PostgresMode = "replication"
	// PostgresRecovery: the server is a replica (pg_is_in_recovery()).
	PostgresRecovery PostgresMode = "recovery"
)

// DefaultMaxLagBytes is the replication lag a probe tolerates: one WAL segment.
const DefaultMaxLagBytes int64 = 16 << 20

// PostgresConfig says what to reach and what to prove there.
type PostgresConfig struct {
	Mode                     PostgresMode // "" = login
	Addr                     string       // host:port (a pgbouncer or postgres)
	User, Password, Database string
	// ExpectMigrations (migrations mode): -1 = only require the table is
	// readable; >= 0 = the applied count must equal it.
	ExpectMigrations int
	// Replicas (replication mode): application_names that must be
	// streaming from this primary; none = at least one replica streams.
	Replicas    []string
	MaxLagBytes int64 // replication mode: 0 = DefaultMaxLagBytes
}

// SQLSTATEs the probe tells apart.
const (
	pgSQLStateAuthClass       = "28" // invalid_authorization_specification, invalid_password
	pgSQLStateUnknownDatabase = "3D000"
	pgSQLStateUndefinedTable  = "42P01"
	pgSQLStatePrivilege       = "42501"
)

// Queries, one per mode.
const (
	pgQueryLogin       = "SELECT 1"
	pgQueryMigrations  = "SELECT count(*) FROM django_migrations"
	pgQueryInRecovery  = "SELECT pg_is_in_recovery()"
	pgQueryReplication = "SELECT coalesce(application_name, ''), state, " +
		"pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint FROM pg_stat_replication"
)

const (
	pgCloseTimeout           = 2 * time.Second  // closing after the attempt's ctx is done
	pgDefaultConnectTimeout  = 10 * time.Second // when ctx has no deadline
	pgPasswordRedacted       = "[password redacted]"
	pgReplicationStatsAccess = "pg_read_all_stats" // role that sees pg_stat_replication's state
)

type postgresChecker struct{ cfg PostgresConfig }

// Postgres returns a Checker that logs in to cfg.Addr with the simple
// protocol (PgBouncer 1.18 has no prepared statements) and proves cfg.Mode.
func Postgres(cfg PostgresConfig) Checker {
	if cfg.Mode == "" {
		cfg.Mode = PostgresLogin
	}
	if cfg.MaxLagBytes <= 0 {
		cfg.MaxLagBytes = DefaultMaxLagBytes
	}
	return postgresChecker{cfg: cfg}
}

// Check implements Checker.
func (c postgresChecker) Check(ctx context.Context) Attempt {
	switch c.cfg.Mode {
	case PostgresLogin, PostgresMigrations, PostgresReplication, PostgresRecovery:
	default:
		return Fatalf("unknown postgres probe mode %q (want login, migrations, replication or recovery)", c.cfg.Mode)
	}
	conn, failed := c.connect(ctx)
	if conn == nil {
		return c.redact(failed)
	}
	defer closePostgres(ctx, conn)
	var attempt Attempt
	switch c.cfg.Mode {
	case PostgresLogin:
		attempt = c.login(ctx, conn)
	case PostgresMigrations:
		attempt = c.migrations(ctx, conn)
	case PostgresReplication:
		attempt = c.replication(ctx, conn)
	case PostgresRecovery:
		attempt = c.recovery(ctx, conn)
	}
	return c.redact(attempt)
}

// where names the database and address for messages.
func (c postgresChecker) where() string {
	return fmt.Sprintf("database %q at %s", c.cfg.Database, c.cfg.Addr)
}

// connect logs in, or says why it cannot: refused credentials and unknown
// databases are fatal, an unreachable server is a failure.
func (c postgresChecker) connect(ctx context.Context) (*pgx.Conn, Attempt) {
	host, port, err := net.SplitHostPort(c.cfg.Addr)
	if err != nil {
		return nil, Fatalf("postgres address %q is not host:port: %v", c.cfg.Addr, err)
	}
	// Every value is quoted, so none can add another keyword.
	// sslmode=prefer uses TLS where the server offers it.
	dsn := fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=prefer",
		pgQuoteDSN(host), pgQuoteDSN(port), pgQuoteDSN(c.cfg.User),
		pgQuoteDSN(c.cfg.Password), pgQuoteDSN(c.cfg.Database))
	config, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, Fatalf("cannot build a connection to %s: %v", c.where(), err)
	}
	config.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	config.ConnectTimeout = pgDefaultConnectTimeout
	if deadline, ok := ctx.Deadline(); ok {
		config.ConnectTimeout = max(time.Until(deadline), time.Millisecond)
	}
	conn, err := pgx.ConnectConfig(ctx, config)
	if err != nil {
		return nil, c.connectFailure(err)
	}
	return conn, Attempt{}
}

func (c postgresChecker) connectFailure(err error) Attempt {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, pgSQLStateAuthClass) || pgBouncerAuthError(pgErr)):
		return Fatalf("authentication failed for role %q on %s: %s (SQLSTATE %s); check the role's password",
			c.cfg.User, c.where(), pgErr.Message, pgErr.Code)
	case errors.As(err, &pgErr) && (pgErr.Code == pgSQLStateUnknownDatabase || pgBouncerUnknownDatabase(pgErr)):
		return Fatalf("%s does not exist: %s (SQLSTATE %s)", c.where(), pgErr.Message, pgErr.Code)
	case errors.As(err, &pgErr):
		return Failed("%s refused role %q: %s (SQLSTATE %s)", c.where(), c.cfg.User, pgErr.Message, pgErr.Code)
	default:
		return Failed("cannot connect to %s as role %q: %v", c.where(), c.cfg.User, pgLastConnectError(err))
	}
}

// PgBouncer 1.18 reports a refused login and an unknown database as
// protocol_violation (08P01), like a server it cannot reach, so its
// message is the only way to tell them apart.
const (
	pgSQLStateProtocolViolation = "08P01"
	pgBouncerAuthFailed         = "authentication failed" // "password …", "SASL …"
	pgBouncerNoSuchDatabase     = "no such database"
)

func pgBouncerAuthError(pgErr *pgconn.PgError) bool {
	return pgErr.Code == pgSQLStateProtocolViolation && strings.Contains(pgErr.Message, pgBouncerAuthFailed)
}

func pgBouncerUnknownDatabase(pgErr *pgconn.PgError) bool {
	return pgErr.Code == pgSQLStateProtocolViolation && strings.HasPrefix(pgErr.Message, pgBouncerNoSuchDatabase)
}

// pgLastConnectError is the last of pgx's connection attempts: with
// sslmode=prefer, the plain one after the server refused TLS. pgx's
// "failed to connect to `user=… database=…`" preamble repeats what the
// message already says.
func pgLastConnectError(err error) error {
	var connectErr *pgconn.ConnectError
	if !errors.As(err, &connectErr) || connectErr.Unwrap() == nil {
		return err
	}
	err = connectErr.Unwrap()
	if joined, ok := err.(interface{ Unwrap() []error }); ok && len(joined.Unwrap()) > 0 {
		attempts := joined.Unwrap()
		return attempts[len(attempts)-1]
	}
	return err
}

// queryFailure says why a query failed: a missing table or privilege is
// fatal, anything else may pass on the next attempt.
func (c postgresChecker) queryFailure(query string, err error) Attempt {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == pgSQLStateUndefinedTable:
		return Fatalf("%s on %s: %s (SQLSTATE %s)", query, c.where(), pgErr.Message, pgErr.Code)
	case errors.As(err, &pgErr) && pgErr.Code == pgSQLStatePrivilege:
		return Fatalf("%s on %s as role %q: %s (SQLSTATE %s)", query, c.where(), c.cfg.User, pgErr.Message, pgErr.Code)
	default:
		return Failed("%s on %s: %v", query, c.where(), err)
	}
}

func (c postgresChecker) login(ctx context.Context, conn *pgx.Conn) Attempt {
	var one int
	if err := conn.QueryRow(ctx, pgQueryLogin).Scan(&one); err != nil {
		return c.queryFailure(pgQueryLogin, err)
	}
	if one != 1 {
		return Failed("%s on %s answered %d, want 1", pgQueryLogin, c.where(), one)
	}
	return Passed("role %q logged in to %s", c.cfg.User, c.where())
}

func (c postgresChecker) migrations(ctx context.Context, conn *pgx.Conn) Attempt {
	var applied int
	if err := conn.QueryRow(ctx, pgQueryMigrations).Scan(&applied); err != nil {
		attempt := c.queryFailure(pgQueryMigrations, err)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgSQLStateUndefinedTable {
			attempt.Message = fmt.Sprintf("no django_migrations table in %s: migrations never ran there (%s)", c.where(), pgErr.Message)
		}
		return attempt
	}
	if c.cfg.ExpectMigrations >= 0 && applied != c.cfg.ExpectMigrations {
		return Failed("expected %d applied migrations in %s, found %d", c.cfg.ExpectMigrations, c.where(), applied)
	}
	return Passed("%d migrations applied in %s", applied, c.where())
}

func (c postgresChecker) recovery(ctx context.Context, conn *pgx.Conn) Attempt {
	var inRecovery bool
	if err := conn.QueryRow(ctx, pgQueryInRecovery).Scan(&inRecovery); err != nil {
		return c.queryFailure(pgQueryInRecovery, err)
	}
	if !inRecovery {
		return Failed("expected a replica in recovery at %s, found a primary (pg_is_in_recovery() = false)", c.cfg.Addr)
	}
	return Passed("%s is a replica in recovery", c.cfg.Addr)
}

// pgReplicaRow is one row of pg_stat_replication.
type pgReplicaRow struct {
	name  string
	state *string // NULL to roles without pg_read_all_stats
	lag   *int64  // NULL until the replica has replayed anything
}

func (c postgresChecker) replication(ctx context.Context, conn *pgx.Conn) Attempt {
	var inRecovery bool
	if err := conn.QueryRow(ctx, pgQueryInRecovery).Scan(&inRecovery); err != nil {
		return c.queryFailure(pgQueryInRecovery, err)
	}
	if inRecovery {
		return Fatalf("%s is a replica in recovery; replication is checked on the primary", c.cfg.Addr)
	}
	rows, err := conn.Query(ctx, pgQueryReplication)
	if err != nil {
		return c.queryFailure("pg_stat_replication", err)
	}
	var found []pgReplicaRow
	var row pgReplicaRow
	_, err = pgx.ForEachRow(rows, []any{&row.name, &row.state, &row.lag}, func() error {
		found = append(found, row)
		return nil
	})
	if err != nil {
		return c.queryFailure("pg_stat_replication", err)
	}
	for _, r := range found {
		if r.state == nil {
			return Fatalf("pg_stat_replication on %s hides replication state from role %q; grant it %s",
				c.cfg.Addr, c.cfg.User, pgReplicationStatsAccess)
		}
	}
	return c.judgeReplicas(found)
}

// judgeReplicas checks every expected replica (or, with none expected,
// that one streams) and names each one that is missing, not streaming or
// lagging.
func (c postgresChecker) judgeReplicas(found []pgReplicaRow) Attempt {
	byName := map[string]pgReplicaRow{}
	for _, r := range found {
		if best, ok := byName[r.name]; !ok || pgBetterReplica(r, best) {
			byName[r.name] = r
		}
	}
	expected := c.cfg.Replicas
	if len(expected) == 0 {
		for name, r := range byName {
			if c.replicaProblem(name, r, true) == "" {
				return Passed("%s streams to %s", c.cfg.Addr, pgDescribeReplica(name, r))
			}
		}
		return Failed("expected at least one replica streaming from %s within %d bytes of lag, found %s",
			c.cfg.Addr, c.cfg.MaxLagBytes, pgDescribeReplicas(byName))
	}
	var problems, healthy []string
	for _, name := range expected {
		r, ok := byName[name]
		if problem := c.replicaProblem(name, r, ok); problem != "" {
			problems = append(problems, problem)
			continue
		}
		healthy = append(healthy, pgDescribeReplica(name, r))
	}
	if len(problems) > 0 {
		return Failed("replication from %s: %s (pg_stat_replication has %s)",
			c.cfg.Addr, strings.Join(problems, "; "), pgDescribeReplicas(byName))
	}
	return Passed("%s streams to %s", c.cfg.Addr, strings.Join(healthy, ", "))
}

// replicaProblem says what is wrong with one replica, or "".
func (c postgresChecker) replicaProblem(name string, r pgReplicaRow, present bool) string {
	switch {
	case !present:
		return fmt.Sprintf("replica %q is not connected", name)
	case r.state == nil || *r.state != "streaming":
		return fmt.Sprintf("replica %q is %s, not streaming", name, pgReplicaState(r))
	case r.lag == nil:
		return fmt.Sprintf("replica %q has not replayed any WAL yet", name)
	case *r.lag >= c.cfg.MaxLagBytes:
		return fmt.Sprintf("replica %q lags by %d bytes (max %d)", name, *r.lag, c.cfg.MaxLagBytes)
	}
	return ""
}

// pgBetterReplica prefers a streaming row, then the smaller lag, when two
// walsenders share an application_name.
func pgBetterReplica(a, b pgReplicaRow) bool {
	aStreaming, bStreaming := pgReplicaState(a) == "streaming", pgReplicaState(b) == "streaming"
	if aStreaming != bStreaming {
		return aStreaming
	}
	return a.lag != nil && (b.lag == nil || *a.lag < *b.lag)
}

func pgReplicaState(r pgReplicaRow) string {
	if r.state == nil {
		return "unknown"
	}
	return *r.state
}

func pgDescribeReplica(name string, r pgReplicaRow) string {
	lag := "unknown"
	if r.lag != nil {
		lag = fmt.Sprintf("%d bytes", *r.lag)
	}
	return fmt.Sprintf("%q (%s, lag %s)", name, pgReplicaState(r), lag)
}

func pgDescribeReplicas(byName map[string]pgReplicaRow) string {
	if len(byName) == 0 {
		return "no replicas"
	}
	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	sort.Strings(names)
	described := make([]string, len(names))
	for i, name := range names {
		described[i] = pgDescribeReplica(name, byName[name])
	}
	return strings.Join(described, ", ")
}

// redact keeps the password out of a message, whatever a server or
// driver echoed back.
func (c postgresChecker) redact(attempt Attempt) Attempt {
	if c.cfg.Password != "" {
		attempt.Message = strings.ReplaceAll(attempt.Message, c.cfg.Password, pgPasswordRedacted)
	}
	return attempt
}

// closePostgres closes conn even when the attempt's ctx is already done.
func closePostgres(ctx context.Context, conn *pgx.Conn) {
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pgCloseTimeout)
	defer cancel()
	_ = conn.Close(closeCtx)
}

// pgQuoteDSN quotes a keyword/value connection string value.
func pgQuoteDSN(value string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(value) + "'"
}
