// Package state keeps an environment's release history: each release's
// record and its rendered files, in local files or in PostgreSQL.
package state
