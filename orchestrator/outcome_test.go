package orchestrator

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/orchestrator/state"
)

// failingProbes is a verification whose critical probe fails for good.
func failingProbes(*stackhcl.Stack) (probe.Plan, error) {
	return probe.Plan{Specs: []probe.Spec{{Name: "web-ready", Kind: "http", Critical: true,
		Check: probe.CheckFunc(func(context.Context) probe.Attempt { return probe.Fatalf("503 from /ready/") })}}}, nil
}

// TestDeploy_RollbackThatCannotBeProvenEndsRollbackFailed: the new
// release fails its probes, and so does the stable one it returns to, so
// the outcome is rollback-failed, recorded once, after the restore, and
// the report says what runs now and what to do.
func TestDeploy_RollbackThatCannotBeProvenEndsRollbackFailed(t *testing.T) {
	_, store, d := memUpgrade(t)
	d.Probes = failingProbes
	result, err := d.Deploy(context.Background(), DeployOptions{})
	if !errors.Is(err, ErrRollbackFailed) || errors.Is(err, ErrRolledBack) || result.Release.Outcome != state.OutcomeRollbackFailed {
		t.Fatalf("err %v, outcome %s; want rollback-failed", err, result.Release.Outcome)
	}
	saved, err := store.Get(context.Background(), result.Release.ID)
	if err != nil || saved.Outcome != state.OutcomeRollbackFailed || !strings.Contains(saved.Message, "rollback to") {
		t.Errorf("recorded %s (%q), %v; want rollback-failed with why", saved.Outcome, saved.Message, err)
	}
	for _, want := range []string{"what runs now:", "mem-staging-web-", "obcd rollback staging --to " + result.Release.RolledBackTo} {
		if !strings.Contains(result.Report, want) {
			t.Errorf("the report lacks %q:\n%s", want, result.Report)
		}
	}
}

// TestDeploy_RolledBackIsRecordedOnlyOnceTheStableReleaseIsProven: the
// failed release's record says rolled-back, and is written after the
// restore, never before.
func TestDeploy_RolledBackIsRecordedOnlyOnceTheStableReleaseIsProven(t *testing.T) {
	engine, store, d := memUpgrade(t)
	engine.unhealthy["mem/app:v2"] = true
	var outcomeWhenRestoring state.Outcome = "unset"
	d.Events = func(e Event) {
		if e.Phase == "plan" && e.Plan != nil && e.Plan.Release != "" && e.Plan.Version == "v1" {
			releases, _ := store.List(context.Background())
			outcomeWhenRestoring = releases[len(releases)-1].Outcome
		}
	}
	result, err := d.Deploy(context.Background(), DeployOptions{})
	if !errors.Is(err, ErrRolledBack) || result.Release.Outcome != state.OutcomeRolledBack {
		t.Fatalf("err %v, outcome %s; want rolled-back", err, result.Release.Outcome)
	}
	if outcomeWhenRestoring != state.OutcomeInProgress {
		t.Errorf("while the stable release was restored the failed one was recorded as %q, want in-progress", outcomeWhenRestoring)
	}
	if saved, _ := store.Get(context.Background(), result.Release.ID); saved.Outcome != state.OutcomeRolledBack {
		t.Errorf("recorded %s, want rolled-back", saved.Outcome)
	}
}

// TestRollback_GoesToThePreviousGoodReleaseAndRefusesTheLiveOne: without
// --to, a rollback goes to the release before the live one, not to the
// live one; to the live one it is refused, naming live and previous.
func TestRollback_GoesToThePreviousGoodReleaseAndRefusesTheLiveOne(t *testing.T) {
	engine, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	ctx := context.Background()
	var ids []string
	for _, version := range []string{"v1", "v2", "v3"} {
		result, err := memDeployer(t, engine, store, version).Deploy(ctx, DeployOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, result.Release.ID)
	}
	_, err := memDeployer(t, engine, store, "v3").Rollback(ctx, RollbackOptions{To: ids[2]})
	if err == nil || !strings.Contains(err.Error(), "release "+ids[2]+" is what runs now") || !strings.Contains(err.Error(), "previous good release is "+ids[1]) {
		t.Fatalf("rollback --to the live release: %v, want a refusal naming live %s and previous %s", err, ids[2], ids[1])
	}
	result, err := memDeployer(t, engine, store, "v3").Rollback(ctx, RollbackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if result.Release.RollbackOf != ids[1] || result.Release.Version != "v2" {
		t.Fatalf("a plain rollback went to %s (%s), want the previous release %s (v2)", result.Release.RollbackOf, result.Release.Version, ids[1])
	}
	containers, _ := engine.Observe(ctx, "mem-staging")
	for _, c := range containers {
		if !c.OneOff && c.Image != "mem/app:v2" && !strings.HasSuffix(c.Image, "mem/app:v2") {
			t.Errorf("after the rollback %s runs %s, want v2", c.Name, c.Image)
		}
	}
	// Again: the live release is now the rollback (v2); previous is v3.
	releases, _ := store.List(ctx)
	live, _ := state.Live(releases)
	previous, _ := state.Previous(releases, live)
	if live.ID != result.Release.ID || previous.ID != ids[2] {
		t.Errorf("live %s, previous %s; want the rollback %s and v3 %s", live.ID, previous.ID, result.Release.ID, ids[2])
	}
}

// TestRollback_PullsBackByItsRegistryDigestAnImageTheEngineLost: a
// release records the registry digest of each image it ran. When the
// engine has lost an image (pruned, or a new node), a rollback to that
// release pulls it back by that digest, before any change, and refuses
// an image that is not the one the release recorded.
func TestRollback_PullsBackByItsRegistryDigestAnImageTheEngineLost(t *testing.T) {
	ctx := context.Background()
	const digest = "reg.example.org/mem/app@sha256:1111"
	setup := func(t *testing.T, pulledID string) (*memEngine, state.Store, string) {
		engine, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
		engine.repoDigests = map[string]string{"sha256:mem/app:v1": digest}
		first, err := memDeployer(t, engine, store, "v1").Deploy(ctx, DeployOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := first.Release.RepoDigests["web"]; got != digest {
			t.Fatalf("release v1 recorded the repo digest %q for web, want %s", got, digest)
		}
		if _, err := memDeployer(t, engine, store, "v2").Deploy(ctx, DeployOptions{}); err != nil {
			t.Fatal(err)
		}
		engine.missing = map[string]bool{"mem/app:v1": true, "sha256:mem/app:v1": true}
		engine.pulled = map[string]string{digest: pulledID}
		engine.steps()
		return engine, store, first.Release.ID
	}

	t.Run("TheRecordedImage", func(t *testing.T) {
		engine, store, v1 := setup(t, "sha256:mem/app:v1")
		result, err := memDeployer(t, engine, store, "v2").Rollback(ctx, RollbackOptions{To: v1})
		if err != nil {
			t.Fatal(err)
		}
		images := result.Plan.Images
		if len(images) != 1 || !images[0].Pull || images[0].Image != digest || images[0].ID != "sha256:mem/app:v1" ||
			!strings.Contains(result.Plan.String(), "pull "+digest) {
			t.Fatalf("rollback plan images %+v, want a pull of %s for the recorded ID:\n%s", images, digest, result.Plan)
		}
		steps := engine.steps()
		if len(steps) == 0 || steps[0] != "pull "+digest {
			t.Fatalf("rollback steps:\n%s\nwant the pull by digest first", strings.Join(steps, "\n"))
		}
		if result.Release.ImageDigests["web"] != "sha256:mem/app:v1" {
			t.Errorf("the rollback recorded web's image as %q", result.Release.ImageDigests["web"])
		}
	})
	t.Run("AnotherImageIsRefused", func(t *testing.T) {
		engine, store, v1 := setup(t, "sha256:someone-else")
		_, err := memDeployer(t, engine, store, "v2").Rollback(ctx, RollbackOptions{To: v1})
		if err == nil || !strings.Contains(err.Error(), "but the release recorded sha256:mem/app:v1") {
			t.Fatalf("a pull that gives another image: %v", err)
		}
		for _, step := range engine.steps() {
			if !strings.HasPrefix(step, "pull ") {
				t.Errorf("the refused rollback changed something: %s", step)
			}
		}
	})
}
