package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/obcd/obcd/internal/pgschema"
	"github.com/obcd/obcd/templates"
)

// releaseSchema holds release history and artifacts for environments
// that a team shares. Every statement names its parameter types, so it
// also runs with default_query_exec_mode=exec.
const releaseSchema = `
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
);`

// PostgresStore keeps one environment's releases in Postgres, over one
// connection that is reopened when it breaks.
type PostgresStore struct {
	dsn         string
	environment string

	mu   sync.Mutex
	conn *pgx.Conn
}

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
	if err := pgschema.Ensure(ctx, conn, releaseSchema); err != nil {
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

// Delete implements Store, in one transaction.
func (s *PostgresStore) Delete(ctx context.Context, id string) error {
	err := s.with(ctx, func(conn *pgx.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, table := range []string{"obcd_release_artifacts", "obcd_releases"} {
				if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE environment = $1::text AND id = $2::text`, s.environment, id); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("delete release %s: %w", id, err)
	}
	return nil
}
