package checks

// live_db.go reaches the database: deploy.D004 (unreachable, login
// refused, migrations unreadable) and D007 (no migrations applied yet).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	stackhcl "github.com/obcd/obcd/hcl"
)

// SQLSTATEs the database check tells apart.
const (
	liveSQLStateUndefinedTable = "42P01"
	liveSQLStateAuthClass      = "28" // invalid_authorization_specification, invalid_password
	liveMigrationsQuery        = "SELECT app, name FROM django_migrations"
	livePostgresSuperuser      = "postgres"
)

// liveDBTarget is where and as whom Django logs in.
type liveDBTarget struct {
	service  *stackhcl.Service // django.database: pgbouncer or postgres
	addr     string            // host:port
	user     string
	secret   string // name of the user's password secret
	database string // the postgres database
}

func (t *liveDBTarget) describe() string {
	return fmt.Sprintf("database %q (service %q at %s)", t.database, t.service.Name, t.addr)
}

// database logs in as django.db_user on django.database's address, with
// the simple protocol PgBouncer's transaction pooling needs, and counts
// the applied migrations (-1 when unknown).
func (run *liveRun) database(ctx context.Context) ([]Finding, int) {
	dj := &run.stack.Django
	if dj.Database == "" {
		return nil, -1
	}
	target, finding := run.resolveDB()
	if finding != nil {
		return []Finding{*finding}, -1
	}
	password, err := run.secret(target.secret)
	if err != nil {
		return []Finding{run.dbFinding(target, "cannot log in to %s as %q: its password secret %q has no value (see deploy.D002)",
			target.describe(), target.user, target.secret)}, -1
	}
	conn, finding := run.dbConnect(ctx, target, password)
	if finding != nil {
		return []Finding{*finding}, -1
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), run.timeout)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	return run.dbMigrations(ctx, conn, target)
}

// resolveDB resolves django.database, db_user and the user's password
// secret, or says why it cannot.
func (run *liveRun) resolveDB() (*liveDBTarget, *Finding) {
	dj := &run.stack.Django
	svc := run.stack.Service(dj.Database)
	if svc == nil {
		return nil, &Finding{Rule: liveDatabaseUnreachable, Range: run.djangoRange("database"),
			Message: fmt.Sprintf("django.database names %q, which is no service of the stack", dj.Database)}
	}
	primary := svc
	if svc.PgBouncer != nil {
		primary = run.stack.Service(svc.PgBouncer.Server)
	}
	if primary == nil || primary.Postgres == nil {
		return nil, &Finding{Rule: liveDatabaseUnreachable, Range: svc.DeclRange,
			Message: fmt.Sprintf("service %q is neither a postgres service nor a pgbouncer in front of one", svc.Name)}
	}
	if svc.Address == "" {
		finding := run.noAddress(svc, liveDatabaseUnreachable)
		return nil, &finding
	}
	target := &liveDBTarget{service: svc, addr: liveWithDefaultPort(svc.Address, svc.Port), user: dj.DBUser, database: primary.Postgres.Database}
	target.secret = run.passwordSecret(svc, primary, dj.DBUser)
	if target.secret == "" {
		return nil, &Finding{Rule: liveDatabaseUnreachable, Range: run.djangoRange("db_user"), Message: fmt.Sprintf(
			"cannot log in to %s: no password secret is declared for role %q (add a user block for it to the pgbouncer service)",
			target.describe(), dj.DBUser)}
	}
	return target, nil
}

// passwordSecret is the name of the secret holding user's password: the
// user block of the pgbouncer Django connects through (or of any
// pgbouncer in front of the postgres service), or the superuser password.
func (run *liveRun) passwordSecret(svc, primary *stackhcl.Service, user string) string {
	if svc.PgBouncer != nil {
		if u := svc.PgBouncer.User(user); u != nil {
			return u.Password
		}
		return ""
	}
	for _, bouncer := range run.stack.ServicesOf(stackhcl.KindPgBouncer) {
		if bouncer.PgBouncer == nil || bouncer.PgBouncer.Server != primary.Name {
			continue
		}
		if u := bouncer.PgBouncer.User(user); u != nil {
			return u.Password
		}
	}
	if user == livePostgresSuperuser {
		return primary.Postgres.SuperuserPassword
	}
	return ""
}

func (run *liveRun) dbConnect(ctx context.Context, target *liveDBTarget, password string) (*pgx.Conn, *Finding) {
	host, port, err := net.SplitHostPort(target.addr)
	if err != nil {
		finding := run.dbFinding(target, "service %q has address %q, which is not host:port", target.service.Name, target.service.Address)
		return nil, &finding
	}
	// Only the keywords below are used; every value is quoted, so none can
	// add another. sslmode=prefer uses TLS where the server offers it.
	dsn := fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=prefer",
		liveDSNQuote(host), liveDSNQuote(port), liveDSNQuote(target.user), liveDSNQuote(password), liveDSNQuote(target.database))
	config, err := pgx.ParseConfig(dsn)
	if err != nil {
		finding := run.dbFinding(target, "cannot build a connection to %s: %v", target.describe(), err)
		return nil, &finding
	}
	config.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol // PgBouncer 1.18 has no prepared statements
	config.ConnectTimeout = run.timeout
	stepCtx, cancel := context.WithTimeout(ctx, run.timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(stepCtx, config)
	if err != nil {
		finding := run.dbFinding(target, "%s", run.connectProblem(target, err))
		return nil, &finding
	}
	return conn, nil
}

// connectProblem says why a login failed: refused credentials, another
// refusal by the server, or no answer at all.
func (run *liveRun) connectProblem(target *liveDBTarget, err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, liveSQLStateAuthClass):
		return fmt.Sprintf("login refused for role %q on %s: authentication failed: %s (SQLSTATE %s); check the password secret %q",
			target.user, target.describe(), pgErr.Message, pgErr.Code, target.secret)
	case errors.As(err, &pgErr):
		return fmt.Sprintf("%s refused role %q: %s (SQLSTATE %s)", target.describe(), target.user, pgErr.Message, pgErr.Code)
	default:
		return fmt.Sprintf("%s unreachable: %s", target.describe(), liveStepError(err, run.timeout))
	}
}

// dbMigrations reads django_migrations: its row count, D007 when the
// table does not exist yet, D004 when it cannot be read.
func (run *liveRun) dbMigrations(ctx context.Context, conn *pgx.Conn, target *liveDBTarget) ([]Finding, int) {
	stepCtx, cancel := context.WithTimeout(ctx, run.timeout)
	defer cancel()
	rows, err := conn.Query(stepCtx, liveMigrationsQuery)
	count := 0
	if err == nil {
		var app, name string
		_, err = pgx.ForEachRow(rows, []any{&app, &name}, func() error {
			count++
			return nil
		})
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil, count
	case errors.As(err, &pgErr) && pgErr.Code == liveSQLStateUndefinedTable:
		return []Finding{{Rule: liveNoMigrations, Range: target.service.DeclRange, Message: fmt.Sprintf(
			"no migrations applied yet: %s has no django_migrations table", target.describe())}}, 0
	default:
		return []Finding{run.dbFinding(target, "migration state of %s unreadable as role %q: %s",
			target.describe(), target.user, liveStepError(err, run.timeout))}, -1
	}
}

func (run *liveRun) dbFinding(target *liveDBTarget, format string, args ...any) Finding {
	at := target.service.DeclRange
	if r, ok := target.service.Ranges["address"]; ok && r.Filename != "" {
		at = r
	}
	return Finding{Rule: liveDatabaseUnreachable, Range: at, Message: fmt.Sprintf(format, args...)}
}

// liveWithDefaultPort adds port to an address that has none.
func liveWithDefaultPort(addr string, port int) string {
	if _, _, err := net.SplitHostPort(addr); err == nil || port == 0 {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), strconv.Itoa(port))
}

// liveDSNQuote quotes a keyword/value connection string value.
func liveDSNQuote(value string) string {
	replacer := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + replacer.Replace(value) + "'"
}
