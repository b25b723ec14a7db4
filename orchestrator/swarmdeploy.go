package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/orchestrator/state"
	"github.com/obcd/obcd/orchestrator/swarm"
	"github.com/obcd/obcd/templates"
)

// SwarmEngine is what a release on a swarm needs from its manager.
// *swarm.Engine implements it on the Docker API.
type SwarmEngine interface {
	Resolve(ctx context.Context, specs []engine.ServiceSpec, pinned map[string]string) error
	Plan(ctx context.Context, specs []engine.ServiceSpec, opts swarm.Options) ([]swarm.Step, error)
	Extra(ctx context.Context, project string, specs []engine.ServiceSpec) ([]string, error)
	Apply(ctx context.Context, specs []engine.ServiceSpec, opts swarm.Options, timeout time.Duration, progress func(swarm.Step)) ([]swarm.Service, []swarm.Step, error)
	RemoveUnused(ctx context.Context, project string, keep []swarm.Service) ([]string, error)
	RemoveProject(ctx context.Context, project string) error
	Status(ctx context.Context, project string) ([]swarm.ServiceStatus, []swarm.NodeStatus, error)
}

var _ SwarmEngine = (*swarm.Engine)(nil)

// OnSwarm says whether the environment's services run on a swarm.
func (d *Deployer) OnSwarm() bool { return d.Stack.Engine == stackhcl.EngineSwarm }

// ServiceAction is one step of a release on a swarm: a service created,
// updated or kept, in its wave.
type ServiceAction struct {
	Service string `json:"service"` // the stack's name
	Name    string `json:"name"`    // the swarm's, <project>_<service>
	Change  string `json:"change"`  // create, update or keep
	Cause   string `json:"cause,omitempty"`
	Wave    int    `json:"wave"`
	Job     bool   `json:"job,omitempty"` // runs to completion (migrate, the backup)
	Image   string `json:"image"`         // what its tasks run, pinned by digest
}

// swarmPlanned is a plan for a swarm with what applying it needs.
type swarmPlanned struct {
	Plan      Plan
	Release   state.Release
	Artifacts []templates.Artifact
	Specs     []engine.ServiceSpec
	Options   swarm.Options
	Stable    *state.Release
}

// swarmTimeout bounds one wave's convergence on a swarm: every replica
// of a start-first update starts, turns healthy and is watched for
// Swarm's monitor period before the next.
func (d *Deployer) swarmTimeout() time.Duration { return 3 * d.HealthTimeout }

// planSwarm plans rel, rendered as artifacts, against the swarm: images
// pinned by digest (pinned, by service, when a release recorded them),
// then what changes in each service and why.
func (d *Deployer) planSwarm(ctx context.Context, rel state.Release, artifacts []templates.Artifact, pinned map[string]string) (*swarmPlanned, error) {
	if d.Swarm == nil {
		return nil, fmt.Errorf("environment %s runs on a swarm, and obcd has no swarm manager for it", d.Stack.Environment)
	}
	specs, err := DesiredState(ctx, d.Stack, artifacts, d.Secrets)
	if err != nil {
		return nil, errors.Join(err, ErrRender)
	}
	if err := d.Swarm.Resolve(ctx, specs, pinned); err != nil {
		return nil, errors.Join(err, ErrImages)
	}
	rel.Images, rel.ImageDigests, rel.RepoDigests = map[string]string{}, map[string]string{}, map[string]string{}
	for _, s := range specs {
		rel.Images[s.Name], rel.RepoDigests[s.Name] = s.Image, s.RunImage
		if _, dgst, ok := strings.Cut(s.RunImage, "@"); ok {
			rel.ImageDigests[s.Name] = dgst
		}
	}
	project := templates.ProjectName(d.Stack)
	opts := swarm.Options{Network: swarm.NetworkName(project), Release: rel.ID, SecretValues: d.secretValues()}
	steps, err := d.Swarm.Plan(ctx, specs, opts)
	if err != nil {
		return nil, errors.Join(err, ErrConverge)
	}
	waves, err := swarm.Waves(specs)
	if err != nil {
		return nil, errors.Join(err, ErrRender)
	}
	wave, byName := map[string]int{}, map[string]engine.ServiceSpec{}
	for i, w := range waves {
		for _, s := range w {
			wave[s.Name], byName[s.Name] = i+1, s
		}
	}
	plan := Plan{Project: project, Release: rel.ID, Version: rel.Version, Engine: stackhcl.EngineSwarm, Network: opts.Network}
	for _, step := range steps {
		change := map[swarm.Change]string{swarm.Created: "create", swarm.Updated: "update", swarm.Unchanged: "keep"}[step.Change]
		spec := byName[step.Service]
		plan.Services = append(plan.Services, ServiceAction{Service: step.Service, Name: swarm.ServiceName(project, step.Service),
			Change: change, Cause: step.Cause, Wave: wave[step.Service], Job: spec.OneOff, Image: spec.RunImage})
	}
	if plan.Extra, err = d.Swarm.Extra(ctx, project, specs); err != nil {
		return nil, err
	}
	return &swarmPlanned{Plan: plan, Release: rel, Artifacts: artifacts, Specs: specs, Options: opts}, nil
}

// secretValues are the values of the stack's secrets, so that a service's
// environment holding one gets it as a Swarm secret, not a variable.
func (d *Deployer) secretValues() []string {
	var values []string
	for _, s := range d.Stack.Secrets {
		if v, err := d.Secrets.Value(s.Name); err == nil && v != "" {
			values = append(values, v)
		}
	}
	return values
}

// PlanSwarm is the plan a deploy to the swarm would carry out now, for
// obcd plan.
func (d *Deployer) PlanSwarm(ctx context.Context) (Plan, error) {
	d.defaults()
	artifacts, err := templates.Render(d.Stack, d.Secrets)
	if err != nil {
		return Plan{}, errors.Join(err, ErrRender)
	}
	planned, err := d.planSwarm(ctx, d.newRelease(artifacts), artifacts, nil)
	if err != nil {
		return Plan{}, err
	}
	planned.Plan.Unproven, err = d.unprovenSwarm(ctx, planned)
	return planned.Plan, err
}

// deploySwarmLocked is deployLocked on a swarm: the same gate, plan,
// question, probes, watch window and records, with the swarm's services
// in place of containers. A release that fails after its first change
// is rolled back at release level: every service returns to the stable
// release's spec and image digest.
func (d *Deployer) deploySwarmLocked(ctx context.Context, opts DeployOptions) (DeployResult, error) {
	if d.Gate != nil {
		if err := d.Gate(d.Stack); err != nil {
			return DeployResult{}, errors.Join(err, ErrGate)
		}
	}
	if opts.Saved != nil {
		return DeployResult{}, errors.New("a saved plan (deploy --plan) is not supported on a swarm yet: run obcd deploy without it, and check the plan it shows")
	}
	if err := d.markInterrupted(ctx); err != nil {
		return DeployResult{}, err
	}
	artifacts, err := templates.Render(d.Stack, d.Secrets)
	if err != nil {
		return DeployResult{}, errors.Join(err, ErrRender)
	}
	stable, hasStable, err := state.Stable(ctx, d.Store)
	if err != nil {
		return DeployResult{}, err
	}
	planned, err := d.planSwarm(ctx, d.newRelease(artifacts), artifacts, nil)
	if err != nil {
		return DeployResult{}, err
	}
	if hasStable {
		planned.Stable = &stable
	}
	if planned.Plan.Unproven, err = d.unprovenSwarm(ctx, planned); err != nil {
		return DeployResult{}, err
	}
	result := DeployResult{Plan: planned.Plan, Release: planned.Release}
	if !planned.Plan.HasWork() {
		d.emit("plan", "", "", "nothing to change")
		return result, nil
	}
	if err := d.refuseFailed(ctx, planned.Release, opts.Force); err != nil {
		return result, err
	}
	d.emitPlan(planned.Plan)
	if opts.Confirm != nil && !opts.Confirm(planned.Plan) {
		return result, ErrCancelled
	}
	result, err = d.applySwarm(ctx, planned)
	d.emitOutcome(result.Release, err)
	return result, err
}

// unprovenSwarm is the newest release when it was interrupted and the
// swarm runs it as it is: a deploy killed in its probes or its watch
// window leaves its services serving, never proven. The deploy proves
// them, or returns to the stable release, even with nothing to change.
func (d *Deployer) unprovenSwarm(ctx context.Context, planned *swarmPlanned) (*UnprovenRelease, error) {
	if planned.Plan.Changes() {
		return nil, nil
	}
	releases, err := d.Store.List(ctx)
	if err != nil || len(releases) == 0 {
		return nil, err
	}
	newest := releases[len(releases)-1]
	// In progress: plan, which takes no lock, sees a killed deploy's
	// record before the next deploy marks it interrupted.
	if newest.Outcome != state.OutcomeInterrupted && newest.Outcome != state.OutcomeInProgress || newest.ConfigHash != planned.Release.ConfigHash {
		return nil, nil
	}
	var services []string
	for _, s := range planned.Plan.Services {
		services = append(services, s.Name)
	}
	return &UnprovenRelease{ID: newest.ID, Outcome: string(newest.Outcome), Containers: services}, nil
}

// applySwarm records the release, converges the swarm to it, proves it
// with the probes and the watch window, and records it stable; or rolls
// back to the stable release.
func (d *Deployer) applySwarm(ctx context.Context, planned *swarmPlanned) (DeployResult, error) {
	result := DeployResult{Plan: planned.Plan, Release: planned.Release}
	rel := planned.Release
	saved, err := withStackModel(planned.Artifacts, d.Stack)
	if err != nil {
		return result, err
	}
	if err := d.Store.SaveArtifacts(ctx, rel.ID, saved); err != nil {
		return result, err
	}
	if err := d.Store.Save(ctx, rel); err != nil {
		return result, err
	}
	services, err := d.convergeSwarm(ctx, planned)
	if err == nil {
		rel.Probes, err = d.verify(ctx)
	}
	if err == nil {
		err = d.watchSwarm(ctx)
	}
	if err == nil {
		err = d.checkLock()
	}
	err = lockLost(ctx, err)
	if err == nil {
		result, err = d.succeed(ctx, result, rel)
		if err == nil {
			d.removeUnused(ctx, services)
		}
		return result, err
	}
	rel.Outcome, rel.Message, rel.Finished = state.OutcomeFailed, err.Error(), time.Now().UTC()
	result.Failed = probe.Failures(rel.Probes)
	result.Report = d.swarmReport(context.WithoutCancel(ctx), err)
	if planned.Stable == nil {
		result.Release = rel
		return result, errors.Join(err, d.Store.Save(context.WithoutCancel(ctx), rel))
	}
	return d.rollbackSwarmAfter(ctx, result, rel, *planned.Stable, err)
}

// convergeSwarm applies the plan's services, wave by wave, and says what
// each step did.
func (d *Deployer) convergeSwarm(ctx context.Context, planned *swarmPlanned) ([]swarm.Service, error) {
	if err := d.checkLock(); err != nil {
		return nil, err
	}
	services, _, err := d.Swarm.Apply(ctx, planned.Specs, planned.Options, d.swarmTimeout(), func(step swarm.Step) {
		switch step.Change {
		case swarm.Unchanged:
		case swarm.Created:
			d.emit("converge", step.Service, "", "created service %s; waiting for its tasks", swarm.ServiceName(planned.Plan.Project, step.Service))
		default:
			d.emit("converge", step.Service, "", "updating service %s (%s); waiting for its tasks", swarm.ServiceName(planned.Plan.Project, step.Service), step.Cause)
		}
	})
	if err != nil {
		return services, errors.Join(err, ErrConverge)
	}
	return services, nil
}

// watchSwarm watches the release for the watch window after the switch:
// a service that loses a replica or whose update is not complete fails
// it.
func (d *Deployer) watchSwarm(ctx context.Context) error {
	if d.Watch <= 0 {
		return nil
	}
	d.emit("watch", "", "", "watching the release for %s", d.Watch)
	end := time.Now().Add(d.Watch)
	tick := time.NewTicker(min(2*time.Second, d.Watch))
	defer tick.Stop()
	for {
		services, _, err := d.Swarm.Status(ctx, templates.ProjectName(d.Stack))
		if err != nil {
			return errors.Join(err, ErrVerify)
		}
		for _, s := range services {
			if !s.Healthy() {
				return errors.Join(fmt.Errorf("service %s in the watch window: %s", s.Service, strings.Join(append([]string{s.Update}, s.Problems...), "; ")), ErrVerify)
			}
		}
		if !time.Now().Before(end) {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(context.Cause(ctx), ErrVerify)
		case <-tick.C:
		}
	}
}

// removeUnused removes, after a release is stable, the secrets and
// configs none of its services mount: the old contents.
func (d *Deployer) removeUnused(ctx context.Context, services []swarm.Service) {
	removed, err := d.Swarm.RemoveUnused(ctx, templates.ProjectName(d.Stack), services)
	if err != nil {
		d.emit("prune", "", "", "removing unused secrets and configs: %v", err)
	}
	if len(removed) > 0 {
		d.emit("prune", "", "", "removed %d secrets and configs no service uses", len(removed))
	}
}

// rollbackSwarmAfter returns the swarm to the stable release after a
// failed release: its recorded files and image digests, every service.
func (d *Deployer) rollbackSwarmAfter(ctx context.Context, result DeployResult, rel, stable state.Release, cause error) (DeployResult, error) {
	rctx := context.WithoutCancel(ctx)
	d.emit("rollback", "", "", "rolling back to stable release %s: %s", stable.ID, firstLine(cause.Error()))
	held := d.held
	d.held = nil
	defer func() { d.held = held }()
	rel.RolledBackTo = stable.ID
	_, err := d.restoreSwarm(rctx, stable, stable)
	if err != nil {
		rel.Outcome = state.OutcomeRollbackFailed
		rel.Message = fmt.Sprintf("%s; the rollback to %s failed too: %s", firstLine(cause.Error()), stable.ID, firstLine(err.Error()))
		result.Report += d.swarmReport(rctx, err) + fmt.Sprintf("to do: fix what the errors above name, then run obcd rollback %s --to %s, or deploy a fixed release.\n", d.Stack.Environment, stable.ID)
		err = errors.Join(cause, fmt.Errorf("rollback to %s also failed: %w", stable.ID, err), ErrRollbackFailed)
	} else {
		rel.Outcome = state.OutcomeRolledBack
		err = errors.Join(cause, ErrRolledBack)
	}
	result.Release = rel
	return result, errors.Join(err, d.Store.Save(rctx, rel))
}

// restoreSwarm applies, as release rec, the files and image digests that
// release `to` recorded, and proves them with to's probes.
func (d *Deployer) restoreSwarm(ctx context.Context, to, rec state.Release) ([]probe.Result, error) {
	artifacts, err := d.releaseFiles(ctx, to)
	if err != nil {
		return nil, err
	}
	planned, err := d.planSwarm(ctx, rec, artifacts, to.RepoDigests)
	if err != nil {
		return nil, err
	}
	d.emitPlan(planned.Plan)
	if _, err := d.convergeSwarm(ctx, planned); err != nil {
		return nil, err
	}
	return d.verifyStack(ctx, d.stackOf(&Planned{Artifacts: artifacts}))
}

// rollbackToSwarm is a manual rollback on a swarm: a release of its own
// with to's files and image digests, proven, and stable.
func (d *Deployer) rollbackToSwarm(ctx context.Context, to state.Release) (DeployResult, error) {
	artifacts, err := d.releaseFiles(ctx, to)
	if err != nil {
		return DeployResult{Release: to}, err
	}
	rec := rollbackRecord(to)
	rec.SecretVersions = d.secretVersions()
	if err := d.Store.SaveArtifacts(ctx, rec.ID, artifacts); err != nil {
		return DeployResult{Release: rec}, err
	}
	if err := d.Store.Save(ctx, rec); err != nil {
		return DeployResult{Release: rec}, err
	}
	results, err := d.restoreSwarm(ctx, to, rec)
	rec.Probes, rec.Finished = results, time.Now().UTC()
	result := DeployResult{Release: rec, Failed: probe.Failures(results)}
	if err != nil {
		rec.Outcome, rec.Message = state.OutcomeFailed, err.Error()
		result.Release = rec
		result.Report = d.swarmReport(context.WithoutCancel(ctx), err)
		return result, errors.Join(err, d.Store.Save(context.WithoutCancel(ctx), rec))
	}
	rec.Outcome, rec.Stable = state.OutcomeSucceeded, true
	if err := d.Store.Save(ctx, rec); err != nil {
		return result, err
	}
	result.Release = rec
	return result, d.markStable(ctx, rec.ID)
}

// swarmReport says what failed and what the swarm runs now.
func (d *Deployer) swarmReport(ctx context.Context, err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "what failed: %s\nwhat the swarm runs now:\n", firstLine(err.Error()))
	services, nodes, serr := d.Swarm.Status(ctx, templates.ProjectName(d.Stack))
	if serr != nil {
		fmt.Fprintf(&b, "  (the swarm could not be asked: %v)\n", serr)
	}
	for _, s := range services {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	for _, n := range nodes {
		if n.State != "ready" {
			fmt.Fprintf(&b, "  node %s is %s\n", n, n.State)
		}
	}
	return b.String()
}

// SwarmStatus is what obcd status reports of an environment on a swarm.
type SwarmStatus struct {
	Services []swarm.ServiceStatus `json:"services"`
	Nodes    []swarm.NodeStatus    `json:"nodes"`
}

// Healthy says whether every service runs all it should.
func (s SwarmStatus) Healthy() bool {
	return len(s.Services) > 0 && !slices.ContainsFunc(s.Services, func(x swarm.ServiceStatus) bool { return !x.Healthy() })
}

// StatusSwarm reads the environment's services and the swarm's nodes.
func (d *Deployer) StatusSwarm(ctx context.Context) (SwarmStatus, error) {
	if d.Swarm == nil {
		return SwarmStatus{}, fmt.Errorf("environment %s runs on a swarm, and obcd has no swarm manager for it", d.Stack.Environment)
	}
	services, nodes, err := d.Swarm.Status(ctx, templates.ProjectName(d.Stack))
	return SwarmStatus{Services: services, Nodes: nodes}, err
}
