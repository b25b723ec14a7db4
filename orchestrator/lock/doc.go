// Package lock lets one deploy, rollback or down at a time change an
// environment: a lock file, or a PostgreSQL advisory lock, with a
// heartbeat, stale detection and a way to break it.
package lock
