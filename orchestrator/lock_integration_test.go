package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obcd/obcd/internal/who"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/lock"
	"github.com/obcd/obcd/orchestrator/state"
)

// TestDeploy_ALostLockStopsTheDeployAndRollsBack: a second process runs
// obcd unlock while the deploy rolls web; the deploy stops before its next
// change (retiring the old replicas), rolls back what it changed, and
// names who broke the lock.
func TestDeploy_ALostLockStopsTheDeployAndRollsBack(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	if _, err := e.deployer("v1").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	bin := obcdBinary(t)
	var unlock *exec.Cmd
	var unlockOut []byte
	d := e.deployer("v2")
	events := d.Events
	d.Events = func(ev Event) {
		events(ev)
		if unlock == nil && ev.Message == "healthy, in rotation" && strings.Contains(ev.Container, "-web-") {
			unlock = exec.Command(bin, "-f", e.file, "--state-dir", filepath.Join(filepath.Dir(e.file), ".obcd"), "unlock", "staging")
			var err error
			if unlockOut, err = unlock.CombinedOutput(); err != nil {
				t.Errorf("obcd unlock: %v\n%s", err, unlockOut)
			}
		}
	}
	result, err := d.Deploy(ctx, DeployOptions{})
	if unlock == nil {
		t.Fatal("the deploy finished before obcd unlock could run")
	}
	want := fmt.Sprintf("broken by %s on %s (pid %d)", who.User(), who.Host(), unlock.Process.Pid)
	if !errors.Is(err, lock.ErrLockLost) || !strings.Contains(err.Error(), want) {
		t.Fatalf("deploy after obcd unlock: %v, want ErrLockLost saying %q\n%s", err, want, unlockOut)
	}
	if !errors.Is(err, ErrRolledBack) || result.Release.Outcome != state.OutcomeRolledBack {
		t.Errorf("outcome %s (%v), want rolled-back", result.Release.Outcome, err)
	}
	if e.served() != "v1" {
		t.Errorf("served %q after the lost lock, want v1 back", e.served())
	}
	for _, c := range mustObserve(t, e) {
		if c.Service == "web" && !strings.HasSuffix(c.Image, ":v1") {
			t.Errorf("%s runs %s after the rollback, want v1", c.Name, c.Image)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(e.file), ".obcd", "staging", "lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the lock file after the deploy: %v, want none (the deploy must not take it back)", err)
	}
}

func mustObserve(t *testing.T, e *deployEnv) []engine.Container {
	t.Helper()
	containers, err := e.engine.Observe(context.Background(), e.project)
	if err != nil {
		t.Fatal(err)
	}
	return containers
}
