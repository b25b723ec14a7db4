package orchestrator

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/state"
)

// webImageIDs are the image IDs the running web containers were created
// from, as docker inspect shows them.
func (e *deployEnv) webImageIDs() []string {
	e.t.Helper()
	var ids []string
	for _, id := range e.webIDs() {
		inspected, err := e.engine.API.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, inspected.Container.Image)
	}
	return ids
}

// TestRollback_RunsTheRecordedImageIDsNotTheTags: a release is tagged by
// image ID once proven; after CI rebuilds its tag, rollback --to it runs
// the image that was proven, and a rollback whose image is gone is
// refused before any change, naming it.
func TestRollback_RunsTheRecordedImageIDsNotTheTags(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	first, err := e.deployer("v1").Deploy(ctx, DeployOptions{})
	if err != nil {
		t.Fatalf("v1: %v\n%s", err, first.Report)
	}
	original := first.Release.ImageDigests["web"]
	if tagged, _, _ := e.engine.ImagePresent(ctx, e.repo+":stable-"+first.Release.ID); original == "" || tagged != original {
		t.Fatalf("%s:stable-%s is %q, want the proven image %q", e.repo, first.Release.ID, tagged, original)
	}
	second, err := e.deployer("v2").Deploy(ctx, DeployOptions{})
	if err != nil {
		t.Fatalf("v2: %v\n%s", err, second.Report)
	}
	if stable, _, _ := e.engine.ImagePresent(ctx, e.repo+":stable"); stable != second.Release.ImageDigests["web"] {
		t.Errorf("%s:stable is %s, want v2's image %s", e.repo, stable, second.Release.ImageDigests["web"])
	}

	rebuilt := testsvc.BuildAppImage(t, e.engine.API.(testsvc.AppImageAPI), e.repo+":v1", testsvc.AppImageOptions{Version: "v1-rebuilt"})
	if rebuilt == original {
		t.Fatal("the rebuild made the same image; the test proves nothing")
	}
	back, err := e.deployer("v2").Rollback(ctx, RollbackOptions{To: first.Release.ID})
	if err != nil {
		t.Fatalf("rollback --to %s: %v\n%s", first.Release.ID, err, back.Report)
	}
	for _, id := range e.webImageIDs() {
		if id != original {
			t.Errorf("a web container runs %s after the rollback, want the recorded %s (the rebuilt tag is %s)", id, original, rebuilt)
		}
	}
	if served := e.served(); served != "v1" {
		t.Errorf("served %q after the rollback, want v1 (not the rebuilt tag)", served)
	}

	// The v2 image, unused now, is removed by hand: a rollback to v2 is
	// refused before any change, naming it.
	gone := second.Release.ImageDigests["web"]
	if _, err := e.engine.API.(testsvc.AppImageAPI).ImageRemove(ctx, gone, client.ImageRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	before := e.webIDs()
	_, err = e.deployer("v2").Rollback(ctx, RollbackOptions{To: second.Release.ID})
	if !errors.Is(err, ErrImages) || !strings.Contains(err.Error(), gone) {
		t.Fatalf("rollback to a release whose image is gone: %v, want ErrImages naming %s", err, gone)
	}
	if after := e.webIDs(); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("a refused rollback changed the web containers: %v -> %v", before, after)
	}
}

// TestDeploy_RollbackFailedWhenThePreviousImageIsGone: the new release
// replaces web and fails its probes; the previous release's image was
// removed by hand meanwhile, so the rollback cannot run it: the outcome is
// rollback-failed, recorded, and the report says what runs now.
func TestDeploy_RollbackFailedWhenThePreviousImageIsGone(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	previous, err := e.deployer("v2").Deploy(ctx, DeployOptions{})
	if err != nil {
		t.Fatalf("v2: %v\n%s", err, previous.Report)
	}
	gone := previous.Release.ImageDigests["web"]
	d := e.deployer("v1")
	d.Probes = failingProbes
	events := d.Events
	d.Events = func(ev Event) {
		events(ev)
		if ev.Phase == "rollback" && strings.HasPrefix(ev.Message, "rolling back") {
			// v2's web containers are gone by now: its image goes too.
			if _, err := e.engine.API.(testsvc.AppImageAPI).ImageRemove(context.Background(), gone, client.ImageRemoveOptions{Force: true}); err != nil {
				t.Errorf("remove %s: %v", gone, err)
			}
		}
	}
	result, err := d.Deploy(ctx, DeployOptions{})
	if !errors.Is(err, ErrRollbackFailed) || result.Release.Outcome != state.OutcomeRollbackFailed {
		t.Fatalf("err %v, outcome %s; want rollback-failed\n%s", err, result.Release.Outcome, result.Report)
	}
	if saved, _ := e.store.Get(ctx, result.Release.ID); saved.Outcome != state.OutcomeRollbackFailed {
		t.Errorf("recorded %s, want rollback-failed", saved.Outcome)
	}
	for _, want := range []string{gone, "what runs now:", e.project + "-web-", "obcd rollback staging --to " + previous.Release.ID} {
		if !strings.Contains(result.Report, want) {
			t.Errorf("the report lacks %q:\n%s", want, result.Report)
		}
	}
}
