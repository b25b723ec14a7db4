package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obcd/obcd/orchestrator"
)

// smallStack has one web service, so planning needs no images.
func smallStack(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	name := fmt.Sprintf("plan%d", os.Getpid())
	src := fmt.Sprintf(`
stack %q {
  app_image = "obcd-plan-test/app"
  version   = "v1"
}
django {
  migrate_command = ["/app", "-exit", "0"]
}
service "web" "web" {}
environment "staging" {
  domain = "staging.plan.test"
}
`, name)
	if err := os.WriteFile(filepath.Join(dir, "obcd.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPlan_ExitTwoWhenSomethingWouldChange(t *testing.T) {
	dir := smallStack(t)
	r := obcd(t, dir, nil, "plan", "staging")
	if r.code != ExitFound || !strings.Contains(r.stdout, "create") || !strings.Contains(r.stdout, "no existing container") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	j := obcd(t, dir, nil, "plan", "staging", "--json")
	var plan orchestrator.Plan
	if err := json.Unmarshal([]byte(j.stdout), &plan); err != nil || len(plan.Actions) == 0 {
		t.Errorf("plan --json: %v\n%s", err, j.stdout)
	}
	dry := obcd(t, dir, nil, "deploy", "staging", "--dry-run")
	if dry.code != 0 || !strings.Contains(dry.stdout, "Plan for") {
		t.Errorf("deploy --dry-run: exit %d\n%s%s", dry.code, dry.stdout, dry.stderr)
	}
}

// TestDeploy_ConcurrentDeployIsRefusedByTheLock holds the environment's
// lock as another deploy would, and runs a second one through the binary.
func TestDeploy_ConcurrentDeployIsRefusedByTheLock(t *testing.T) {
	dir := smallStack(t)
	held, err := orchestrator.NewFileLocker(filepath.Join(dir, ".obcd", "staging")).Acquire(context.Background(), "deploy", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	r := obcd(t, dir, nil, "deploy", "staging", "--skip-checks")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "pid") || !strings.Contains(r.stderr, "deploy") {
		t.Errorf("second deploy: exit %d\n%s", r.code, r.stderr)
	}
	if u := obcd(t, dir, nil, "unlock", "staging"); u.code != 0 || !strings.Contains(u.stdout, "Removed the lock") {
		t.Errorf("unlock: exit %d %s%s", u.code, u.stdout, u.stderr)
	}
}

func TestDeploy_GateStopsAStackWithErrors(t *testing.T) {
	dir := smallStack(t)
	r := obcd(t, dir, nil, "deploy", "staging")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "monitoring.E001") {
		t.Errorf("deploy of a stack with validation errors: exit %d\n%s", r.code, r.stderr)
	}
	if h := obcd(t, dir, nil, "history", "staging"); h.code != 0 || strings.Count(h.stdout, "\n") != 1 {
		t.Errorf("history after a refused deploy should be empty: %q", h.stdout)
	}
}
