package orchestrator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/orchestrator/state"
	"github.com/obcd/obcd/orchestrator/swarm"
)

// memSwarm is an in-memory SwarmEngine: a registry that serves a digest
// per tag (which a test can move), and services that run what the last
// Apply gave them. An Apply of an image in broken stops at its service.
type memSwarm struct {
	served   map[string]string // tag -> digest the registry serves now
	running  map[string]string // service -> image its tasks run
	applies  [][]string        // each Apply: "service=image", in order
	broken   map[string]bool   // images whose service never converges
	unused   int               // RemoveUnused calls
	notTheir map[string]bool   // images no registry serves
}

func newMemSwarm() *memSwarm {
	return &memSwarm{served: map[string]string{}, running: map[string]string{}, broken: map[string]bool{}, notTheir: map[string]bool{}}
}

func (m *memSwarm) digestOf(tag string) string {
	if d, ok := m.served[tag]; ok {
		return d
	}
	sum := sha256.Sum256([]byte(tag))
	m.served[tag] = "sha256:" + hex.EncodeToString(sum[:])
	return m.served[tag]
}

func (m *memSwarm) Resolve(_ context.Context, specs []engine.ServiceSpec, pinned map[string]string) error {
	for i := range specs {
		if p := pinned[specs[i].Name]; p != "" {
			specs[i].RunImage = p
			continue
		}
		if m.notTheir[specs[i].Image] {
			return fmt.Errorf("service %s: image %s is not served by its registry", specs[i].Name, specs[i].Image)
		}
		repo, _, _ := strings.Cut(specs[i].Image, ":")
		specs[i].RunImage = repo + "@" + m.digestOf(specs[i].Image)
	}
	return nil
}

func (m *memSwarm) Plan(_ context.Context, specs []engine.ServiceSpec, _ swarm.Options) ([]swarm.Step, error) {
	waves, err := swarm.Waves(specs)
	if err != nil {
		return nil, err
	}
	var steps []swarm.Step
	for _, w := range waves {
		for _, s := range w {
			switch img, ok := m.running[s.Name]; {
			case !ok:
				steps = append(steps, swarm.Step{Service: s.Name, Change: swarm.Created, Cause: "new service"})
			case img == s.RunImage:
				steps = append(steps, swarm.Step{Service: s.Name, Change: swarm.Unchanged})
			default:
				steps = append(steps, swarm.Step{Service: s.Name, Change: swarm.Updated, Cause: "image " + img + " -> " + s.RunImage})
			}
		}
	}
	return steps, nil
}

func (m *memSwarm) Extra(context.Context, string, []engine.ServiceSpec) ([]string, error) {
	return nil, nil
}

func (m *memSwarm) Apply(ctx context.Context, specs []engine.ServiceSpec, opts swarm.Options, _ time.Duration, progress func(swarm.Step)) ([]swarm.Service, []swarm.Step, error) {
	steps, _ := m.Plan(ctx, specs, opts)
	var applied []string
	defer func() { m.applies = append(m.applies, applied) }()
	byName := map[string]engine.ServiceSpec{}
	for _, s := range specs {
		byName[s.Name] = s
	}
	for _, step := range steps {
		spec := byName[step.Service]
		applied = append(applied, spec.Name+"="+spec.RunImage)
		progress(step)
		m.running[spec.Name] = spec.RunImage
		if m.broken[spec.Image] {
			return nil, steps, fmt.Errorf("service %s: %w: task exited 1", spec.Name, swarm.ErrUpdatePaused)
		}
	}
	return nil, steps, nil
}

func (m *memSwarm) RemoveUnused(context.Context, string, []swarm.Service) ([]string, error) {
	m.unused++
	return nil, nil
}

func (m *memSwarm) RemoveProject(context.Context, string) error {
	m.running = map[string]string{}
	return nil
}

func (m *memSwarm) Status(context.Context, string) ([]swarm.ServiceStatus, []swarm.NodeStatus, error) {
	var out []swarm.ServiceStatus
	for name := range m.running {
		out = append(out, swarm.ServiceStatus{Service: name, Running: 1, Desired: 1})
	}
	return out, nil, nil
}

func memSwarmDeployer(t *testing.T, sw *memSwarm, store state.Store, version string) *Deployer {
	t.Helper()
	d := memDeployerFrom(t, newMemEngine(), strings.Replace(memStack, `domain = "staging.mem.test"`, `domain = "staging.mem.test"
  engine = "swarm"`, 1), version)
	d.Store, d.Swarm, d.Watch = store, sw, 0
	if !d.OnSwarm() {
		t.Fatal("the stack does not run on a swarm")
	}
	return d
}

// TestDeploySwarm_ARolledBackReleaseReturnsToTheDigestsItRecorded: a
// deploy to a swarm applies migrate before web with images pinned by
// digest and records them; a release whose web never converges is
// rolled back at release level to the digests the stable release
// recorded, even after its tag has moved to another image in the
// registry; a manual rollback does the same; and the container engine
// is never touched.
func TestDeploySwarm_ARolledBackReleaseReturnsToTheDigestsItRecorded(t *testing.T) {
	sw, store := newMemSwarm(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	ctx := context.Background()
	first, err := memSwarmDeployer(t, sw, store, "v1").Deploy(ctx, DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v1 := "mem/app@" + sw.digestOf("mem/app:v1")
	if got := strings.Join(sw.applies[0], " "); got != "migrate="+v1+" web="+v1 {
		t.Errorf("the first release applied %q, want migrate then web, pinned to %s", got, v1)
	}
	if first.Release.RepoDigests["web"] != v1 || !first.Release.Stable || first.Plan.Summary() != "2 services to create, 0 to update, 0 unchanged" {
		t.Errorf("first release: digests %v, stable %v, plan %q", first.Release.RepoDigests, first.Release.Stable, first.Plan.Summary())
	}
	if text := first.Plan.String(); !strings.Contains(text, "on the swarm") || !strings.Contains(text, "mem-staging_web") || !strings.Contains(text, "wave 2") {
		t.Errorf("the plan's text:\n%s", text)
	}
	if sw.unused != 1 {
		t.Errorf("unused secrets and configs were removed %d times after the release, want once", sw.unused)
	}
	// Nothing to do the second time.
	if again, err := memSwarmDeployer(t, sw, store, "v1").Deploy(ctx, DeployOptions{}); err != nil || again.Plan.Changes() || len(sw.applies) != 1 {
		t.Errorf("a second deploy of v1: %v, plan\n%s", err, again.Plan)
	}

	// The registry's v1 tag moves to another image; v2's web never
	// converges.
	sw.served["mem/app:v1"] = "sha256:" + strings.Repeat("e", 64)
	sw.broken["mem/app:v2"] = true
	result, err := memSwarmDeployer(t, sw, store, "v2").Deploy(ctx, DeployOptions{})
	if !errors.Is(err, ErrRolledBack) || !errors.Is(err, ErrConverge) || result.Release.Outcome != state.OutcomeRolledBack || result.Release.RolledBackTo != first.Release.ID {
		t.Fatalf("the broken release: %v, outcome %s, rolled back to %q", err, result.Release.Outcome, result.Release.RolledBackTo)
	}
	rollback := sw.applies[len(sw.applies)-1]
	if got := strings.Join(rollback, " "); got != "migrate="+v1+" web="+v1 {
		t.Errorf("the rollback applied %q, want every service back on the recorded %s", got, v1)
	}
	if sw.running["web"] != v1 || sw.running["migrate"] != v1 {
		t.Errorf("after the rollback the swarm runs %v", sw.running)
	}
	if !strings.Contains(result.Report, "what the swarm runs now") {
		t.Errorf("the report does not say what runs: %q", result.Report)
	}

	// v3 works; a manual rollback to the first release returns to its
	// digests, as a release of its own.
	if _, err := memSwarmDeployer(t, sw, store, "v3").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	back, err := memSwarmDeployer(t, sw, store, "v3").Rollback(ctx, RollbackOptions{To: first.Release.ID})
	if err != nil {
		t.Fatal(err)
	}
	if sw.running["web"] != v1 || back.Release.RollbackOf != first.Release.ID || !back.Release.Stable {
		t.Errorf("rollback --to the first release: runs %v, record %+v", sw.running, back.Release)
	}
	releases, _ := store.List(ctx)
	var outcomes []string
	for _, r := range releases {
		outcomes = append(outcomes, r.Version+":"+string(r.Outcome))
	}
	if got := strings.Join(outcomes, " "); got != "v1:succeeded v2:rolled-back v3:succeeded v1:succeeded" {
		t.Errorf("history %s", got)
	}
}

// TestDeploySwarm_AnImageNoRegistryServesStopsBeforeAnyChange: on a
// swarm every node pulls, so an image only this machine has is refused
// before anything is applied or recorded.
func TestDeploySwarm_AnImageNoRegistryServesStopsBeforeAnyChange(t *testing.T) {
	sw, store := newMemSwarm(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	sw.notTheir["mem/app:v1"] = true
	_, err := memSwarmDeployer(t, sw, store, "v1").Deploy(context.Background(), DeployOptions{})
	if !errors.Is(err, ErrImages) || len(sw.applies) != 0 {
		t.Errorf("deploy of an image no registry serves: %v, %d applies", err, len(sw.applies))
	}
	if releases, _ := store.List(context.Background()); len(releases) != 0 || slices.ContainsFunc(releases, func(r state.Release) bool { return true }) {
		t.Errorf("a refused deploy recorded %d releases", len(releases))
	}
}

// TestDeploySwarm_ProvesTheServicesAKilledDeployLeftUnproven: a deploy
// killed after it converged leaves the swarm running its release,
// never proven; the next deploy has nothing to change, and proves it,
// or, when the probes fail, returns to the stable release.
func TestDeploySwarm_ProvesTheServicesAKilledDeployLeftUnproven(t *testing.T) {
	for _, probesPass := range []bool{true, false} {
		sw, store := newMemSwarm(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
		ctx := context.Background()
		if _, err := memSwarmDeployer(t, sw, store, "v1").Deploy(ctx, DeployOptions{}); err != nil {
			t.Fatal(err)
		}
		// v2 converged, then its deploy was killed: its record is still
		// in progress.
		killed := memSwarmDeployer(t, sw, store, "v2")
		killed.Probes = func(*stackhcl.Stack) (probe.Plan, error) { return probe.Plan{}, errors.New("killed in its probes") }
		if _, err := killed.Deploy(ctx, DeployOptions{}); err == nil {
			t.Fatal("the killed deploy succeeded")
		}
		releases, _ := store.List(ctx)
		last := releases[len(releases)-1]
		last.Outcome, last.Stable, last.RolledBackTo = state.OutcomeInProgress, false, ""
		if err := store.Save(ctx, last); err != nil {
			t.Fatal(err)
		}
		for name := range sw.running {
			sw.running[name] = "mem/app@" + sw.digestOf("mem/app:v2")
		}

		again := memSwarmDeployer(t, sw, store, "v2")
		if !probesPass {
			// The probes of v2 fail; those of v1, the stable release a
			// rollback proves with its own stack, pass.
			again.Probes = func(s *stackhcl.Stack) (probe.Plan, error) {
				if s.Version == "v2" {
					return probe.Plan{}, errors.New("v2 does not answer")
				}
				return probe.Plan{}, nil
			}
		}
		plan, err := again.PlanSwarm(ctx)
		if err != nil || plan.Changes() || plan.Unproven == nil || plan.Unproven.ID != last.ID || !strings.Contains(plan.String(), "prove:") {
			t.Fatalf("plan after the kill: %v, unproven %+v\n%s", err, plan.Unproven, plan)
		}
		result, err := again.Deploy(ctx, DeployOptions{})
		switch {
		case probesPass && (err != nil || !result.Release.Stable):
			t.Errorf("proving the unproven release: %v, stable %v", err, result.Release.Stable)
		case !probesPass && !errors.Is(err, ErrRolledBack):
			t.Errorf("an unproven release that fails its probes: %v, want it rolled back", err)
		case !probesPass && sw.running["web"] != "mem/app@"+sw.digestOf("mem/app:v1"):
			t.Errorf("after the failed proof the swarm runs %v, want v1", sw.running)
		}
	}
}
