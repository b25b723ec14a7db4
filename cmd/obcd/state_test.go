package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obcd/obcd/internal/testsvc"
)

// TestState_PostgresBackendChosenByTheStack points a stack's state block
// at a real PostgreSQL: history reads releases from it, and unlock talks
// to its advisory lock.
func TestState_PostgresBackendChosenByTheStack(t *testing.T) {
	pg := testsvc.StartPostgres(t)
	dir := t.TempDir()
	src := `
stack "pgstate" {
  app_image = "obcd-state-test/app"
  version   = "v1"
}
secret "state_dsn" {}
service "web" "web" {}
state {
  backend = "postgres"
  dsn     = secret.state_dsn
}
environment "staging" {
  domain = "staging.state.test"
}
`
	if err := os.WriteFile(filepath.Join(dir, "obcd.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"OBCD_SECRET_STATE_DSN=" + fmt.Sprintf("postgres://postgres:%s@%s:%d/postgres?sslmode=disable", pg.Password, pg.Host, pg.Port)}
	h := obcd(t, dir, env, "history", "staging")
	if h.code != 0 || !strings.HasPrefix(h.stdout, "RELEASE") {
		t.Fatalf("history on the postgres backend: exit %d\n%s%s", h.code, h.stdout, h.stderr)
	}
	if out, err := pg.Psql("-d", "postgres", "-tA", "-c", "SELECT count(*) FROM obcd_releases"); err != nil || strings.TrimSpace(out) != "0" {
		t.Errorf("obcd_releases was not created in the state database: %q %v", out, err)
	}
	if u := obcd(t, dir, env, "unlock", "staging"); u.code != ExitFailure || !strings.Contains(u.stderr, "nothing to unlock") {
		t.Errorf("unlock with no holder: exit %d %s", u.code, u.stderr)
	}
	if bad := obcd(t, dir, nil, "history", "staging"); bad.code != ExitFailure || !strings.Contains(bad.stderr, "state_dsn") {
		t.Errorf("missing DSN secret must name it: exit %d %s", bad.code, bad.stderr)
	}
}
