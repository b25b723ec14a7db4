package templates

import (
	"strconv"

	stackhcl "github.com/obcd/obcd/hcl"
)

// Reload says how a running container takes a new version of a rendered
// file with no restart. The files that hold password verifiers reload:
// a rotated secret then changes them without recreating the database or
// the pool, so nothing drops a connection.
type Reload struct {
	// Exec applies the file in the container; "{file}" stands for the path
	// of the version to apply.
	Exec []string
	// Stage is where a new version waits while Exec applies it.
	Stage string
	// Signal is sent to the container's main process once the new version
	// is in place.
	Signal string
	// How says what applying it does, for the plan.
	How string
}

// ReloadOf is how the artifact at path reloads in a running container,
// or nil when a change to it recreates the container.
//   - roles.sql is idempotent SQL (ALTER ROLE … PASSWORD with the
//     verifier): psql runs it in the postgres container on the unix
//     socket, where pg_hba.conf trusts local connections, so no port need
//     be published and no superuser password travels. It also runs once
//     a new postgres container is healthy: the image runs its init
//     scripts only on an empty data directory.
//   - PgBouncer re-reads its userlist on SIGHUP (the same as RELOAD on
//     its admin console), keeping every client and server connection.
func ReloadOf(s *stackhcl.Stack, path string) *Reload {
	switch path {
	case PathPostgresRoles:
		server := s.First(stackhcl.KindPostgres)
		if server == nil || server.Postgres == nil {
			return nil
		}
		return &Reload{
			Exec: []string{"psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", "-h", "/var/run/postgresql",
				"-p", strconv.Itoa(server.Port), "-U", "postgres", "-d", server.Postgres.Database, "-f", "{file}"},
			Stage: "/tmp/obcd-roles.sql",
			How:   "psql applies the roles and their password verifiers on the running server",
		}
	case PathPgBouncerUserlist:
		return &Reload{Signal: "HUP", How: "PgBouncer re-reads it on SIGHUP"}
	}
	return nil
}
