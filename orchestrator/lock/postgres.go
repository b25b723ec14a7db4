package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/obcd/obcd/internal/pgschema"
	"github.com/obcd/obcd/internal/who"
)

// lockSchema holds who holds each environment's advisory lock.
const lockSchema = `
CREATE TABLE IF NOT EXISTS obcd_locks (
	environment text PRIMARY KEY,
	info        jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS obcd_lock_breaches (
	environment text PRIMARY KEY,
	breach      jsonb NOT NULL
);`

// postgresTimeout bounds statements run outside a caller's context
// (heartbeats, release).
const postgresTimeout = 10 * time.Second

// PostgresLocker locks an environment with a session advisory lock,
// pg_try_advisory_lock(hashtext('obcd:'+env)), held on one dedicated
// connection for as long as the lock is held. If the holder dies, its
// connection ends and Postgres frees the lock. The dsn must reach the
// server directly: through PgBouncer the session could change under it.
type PostgresLocker struct {
	dsn         string
	environment string
	heartbeat   time.Duration
	now         func() time.Time
}

// NewPostgresLocker returns the locker of environment on the server at dsn.
func NewPostgresLocker(dsn, environment string) Locker {
	return &PostgresLocker{dsn: dsn, environment: environment, heartbeat: HeartbeatInterval, now: time.Now}
}

func advisoryKey(environment string) string { return "obcd:" + environment }

// Acquire implements Locker.
func (l *PostgresLocker) Acquire(ctx context.Context, op string, wait time.Duration) (*Held, error) {
	conn, err := pgx.Connect(ctx, l.dsn)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", l.environment, err)
	}
	if err := pgschema.Ensure(ctx, conn, lockSchema); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("lock %s: %w", l.environment, err)
	}
	held, err := acquireLoop(ctx, wait, func() (*Held, error) { return l.try(ctx, conn, op) })
	if err != nil {
		closeConn(conn)
		return nil, err
	}
	return held, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}

func (l *PostgresLocker) try(ctx context.Context, conn *pgx.Conn, op string) (*Held, error) {
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1::text))`, advisoryKey(l.environment)).Scan(&locked); err != nil {
		return nil, fmt.Errorf("lock %s: %w", l.environment, err)
	}
	if !locked {
		return nil, l.lockedError(ctx, conn)
	}
	info := newLockInfo(op, l.now())
	if err := writeLockRow(ctx, conn, l.environment, info); err != nil {
		_, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext($1::text))`, advisoryKey(l.environment))
		return nil, fmt.Errorf("lock %s: %w", l.environment, err)
	}
	beat := func(info Info) error { return l.beat(conn, info) }
	check := func() error { return l.check(conn, info.Token) }
	unlock := func() error { return l.release(conn, info.Token) }
	return newHeld(info, l.heartbeat, beat, check, unlock), nil
}

func writeLockRow(ctx context.Context, conn *pgx.Conn, environment string, info Info) error {
	body, err := json.Marshal(info)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `INSERT INTO obcd_locks (environment, info) VALUES ($1::text, $2::text::jsonb)
		ON CONFLICT (environment) DO UPDATE SET info = EXCLUDED.info`, environment, string(body))
	return err
}

func readLockRow(ctx context.Context, conn *pgx.Conn, environment string) (Info, error) {
	var body string
	err := conn.QueryRow(ctx, `SELECT info::text FROM obcd_locks WHERE environment = $1::text`, environment).Scan(&body)
	if err != nil {
		return Info{}, err
	}
	var info Info
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		return Info{}, fmt.Errorf("obcd_locks row of %q: %w", environment, err)
	}
	return info, nil
}

func (l *PostgresLocker) lockedError(ctx context.Context, conn *pgx.Conn) error {
	info, err := readLockRow(ctx, conn, l.environment)
	if errors.Is(err, pgx.ErrNoRows) {
		// The holder has the advisory lock but has not written its row yet.
		info = Info{Operation: "unknown (just starting)", Started: l.now(), Heartbeat: l.now()}
	} else if err != nil {
		return fmt.Errorf("lock %s: %w", l.environment, err)
	}
	stale, reason := staleness(info, l.now(), who.Host())
	return &LockedError{Environment: l.environment, Info: info, Stale: stale, StaleReason: reason}
}

// beat records a heartbeat. A closed connection means the session, and
// with it the advisory lock, is gone.
func (l *PostgresLocker) beat(conn *pgx.Conn, info Info) error {
	ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
	defer cancel()
	err := writeLockRow(ctx, conn, l.environment, info)
	if err != nil && conn.IsClosed() {
		return l.lost(err, info.Token)
	}
	return err
}

// check asks the lock's own session whether it is still there.
func (l *PostgresLocker) check(conn *pgx.Conn, token string) error {
	ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
	defer cancel()
	_, err := conn.Exec(ctx, `SELECT 1`)
	if err != nil && conn.IsClosed() {
		return l.lost(err, token)
	}
	return nil
}

// lost is the ErrLockLost of a session that ended, naming who broke the
// lock when Break recorded it.
func (l *PostgresLocker) lost(cause error, token string) error {
	err := fmt.Errorf("%w: the connection holding the advisory lock of %s ended: %w", ErrLockLost, l.environment, cause)
	ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
	defer cancel()
	conn, connectErr := pgx.Connect(ctx, l.dsn)
	if connectErr != nil {
		return err
	}
	defer closeConn(conn)
	var body string
	if conn.QueryRow(ctx, `SELECT breach::text FROM obcd_lock_breaches WHERE environment = $1::text`, l.environment).Scan(&body) != nil {
		return err
	}
	var breach Breach
	if json.Unmarshal([]byte(body), &breach) != nil || breach.Token != token {
		return err
	}
	return fmt.Errorf("%w: the lock of %s was %s (obcd unlock)", ErrLockLost, l.environment, breach)
}

// release unlocks, removes its lock row and closes the connection.
func (l *PostgresLocker) release(conn *pgx.Conn, token string) error {
	defer closeConn(conn)
	ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
	defer cancel()
	if _, err := conn.Exec(ctx, `DELETE FROM obcd_locks WHERE environment = $1::text AND info->>'token' = $2::text`,
		l.environment, token); err != nil && !conn.IsClosed() {
		return fmt.Errorf("release lock of %s: %w", l.environment, err)
	}
	var unlocked bool
	err := conn.QueryRow(ctx, `SELECT pg_advisory_unlock(hashtext($1::text))`, advisoryKey(l.environment)).Scan(&unlocked)
	switch {
	case err != nil && conn.IsClosed():
		return fmt.Errorf("%w: the connection holding the advisory lock of %s ended: %w", ErrLockLost, l.environment, err)
	case err != nil:
		return fmt.Errorf("release lock of %s: %w", l.environment, err)
	case !unlocked:
		return fmt.Errorf("%w: this session no longer held the advisory lock of %s", ErrLockLost, l.environment)
	}
	return nil
}

// Break implements Locker: it ends the session holding the advisory
// lock, which frees it, and returns the lock record. Ending another
// role's session needs pg_signal_backend.
func (l *PostgresLocker) Break(ctx context.Context) (Info, error) {
	dsn, environment := l.dsn, l.environment
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return Info{}, fmt.Errorf("unlock %s: %w", environment, err)
	}
	defer closeConn(conn)
	if err := pgschema.Ensure(ctx, conn, lockSchema); err != nil {
		return Info{}, fmt.Errorf("unlock %s: %w", environment, err)
	}
	info, err := readLockRow(ctx, conn, environment)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Info{}, fmt.Errorf("unlock %s: %w", environment, err)
	}
	pids, err := advisoryHolders(ctx, conn, environment)
	if err != nil {
		return Info{}, fmt.Errorf("unlock %s: %w", environment, err)
	}
	if len(pids) == 0 {
		return Info{}, fmt.Errorf("%w: no session holds the advisory lock of %s; nothing to unlock", ErrNotLocked, environment)
	}
	// Who broke it is written first, so the holder can say so.
	breach, err := json.Marshal(newBreach(info))
	if err == nil {
		_, err = conn.Exec(ctx, `INSERT INTO obcd_lock_breaches (environment, breach) VALUES ($1::text, $2::text::jsonb)
			ON CONFLICT (environment) DO UPDATE SET breach = EXCLUDED.breach`, environment, string(breach))
	}
	if err != nil {
		return Info{}, fmt.Errorf("unlock %s: record the break: %w", environment, err)
	}
	for _, pid := range pids {
		var ended bool
		if err := conn.QueryRow(ctx, `SELECT pg_terminate_backend($1::integer, 5000)`, pid).Scan(&ended); err != nil {
			return Info{}, fmt.Errorf("unlock %s: end session %d: %w", environment, pid, err)
		}
		if !ended {
			return Info{}, fmt.Errorf("unlock %s: session %d did not end within 5s", environment, pid)
		}
	}
	if _, err := conn.Exec(ctx, `DELETE FROM obcd_locks WHERE environment = $1::text`, environment); err != nil {
		return Info{}, fmt.Errorf("unlock %s: %w", environment, err)
	}
	return info, nil
}

// advisoryHolders returns the backend pids holding the environment's
// advisory lock. A bigint key shows in pg_locks split into classid (high
// 32 bits) and objid (low 32 bits), with objsubid 1.
func advisoryHolders(ctx context.Context, conn *pgx.Conn, environment string) ([]int32, error) {
	rows, err := conn.Query(ctx, `
		WITH key AS (SELECT hashtext($1::text)::bigint AS k)
		SELECT l.pid FROM pg_locks l, key
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.classid::bigint = ((key.k >> 32) & 4294967295)
		  AND l.objid::bigint = (key.k & 4294967295)`, advisoryKey(environment))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int32])
}
