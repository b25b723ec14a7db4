// Package pgschema creates the tables obcd keeps in a PostgreSQL
// database (release history, locks), safely when several obcd processes
// start at once.
package pgschema

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Ensure runs ddl (CREATE TABLE IF NOT EXISTS statements) in one
// transaction. Concurrent first runs are serialised with a
// transaction-scoped advisory lock, since CREATE TABLE IF NOT EXISTS
// alone can still collide.
func Ensure(ctx context.Context, conn *pgx.Conn, ddl string) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('obcd-schema'))"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, ddl)
		return err
	})
	if err != nil {
		return fmt.Errorf("create obcd tables: %w", err)
	}
	return nil
}
