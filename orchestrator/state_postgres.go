package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/obcd/obcd/templates"
)

// The Postgres backend keeps release history, artifacts and lock records
// for environments that a team shares. Every statement names its
// parameter types, so it also runs with default_query_exec_mode=exec.
const postgresSchema = `
CREATE TABLE IF NOT EXISTS obcd_releases (
	environment text NOT NULL,
	id          text NOT NULL,
	body        jsonb NOT NULL,
	PRIMARY KEY (environment, id)
);
CREATE TABLE IF NOT EXISTS obcd_release_artifacts (
	environment text NOT NULL,
	id          text NOT NULL,
	path        text NOT NULL,
	mode        integer NOT NULL,
	data        bytea NOT NULL,
	PRIMARY KEY (environment, id, path)
);
CREATE TABLE IF NOT EXISTS obcd_locks (
	environment text PRIMARY KEY,
	info        jsonb NOT NULL
);`

// postgresTimeout bounds statements run outside a caller's context
// (heartbeats, release).
const postgresTimeout = 10 * time.Second

// ensureSchema creates the tables if missing. Concurrent first runs are
// serialised with a transaction-scoped advisory lock, since CREATE TABLE
// IF NOT EXISTS alone can still collide.
func ensureSchema(ctx context.Context, conn *pgx.Conn) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('obcd-schema'))"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, postgresSchema)
		return err
	})
	if err != nil {
		return fmt.Errorf("create obcd tables: %w", err)
	}
	return nil
}

// PostgresStore keeps one environment's releases in Postgres, over one
// connection that is reopened when it breaks.
type PostgresStore struct {
	dsn         string
	environment string

	mu   sync.Mutex
	conn *pgx.Conn
}

var _ Store = (*PostgresStore)(nil)

// OpenPostgresStore connects to dsn, creates the obcd tables if missing,
// and returns the store of environment. Close it when done.
func OpenPostgresStore(ctx context.Context, dsn, environment string) (*PostgresStore, error) {
	if environment == "" {
		return nil, errors.New("open release store: no environment")
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open release store: %w", err)
	}
	if err := ensureSchema(ctx, conn); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("open release store: %w", err)
	}
	return &PostgresStore{dsn: dsn, environment: environment, conn: conn}, nil
}

// Close closes the connection.
func (s *PostgresStore) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close(ctx)
	s.conn = nil
	return err
}

// with runs fn on the store's connection, reconnecting if it was closed.
func (s *PostgresStore) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil || s.conn.IsClosed() {
		conn, err := pgx.Connect(ctx, s.dsn)
		if err != nil {
			return fmt.Errorf("connect to release store: %w", err)
		}
		s.conn = conn
	}
	return fn(s.conn)
}

func (s *PostgresStore) where() string {
	return fmt.Sprintf("obcd_releases (environment %q)", s.environment)
}

// Save implements Store with one upsert.
func (s *PostgresStore) Save(ctx context.Context, r Release) error {
	if err := checkReleaseID(r.ID); err != nil {
		return fmt.Errorf("save release: %w", err)
	}
	if r.Environment == "" {
		r.Environment = s.environment
	}
	if r.Environment != s.environment {
		return fmt.Errorf("save release %s: it belongs to environment %q, this store to %q", r.ID, r.Environment, s.environment)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("save release %s: %w", r.ID, err)
	}
	err = s.with(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `INSERT INTO obcd_releases (environment, id, body) VALUES ($1::text, $2::text, $3::text::jsonb)
			ON CONFLICT (environment, id) DO UPDATE SET body = EXCLUDED.body`, s.environment, r.ID, string(body))
		return err
	})
	if err != nil {
		return fmt.Errorf("save release %s: %w", r.ID, err)
	}
	return nil
}

// Get implements Store.
func (s *PostgresStore) Get(ctx context.Context, id string) (Release, error) {
	var body string
	err := s.with(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT body::text FROM obcd_releases WHERE environment = $1::text AND id = $2::text`,
			s.environment, id).Scan(&body)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		ids, err := s.ids(ctx)
		if err != nil {
			return Release{}, err
		}
		return Release{}, notFound(id, s.where(), ids)
	}
	if err != nil {
		return Release{}, fmt.Errorf("read release %s: %w", id, err)
	}
	return decodeRelease([]byte(body), fmt.Sprintf("release %s in %s", id, s.where()))
}

func (s *PostgresStore) ids(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.with(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT id FROM obcd_releases WHERE environment = $1::text`, s.environment)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	return ids, nil
}

// List implements Store.
func (s *PostgresStore) List(ctx context.Context) ([]Release, error) {
	type row struct {
		ID   string
		Body string
	}
	var rows []row
	err := s.with(ctx, func(conn *pgx.Conn) error {
		result, err := conn.Query(ctx, `SELECT id, body::text FROM obcd_releases WHERE environment = $1::text`, s.environment)
		if err != nil {
			return err
		}
		rows, err = pgx.CollectRows(result, pgx.RowToStructByPos[row])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	releases := make([]Release, 0, len(rows))
	for _, row := range rows {
		r, err := decodeRelease([]byte(row.Body), fmt.Sprintf("release %s in %s", row.ID, s.where()))
		if err != nil {
			return nil, err
		}
		releases = append(releases, r)
	}
	sortReleases(releases)
	return releases, nil
}

// Stable implements Store.
func (s *PostgresStore) Stable(ctx context.Context) (Release, bool, error) {
	releases, err := s.List(ctx)
	if err != nil {
		return Release{}, false, err
	}
	r, ok := newestStable(releases)
	return r, ok, nil
}

// SaveArtifacts implements Store: the release's previous artifacts are
// replaced in one transaction.
func (s *PostgresStore) SaveArtifacts(ctx context.Context, id string, artifacts []templates.Artifact) error {
	if err := checkReleaseID(id); err != nil {
		return fmt.Errorf("save artifacts: %w", err)
	}
	if err := checkArtifactPaths(artifacts); err != nil {
		return fmt.Errorf("save artifacts of %s: %w", id, err)
	}
	err := s.with(ctx, func(conn *pgx.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `DELETE FROM obcd_release_artifacts WHERE environment = $1::text AND id = $2::text`,
				s.environment, id); err != nil {
				return err
			}
			for _, a := range artifacts {
				if _, err := tx.Exec(ctx, `INSERT INTO obcd_release_artifacts (environment, id, path, mode, data)
					VALUES ($1::text, $2::text, $3::text, $4::integer, $5::bytea)`,
					s.environment, id, a.Path, int32(a.Mode.Perm()), a.Data); err != nil {
					return fmt.Errorf("%s: %w", a.Path, err)
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("save artifacts of %s: %w", id, err)
	}
	return nil
}

// LoadArtifacts implements Store.
func (s *PostgresStore) LoadArtifacts(ctx context.Context, id string) ([]templates.Artifact, error) {
	var artifacts []templates.Artifact
	err := s.with(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT path, mode, data FROM obcd_release_artifacts
			WHERE environment = $1::text AND id = $2::text ORDER BY path`, s.environment, id)
		if err != nil {
			return err
		}
		artifacts, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (templates.Artifact, error) {
			var a templates.Artifact
			var mode int32
			err := row.Scan(&a.Path, &mode, &a.Data)
			a.Mode = fs.FileMode(mode).Perm()
			return a, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load artifacts of %s: %w", id, err)
	}
	if len(artifacts) == 0 {
		return nil, fmt.Errorf("%w %s in obcd_release_artifacts (environment %q)", ErrNoArtifacts, id, s.environment)
	}
	return artifacts, nil
}

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
	if err := ensureSchema(ctx, conn); err != nil {
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
	beat := func(info LockInfo) error { return l.beat(conn, info) }
	unlock := func() error { return l.release(conn, info.Token) }
	return newHeld(info, l.heartbeat, beat, unlock), nil
}

func writeLockRow(ctx context.Context, conn *pgx.Conn, environment string, info LockInfo) error {
	body, err := json.Marshal(info)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `INSERT INTO obcd_locks (environment, info) VALUES ($1::text, $2::text::jsonb)
		ON CONFLICT (environment) DO UPDATE SET info = EXCLUDED.info`, environment, string(body))
	return err
}

func readLockRow(ctx context.Context, conn *pgx.Conn, environment string) (LockInfo, error) {
	var body string
	err := conn.QueryRow(ctx, `SELECT info::text FROM obcd_locks WHERE environment = $1::text`, environment).Scan(&body)
	if err != nil {
		return LockInfo{}, err
	}
	var info LockInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		return LockInfo{}, fmt.Errorf("obcd_locks row of %q: %w", environment, err)
	}
	return info, nil
}

func (l *PostgresLocker) lockedError(ctx context.Context, conn *pgx.Conn) error {
	info, err := readLockRow(ctx, conn, l.environment)
	if errors.Is(err, pgx.ErrNoRows) {
		// The holder has the advisory lock but has not written its row yet.
		info = LockInfo{Operation: "unknown (just starting)", Started: l.now(), Heartbeat: l.now()}
	} else if err != nil {
		return fmt.Errorf("lock %s: %w", l.environment, err)
	}
	stale, reason := staleness(info, l.now(), currentHostName())
	return &LockedError{Environment: l.environment, Info: info, Stale: stale, StaleReason: reason}
}

// beat records a heartbeat. A closed connection means the session, and
// with it the advisory lock, is gone.
func (l *PostgresLocker) beat(conn *pgx.Conn, info LockInfo) error {
	ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
	defer cancel()
	err := writeLockRow(ctx, conn, l.environment, info)
	if err != nil && conn.IsClosed() {
		return fmt.Errorf("%w: the connection holding the advisory lock of %s ended: %w", ErrLockLost, l.environment, err)
	}
	return err
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

// UnlockPostgres breaks a Postgres lock (obcd unlock <env>): it ends the
// session holding the advisory lock, which frees it, and returns the lock
// record. Ending another role's session needs pg_signal_backend.
func UnlockPostgres(ctx context.Context, dsn, environment string) (LockInfo, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return LockInfo{}, fmt.Errorf("unlock %s: %w", environment, err)
	}
	defer closeConn(conn)
	if err := ensureSchema(ctx, conn); err != nil {
		return LockInfo{}, fmt.Errorf("unlock %s: %w", environment, err)
	}
	info, err := readLockRow(ctx, conn, environment)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return LockInfo{}, fmt.Errorf("unlock %s: %w", environment, err)
	}
	pids, err := advisoryHolders(ctx, conn, environment)
	if err != nil {
		return LockInfo{}, fmt.Errorf("unlock %s: %w", environment, err)
	}
	if len(pids) == 0 {
		return LockInfo{}, fmt.Errorf("%w: no session holds the advisory lock of %s; nothing to unlock", ErrNotLocked, environment)
	}
	for _, pid := range pids {
		var ended bool
		if err := conn.QueryRow(ctx, `SELECT pg_terminate_backend($1::integer, 5000)`, pid).Scan(&ended); err != nil {
			return LockInfo{}, fmt.Errorf("unlock %s: end session %d: %w", environment, pid, err)
		}
		if !ended {
			return LockInfo{}, fmt.Errorf("unlock %s: session %d did not end within 5s", environment, pid)
		}
	}
	if _, err := conn.Exec(ctx, `DELETE FROM obcd_locks WHERE environment = $1::text`, environment); err != nil {
		return LockInfo{}, fmt.Errorf("unlock %s: %w", environment, err)
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
