package orchestrator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/state"
)

// TestDeploy_AReleaseThatDiesAfterTheSwitchIsRolledBackInTheWatchWindow:
// the release passes its probes, then its web process dies 12 s after
// start; the watch window sees the exit on the engine's event stream and
// rolls back to the stable release. A plain rollback afterwards goes to
// the release before the live one.
func TestDeploy_AReleaseThatDiesAfterTheSwitchIsRolledBackInTheWatchWindow(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	testsvc.BuildAppImage(t, e.engine.API.(testsvc.AppImageAPI), e.repo+":v5", testsvc.AppImageOptions{Version: "v5", DieAfter: 12 * time.Second})
	first, err := e.deployer("v1").Deploy(ctx, DeployOptions{})
	if err != nil {
		t.Fatalf("v1: %v\n%s", err, first.Report)
	}
	stable, err := e.deployer("v2").Deploy(ctx, DeployOptions{})
	if err != nil {
		t.Fatalf("v2: %v\n%s", err, stable.Report)
	}
	d := e.deployer("v5")
	d.Watch = 40 * time.Second
	stop := e.load()
	began := time.Now()
	result, err := d.Deploy(ctx, DeployOptions{})
	elapsed := time.Since(began)
	ok, failed := stop()
	if !errors.Is(err, ErrWatch) || !errors.Is(err, ErrRolledBack) || result.Release.Outcome != state.OutcomeRolledBack {
		t.Fatalf("v5: err %v, outcome %s; want rolled back from the watch window\n%s", err, result.Release.Outcome, result.Report)
	}
	t.Logf("v5 judged and rolled back in %s; %d of %d requests through the proxy failed meanwhile: %v",
		elapsed.Round(time.Second), failed, ok+failed, firstLine(err.Error()))
	if e.served() != "v2" {
		t.Errorf("served %q after the rollback, want v2", e.served())
	}
	if elapsed > 40*time.Second {
		t.Errorf("the rollback came after %s; the exit 12 s after start should end the window at once", elapsed)
	}
	back, err := e.deployer("v2").Rollback(ctx, RollbackOptions{})
	if err != nil {
		t.Fatalf("plain rollback: %v\n%s", err, back.Report)
	}
	if back.Release.RollbackOf != first.Release.ID || e.served() != "v1" {
		t.Errorf("a plain rollback went to %s serving %q, want the release before the live one, %s (v1)", back.Release.RollbackOf, e.served(), first.Release.ID)
	}
}
