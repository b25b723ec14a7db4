package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/state"
	"github.com/obcd/obcd/templates"
)

// memUpgrade deploys v1 on a fresh fake engine and returns it, its store,
// and a deployer of v2 to go on with.
func memUpgrade(t *testing.T) (*memEngine, state.Store, *Deployer) {
	t.Helper()
	engine, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	if _, err := memDeployer(t, engine, store, "v1").Deploy(context.Background(), DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	engine.steps()
	engine.observes, engine.observed, engine.oneOffs = 0, nil, nil
	return engine, store, memDeployer(t, engine, store, "v2")
}

// TestDeploy_ApplyingAPlanObservesTheEngineOnceBeforePlanning: the
// executor finds every container in the plan; it never lists the project
// again to find them or to number new ones.
func TestDeploy_ApplyingAPlanObservesTheEngineOnceBeforePlanning(t *testing.T) {
	engine, _, d := memUpgrade(t)
	result, err := d.Deploy(context.Background(), DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !result.Plan.Changes() {
		t.Fatalf("the upgrade planned nothing:\n%s", result.Plan)
	}
	if engine.observes != 1 || engine.observed[0] != 0 {
		t.Errorf("Observe called %d times, the first after %v steps; want once, before any step:\n%s",
			engine.observes, engine.observed, strings.Join(engine.steps(), "\n"))
	}
}

// TestDeploy_AppliesThePlanItShows: what deploy confirms is what runs:
// the containers created are the ones the plan names, with its numbers,
// and the one-offs run under the names it printed.
func TestDeploy_AppliesThePlanItShows(t *testing.T) {
	engine, _, d := memUpgrade(t)
	var confirmed Plan
	result, err := d.Deploy(context.Background(), DeployOptions{Confirm: func(p Plan) bool { confirmed = p; return true }})
	if err != nil {
		t.Fatal(err)
	}
	if confirmed.String() != result.Plan.String() || confirmed.String() == "" {
		t.Fatalf("confirmed:\n%s\napplied:\n%s", confirmed, result.Plan)
	}
	var wantCreated, wantOneOffs []string
	for _, a := range confirmed.Actions {
		switch a.Kind {
		case ActionCreate, ActionRecreate:
			wantCreated = append(wantCreated, "create "+a.Container+" (mem/app:v2)")
		case ActionRun, ActionBackup:
			wantOneOffs = append(wantOneOffs, a.Container)
		}
	}
	var created []string
	for _, step := range engine.steps() {
		if strings.HasPrefix(step, "create ") {
			created = append(created, step)
		}
	}
	slices.Sort(created) // the new replicas of one wave start together
	slices.Sort(wantCreated)
	if strings.Join(created, "\n") != strings.Join(wantCreated, "\n") || len(created) != 2 {
		t.Errorf("created:\n%s\nthe plan said:\n%s", strings.Join(created, "\n"), strings.Join(wantCreated, "\n"))
	}
	if strings.Join(engine.oneOffs, " ") != strings.Join(wantOneOffs, " ") || len(wantOneOffs) != 1 ||
		!strings.Contains(confirmed.String(), wantOneOffs[0]) {
		t.Errorf("one-offs run as %v, the plan printed %v:\n%s", engine.oneOffs, wantOneOffs, confirmed)
	}
}

// TestDeploy_ANoToThePlanChangesNothing: a cancelled deploy leaves the
// engine and the history as they were.
func TestDeploy_ANoToThePlanChangesNothing(t *testing.T) {
	engine, store, d := memUpgrade(t)
	before, _ := store.List(context.Background())
	_, err := d.Deploy(context.Background(), DeployOptions{Confirm: func(Plan) bool { return false }})
	if !errors.Is(err, ErrCancelled) {
		t.Fatalf("err = %v, want ErrCancelled", err)
	}
	after, _ := store.List(context.Background())
	if steps := engine.steps(); len(steps) != 0 || len(after) != len(before) {
		t.Errorf("a cancelled deploy changed something: steps %v, %d releases before, %d after", steps, len(before), len(after))
	}
}

// savedRoundTrip plans with d, saves the plan as obcd plan --out writes
// it (JSON), and reads it back.
func savedRoundTrip(t *testing.T, d *Deployer) *SavedPlan {
	t.Helper()
	planned, err := d.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(d.SavePlan(planned))
	if err != nil {
		t.Fatal(err)
	}
	var saved SavedPlan
	if err := json.Unmarshal(data, &saved); err != nil {
		t.Fatal(err)
	}
	if saved.Plan.String() != planned.Plan.String() || saved.Release.ID != planned.Release.ID ||
		len(saved.Observed) != len(planned.Observed) || len(saved.Observed) == 0 {
		t.Fatalf("the saved plan did not round-trip:\n%s\nwant:\n%s", saved.Plan, planned.Plan)
	}
	return &saved
}

// TestDeploy_SavedPlanRoundTripsAndAppliesExactly: a saved plan applies
// as it was made: its release ID and its containers.
func TestDeploy_SavedPlanRoundTripsAndAppliesExactly(t *testing.T) {
	engine, store, d := memUpgrade(t)
	saved := savedRoundTrip(t, d)
	result, err := memDeployer(t, engine, store, "v2").Deploy(context.Background(), DeployOptions{Saved: saved})
	if err != nil {
		t.Fatal(err)
	}
	if result.Release.ID != saved.Release.ID || result.Plan.String() != saved.Plan.String() || !result.Release.Stable {
		t.Errorf("applied release %s (stable %v), plan:\n%s\nwant the saved release %s and plan:\n%s",
			result.Release.ID, result.Release.Stable, result.Plan, saved.Release.ID, saved.Plan)
	}
	// Applied once, it is used up.
	_, err = memDeployer(t, engine, store, "v2").Deploy(context.Background(), DeployOptions{Saved: saved})
	if !errors.Is(err, ErrStalePlan) || !strings.Contains(err.Error(), "already deployed from this plan") {
		t.Errorf("applying a saved plan twice: %v, want ErrStalePlan", err)
	}
}

// TestDeploy_SavedPlanRefusedAfterTheEngineOrTheStackChanged: a container
// removed by hand, an edit of the stack file (even a comment), another
// version or a rotated secret each make the plan stale; nothing runs.
func TestDeploy_SavedPlanRefusedAfterTheEngineOrTheStackChanged(t *testing.T) {
	cases := map[string]struct {
		change func(t *testing.T, engine *memEngine) *Deployer
		want   string
	}{
		"container removed by hand": {func(t *testing.T, engine *memEngine) *Deployer {
			for id, c := range engine.byID {
				if c.Name == "mem-staging-web-1" {
					delete(engine.byID, id)
				}
			}
			return nil
		}, "container mem-staging-web-1 was removed"},
		"stack file edited": {func(t *testing.T, engine *memEngine) *Deployer {
			return memDeployerFrom(t, engine, "# reviewed\n"+memStack, "v2")
		}, "the stack file mem.hcl changed"},
		"another version": {func(t *testing.T, engine *memEngine) *Deployer {
			return memDeployerFrom(t, engine, memStack, "v3")
		}, "the rendered configuration changed"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			engine, store, d := memUpgrade(t)
			saved := savedRoundTrip(t, d)
			apply := tc.change(t, engine)
			if apply == nil {
				apply = memDeployer(t, engine, store, "v2")
			}
			apply.Store = store
			engine.steps()
			_, err := apply.Deploy(context.Background(), DeployOptions{Saved: saved})
			if !errors.Is(err, ErrStalePlan) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrStalePlan saying %q", err, tc.want)
			}
			if steps := engine.steps(); len(steps) != 0 {
				t.Errorf("a stale plan changed the engine: %v", steps)
			}
			releases, _ := store.List(context.Background())
			for _, r := range releases {
				if r.ID == saved.Release.ID {
					t.Errorf("a stale plan was recorded as release %s (%s)", r.ID, r.Outcome)
				}
			}
		})
	}
}

func TestDeploy_SavedPlanRefusedAfterASecretChanged(t *testing.T) {
	engine, store, d := memUpgrade(t)
	d.Stack.Secrets = append(d.Stack.Secrets, &stackhcl.Secret{Name: "api_token"})
	d.Secrets = templates.MapSecrets{"api_token": "first-value-0000"}
	saved := savedRoundTrip(t, d)
	again := memDeployer(t, engine, store, "v2")
	again.Stack.Secrets = d.Stack.Secrets
	again.Secrets = templates.MapSecrets{"api_token": "rotated-value-1111"}
	_, err := again.Deploy(context.Background(), DeployOptions{Saved: saved})
	if !errors.Is(err, ErrStalePlan) || !strings.Contains(err.Error(), "secret api_token changed") {
		t.Fatalf("err = %v, want ErrStalePlan naming the secret", err)
	}
	if strings.Contains(err.Error(), "first-value") || strings.Contains(err.Error(), "rotated-value") {
		t.Errorf("the refusal shows a secret value: %v", err)
	}
}
