package orchestrator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/orchestrator/state"
)

// TestDeploy_AFailureInTheWatchWindowRollsBack: a container of the new
// release exits after the switch, inside the window: the deploy rolls
// back to the stable release and records rolled-back.
func TestDeploy_AFailureInTheWatchWindowRollsBack(t *testing.T) {
	mem, store, d := memUpgrade(t)
	mem.failures = make(chan engine.Failure)
	d.Watch = time.Minute
	d.Events = func(e Event) {
		if e.Phase == "watch" && strings.HasPrefix(e.Message, "watching release") {
			go func() {
				mem.failures <- engine.Failure{Container: "mem-staging-web-3", Service: "web", Reason: "exited with code 1", Time: time.Now()}
			}()
		}
	}
	began := time.Now()
	result, err := d.Deploy(context.Background(), DeployOptions{})
	if !errors.Is(err, ErrWatch) || !errors.Is(err, ErrRolledBack) || result.Release.Outcome != state.OutcomeRolledBack {
		t.Fatalf("err %v, outcome %s; want rolled back from the watch window", err, result.Release.Outcome)
	}
	if !strings.Contains(err.Error(), "mem-staging-web-3") || !strings.Contains(err.Error(), "exited with code 1") {
		t.Errorf("the error does not name the container and its exit: %v", err)
	}
	if elapsed := time.Since(began); elapsed > 30*time.Second {
		t.Errorf("the failure was judged after %s; the event should end the window at once", elapsed)
	}
	releases, _ := store.List(context.Background())
	if live, _ := state.Live(releases); live.Version != "v1" {
		t.Errorf("live after the rollback: %s (%s), want v1", live.ID, live.Version)
	}
	containers, _ := mem.Observe(context.Background(), "mem-staging")
	for _, c := range containers {
		if c.Image != "mem/app:v1" {
			t.Errorf("after the rollback %s runs %s, want mem/app:v1", c.Name, c.Image)
		}
	}
}

// TestDeploy_AReleaseBecomesStableOnlyAfterItsWatchWindow: during the
// window the release is in progress, not stable; after a quiet window it
// is succeeded and stable, and the progress said how long was left.
func TestDeploy_AReleaseBecomesStableOnlyAfterItsWatchWindow(t *testing.T) {
	_, store, d := memUpgrade(t)
	d.Watch = 1500 * time.Millisecond
	var during state.Release
	var watchEvents []string
	d.Events = func(e Event) {
		if e.Phase != "watch" {
			return
		}
		watchEvents = append(watchEvents, e.Message)
		if strings.HasPrefix(e.Message, "watching release") {
			releases, _ := store.List(context.Background())
			during = releases[len(releases)-1]
		}
	}
	result, err := d.Deploy(context.Background(), DeployOptions{})
	if err != nil || result.Release.Outcome != state.OutcomeSucceeded || !result.Release.Stable {
		t.Fatalf("err %v, outcome %s, stable %v; want succeeded and stable after a quiet window", err, result.Release.Outcome, result.Release.Stable)
	}
	if during.ID != result.Release.ID || during.Outcome != state.OutcomeInProgress || during.Stable {
		t.Errorf("during the window the release was %s (%s, stable %v), want in progress and not stable", during.ID, during.Outcome, during.Stable)
	}
	if len(watchEvents) < 2 || !strings.Contains(watchEvents[0], "for 1.5s") || !strings.Contains(watchEvents[len(watchEvents)-1], "held for 1.5s") {
		t.Errorf("watch progress: %q", watchEvents)
	}
}

// TestWatchRound_LeavesTheMonitoringPlaneToTheVerificationWindow: in the
// watch window a failing critical probe of the release fails it, but a
// failing Prometheus targets probe does not (right after a roll,
// Prometheus's DNS discovery still lists only the replicas that left).
func TestWatchRound_LeavesTheMonitoringPlaneToTheVerificationWindow(t *testing.T) {
	failing := func(name, component string) probe.Spec {
		return probe.Spec{Name: name, Component: component, Critical: true,
			Check: probe.CheckFunc(func(context.Context) probe.Attempt { return probe.Fatalf("down") })}
	}
	passing := probe.Spec{Name: "web-ready", Component: probe.ComponentWeb, Critical: true,
		Check: probe.CheckFunc(func(context.Context) probe.Attempt { return probe.Passed("200") })}
	monitoring := probe.Plan{Specs: []probe.Spec{passing, failing("prometheus-targets", probe.ComponentPrometheus),
		failing("alertmanager-ready", probe.ComponentAlertmanager)}}
	if err := watchRound(context.Background(), monitoring); err != nil {
		t.Errorf("a failing monitoring probe failed the watch: %v", err)
	}
	release := probe.Plan{Specs: []probe.Spec{passing, failing("redis-roundtrip", probe.ComponentRedis)}}
	if err := watchRound(context.Background(), release); err == nil || !strings.Contains(err.Error(), "redis-roundtrip") {
		t.Errorf("a failing probe of the release: %v, want the watch to fail naming it", err)
	}
}
