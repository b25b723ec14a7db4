package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obcd/obcd/orchestrator"
	"github.com/obcd/obcd/orchestrator/lock"
	"github.com/obcd/obcd/orchestrator/state"
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
	held, err := lock.NewFileLocker(filepath.Join(dir, ".obcd", "staging")).Acquire(context.Background(), "deploy", 0)
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

// TestDeploy_HeldLockFailsBeforeTheGateRuns: the gate runs inside the
// lock, so a deploy against a held lock says so, and nothing of the
// gate (this stack has validation errors) is printed.
func TestDeploy_HeldLockFailsBeforeTheGateRuns(t *testing.T) {
	dir := smallStack(t)
	held, err := lock.NewFileLocker(filepath.Join(dir, ".obcd", "staging")).Acquire(context.Background(), "deploy", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	r := obcd(t, dir, nil, "deploy", "staging")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "environment is locked") {
		t.Fatalf("deploy against a held lock: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "monitoring.E001") || strings.Contains(r.stderr, "✗") {
		t.Errorf("the gate ran before the lock was taken:\n%s", r.stderr)
	}
	if ungated := obcd(t, dir, nil, "validate", "staging"); !strings.Contains(ungated.stdout, "monitoring.E001") {
		t.Fatalf("the stack should fail the gate, or this test proves nothing:\n%s", ungated.stdout)
	}
}

// TestDeploy_TheGateSeesTheImageGivenWithImage: a stack that sets no
// version fails audit.A004, unless --image gives the version it deploys.
func TestDeploy_TheGateSeesTheImageGivenWithImage(t *testing.T) {
	dir := smallStack(t)
	file := filepath.Join(dir, "obcd.hcl")
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(src), `version   = "v1"`, "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	without := obcd(t, dir, nil, "deploy", "staging")
	if without.code != ExitFailure || !strings.Contains(without.stderr, "audit.A004") {
		t.Fatalf("deploy of a stack without a version: exit %d, want audit.A004 from the gate:\n%s", without.code, without.stderr)
	}
	with := obcd(t, dir, nil, "deploy", "staging", "--image", "1.4.2")
	if with.code != ExitFailure || strings.Contains(with.stderr, "audit.A004") || !strings.Contains(with.stderr, "monitoring.E001") {
		t.Errorf("deploy --image 1.4.2: exit %d; the gate must run and see version 1.4.2 (no audit.A004):\n%s", with.code, with.stderr)
	}
	plan := obcd(t, dir, nil, "deploy", "staging", "--image", "1.4.2", "--dry-run")
	if !strings.Contains(plan.stdout, "(version 1.4.2)") {
		t.Errorf("deploy --image --dry-run does not plan version 1.4.2:\n%s%s", plan.stdout, plan.stderr)
	}
}

// TestPlan_SavedPlanIsPrivateHoldsNoSecretAndGoesStaleWithTheStack: plan
// --out writes a 0600 file with no secret value; deploy --plan refuses it
// once the stack file was edited, and refuses --var beside it.
func TestPlan_SavedPlanIsPrivateHoldsNoSecretAndGoesStaleWithTheStack(t *testing.T) {
	dir := workspace(t)
	if r := obcd(t, dir, nil, "secrets", "init", "staging"); r.code != 0 {
		t.Fatalf("secrets init: %s", r.stderr)
	}
	planPath := filepath.Join(dir, "staging.plan")
	r := obcd(t, dir, nil, "plan", "staging", "--out", planPath)
	if r.code != ExitFound || !strings.Contains(r.stderr, "obcd deploy staging --plan "+planPath) {
		t.Fatalf("plan --out: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	info, err := os.Stat(planPath)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("plan file: %v, mode %v; want 0600", err, info.Mode())
	}
	saved, _ := os.ReadFile(planPath)
	secrets, _ := os.ReadFile(filepath.Join(dir, ".obcd", "staging.secrets"))
	for _, line := range strings.Split(string(secrets), "\n") {
		if _, value, ok := strings.Cut(line, "="); ok && len(value) >= 16 && strings.Contains(string(saved), value) {
			t.Errorf("the saved plan holds the value of %s", strings.SplitN(line, "=", 2)[0])
		}
	}
	var file struct {
		Release struct{ ID string } `json:"release"`
		Plan    struct {
			Actions []struct{ Wave int } `json:"actions"`
		} `json:"plan"`
	}
	if err := json.Unmarshal(saved, &file); err != nil || file.Release.ID == "" || len(file.Plan.Actions) == 0 || file.Plan.Actions[0].Wave == 0 {
		t.Fatalf("the saved plan lacks its release or its waves: %v\n%s", err, saved)
	}
	if r := obcd(t, dir, nil, "deploy", "staging", "--plan", planPath, "--var", "app_version=2"); r.code != ExitUsage {
		t.Errorf("deploy --plan --var: exit %d, want a usage error\n%s", r.code, r.stderr)
	}
	stack := filepath.Join(dir, "obcd.hcl")
	src, _ := os.ReadFile(stack)
	if err := os.WriteFile(stack, append([]byte("# edited after the plan\n"), src...), 0o644); err != nil {
		t.Fatal(err)
	}
	stale := obcd(t, dir, nil, "deploy", "staging", "--plan", planPath, "--skip-checks")
	if stale.code != ExitFailure || !strings.Contains(stale.stderr, "the saved plan is out of date") || !strings.Contains(stale.stderr, "obcd.hcl changed") {
		t.Errorf("deploy --plan after an edit: exit %d\n%s", stale.code, stale.stderr)
	}
	if h := obcd(t, dir, nil, "history", "staging"); strings.Contains(h.stdout, file.Release.ID) {
		t.Errorf("a refused plan was recorded:\n%s", h.stdout)
	}
}

// TestDeploy_ExitCodeSaysTheOutcome: each outcome of a failed deploy has
// its own exit code and its own last line.
func TestDeploy_ExitCodeSaysTheOutcome(t *testing.T) {
	cases := []struct {
		err     error
		outcome state.Outcome
		code    int
		line    string
	}{
		{errors.Join(errors.New("probe web-ready failed"), orchestrator.ErrVerify, orchestrator.ErrRolledBack), state.OutcomeRolledBack, ExitRolledBack, "Rolled back to release r1: release r2 failed (rolled-back)."},
		{errors.Join(errors.New("probe web-ready failed"), orchestrator.ErrRollbackFailed), state.OutcomeRollbackFailed, ExitRollbackFailed, "the rollback to release r1 failed too (rollback-failed)"},
		{errors.Join(errors.New("image missing"), orchestrator.ErrImages), state.OutcomeFailed, ExitFailure, "deploy failed: image missing"},
	}
	for _, tc := range cases {
		var stderr strings.Builder
		opts := &deployOptions{globalOptions: &globalOptions{stdout: io.Discard, stderr: &stderr}}
		err := opts.report(orchestrator.DeployResult{Release: state.Release{ID: "r2", RolledBackTo: "r1", Outcome: tc.outcome}}, tc.err)
		if code := reportError(io.Discard, err); code != tc.code || !strings.Contains(stderr.String(), tc.line) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tc.outcome, code, stderr.String(), tc.code, tc.line)
		}
	}
}
