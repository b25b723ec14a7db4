package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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

// TestDown_VolumesAsksAndWithoutATerminalNeedsYes: down --volumes with
// stdin not a terminal and no --yes refuses with exit 64, and the
// environment's volume, with its data, is still there; with --yes it is
// removed. On the real engine.
func TestDown_VolumesAsksAndWithoutATerminalNeedsYes(t *testing.T) {
	dir := workspace(t)
	if r := obcd(t, dir, nil, "secrets", "init", "staging"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	project := "obcms-staging"
	volume := "obcd-down-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if out, err := exec.Command("docker", "volume", "create", "--label", "com.docker.compose.project="+project, volume).CombinedOutput(); err != nil {
		t.Fatalf("docker volume create: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "volume", "rm", "-f", volume).Run() })
	exists := func() bool { return exec.Command("docker", "volume", "inspect", volume).Run() == nil }

	r := obcd(t, dir, []string{"DOCKER_HOST=unix:///var/run/docker.sock"}, "down", "staging", "--volumes")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--yes") || !strings.Contains(r.stderr, "nothing was removed") {
		t.Errorf("down --volumes without a terminal: exit %d\n%s", r.code, r.stderr)
	}
	if !exists() {
		t.Fatal("down --volumes without a terminal or --yes removed the volume")
	}
	r = obcd(t, dir, []string{"DOCKER_HOST=unix:///var/run/docker.sock"}, "down", "staging", "--volumes", "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "and its volumes") {
		t.Errorf("down --volumes --yes: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if exists() {
		t.Error("down --volumes --yes left the volume")
	}
}
