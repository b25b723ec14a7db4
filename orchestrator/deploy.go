package orchestrator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/templates"
)

// Phases of a deploy. A failure is joined with its phase, so callers
// decide with errors.Is what happened and what to undo.
var (
	ErrRender   = errors.New("render")
	ErrImages   = errors.New("images")
	ErrConverge = errors.New("converge")
	ErrMigrate  = errors.New("migrate")
	ErrVerify   = errors.New("verify")
	ErrRefused  = errors.New("release failed before")
)

// Event is one line of progress. The engine emits; cmd renders.
type Event struct {
	Time      time.Time `json:"time"`
	Phase     string    `json:"phase"`
	Service   string    `json:"service,omitempty"`
	Container string    `json:"container,omitempty"`
	Message   string    `json:"message"`
}

// ContainerEngine is what a deploy needs from the engine: one call per
// plan step. *Engine implements it on the Docker API; tests fake it to
// check the executor's ordering.
type ContainerEngine interface {
	Observe(ctx context.Context, project string) ([]Container, error)
	EnsureNetwork(ctx context.Context, project string) (string, error)
	EnsureVolume(ctx context.Context, project, volume string) (string, error)
	Create(ctx context.Context, spec ServiceSpec, number int, release string) (Container, error)
	Start(ctx context.Context, containerID string) error
	WaitHealthy(ctx context.Context, containerID string) error
	Publish(ctx context.Context, containerID string, spec ServiceSpec) error
	Retire(ctx context.Context, containerID string) error
	RunOneOff(ctx context.Context, spec ServiceSpec, release string) (int, string, error)
	Logs(ctx context.Context, containerID string, tail int) (string, error)
	ImagePresent(ctx context.Context, ref string) (string, bool, error)
	TagImage(ctx context.Context, src, dst string) error
	BuildImage(ctx context.Context, contextTar io.Reader, tag string, buildArgs map[string]*string) error
}

var _ ContainerEngine = (*Engine)(nil)

// Deployer takes an environment from what runs to a release.
type Deployer struct {
	Engine ContainerEngine
	// Docker, when set, adds the container-health probe to verification.
	Docker  probe.ContainerAPI
	Store   Store
	Stack   *stackhcl.Stack
	Secrets templates.SecretSource
	Events  func(Event)
	// Verify is how long post-deploy probes may take to pass.
	Verify time.Duration
	// Overlap is how long a new start-first replica and the one it
	// replaces serve side by side before the old one leaves the alias:
	// longer than a proxy in front (nginx) keeps the addresses it resolved,
	// so that when the old one goes, the proxy already knows the new one
	// and retries there. Negative means none.
	Overlap time.Duration
	// HealthTimeout bounds waiting for one new container to be healthy.
	HealthTimeout time.Duration
	// ProbeOptions builds the verification probes; nil uses the stack's.
	Probes func(*stackhcl.Stack) (probe.Plan, error)

	backup *ServiceSpec // the backup job of the plan being executed
	events sync.Mutex   // one event at a time, from concurrent steps
}

// backupService is the stack's backup job, if it has one.
func (d *Deployer) backupService() string {
	if b := d.Stack.First(stackhcl.KindBackup); b != nil {
		return b.Name
	}
	return ""
}

func (d *Deployer) emit(phase, service, container, format string, args ...any) {
	if d.Events != nil {
		d.events.Lock()
		defer d.events.Unlock()
		d.Events(Event{Time: time.Now(), Phase: phase, Service: service, Container: container, Message: fmt.Sprintf(format, args...)})
	}
}

// DeployOptions are the choices of one deploy.
type DeployOptions struct {
	DryRun bool
	Force  bool // deploy a release whose configuration failed before
}

// Outcome of a deploy, for the report.
type DeployResult struct {
	Release    Release
	Plan       Plan
	Failed     []probe.Result // failing probes, when verification failed
	RolledBack bool
	Report     string // what failed, its last results, container state and log tail
}

// Deploy renders the stack, plans, converges, and proves the result with
// probes; the release becomes stable. If anything fails after changes
// began, it rolls back to the stable release by itself.
func (d *Deployer) Deploy(ctx context.Context, opts DeployOptions) (DeployResult, error) {
	d.defaults()
	artifacts, err := templates.Render(d.Stack, d.Secrets)
	if err != nil {
		return DeployResult{}, errors.Join(err, ErrRender)
	}
	if !opts.DryRun {
		if err := d.markInterrupted(ctx); err != nil {
			return DeployResult{}, err
		}
	}
	rel := d.newRelease(artifacts)
	plan, desired, err := d.planFor(ctx, artifacts)
	if err != nil {
		return DeployResult{}, err
	}
	result := DeployResult{Plan: plan, Release: rel}
	if !plan.Changes() {
		d.emit("plan", "", "", "nothing to change")
		return result, nil
	}
	if opts.DryRun {
		return result, nil
	}
	if err := d.refuseFailed(ctx, rel, opts.Force); err != nil {
		return result, err
	}
	stable, hasStable, err := d.Store.Stable(ctx)
	if err != nil {
		return result, err
	}
	if err := d.prepare(ctx, &rel, desired, artifacts, stable, hasStable); err != nil {
		return result, err
	}
	began, err := d.converge(ctx, rel.ID, plan, desired)
	if err == nil {
		var results []probe.Result
		results, err = d.verify(ctx)
		rel.Probes = results
		result.Failed = probe.Failures(results)
		if err == nil {
			return d.succeed(ctx, result, rel)
		}
	}
	rel.Outcome, rel.Message, rel.Finished = OutcomeFailed, err.Error(), time.Now().UTC()
	result.Report = d.report(ctx, err, result.Failed, desired)
	if !began || !hasStable {
		_ = d.Store.Save(ctx, rel)
		result.Release = rel
		return result, err
	}
	return d.rollbackAfter(ctx, result, rel, stable, err)
}

func (d *Deployer) defaults() {
	if d.Verify == 0 {
		d.Verify = 60 * time.Second
	}
	if d.HealthTimeout == 0 {
		d.HealthTimeout = 90 * time.Second
	}
	if d.Overlap == 0 {
		d.Overlap = templates.NginxResolveTTL + time.Second
	}
}

// newRelease starts the record of a release: who, when, what config.
func (d *Deployer) newRelease(artifacts []templates.Artifact) Release {
	rel := startedRelease(d.Stack.Environment)
	rel.Version, rel.Images, rel.ImageDigests, rel.SecretVersions = d.Stack.Version, map[string]string{}, map[string]string{}, map[string]string{}
	manifest := artifacts[len(artifacts)-1].Data
	sum := sha256.Sum256(manifest)
	rel.ConfigHash = hex.EncodeToString(sum[:])
	for _, s := range d.Stack.Secrets {
		if v, err := d.Secrets.Value(s.Name); err == nil {
			rel.SecretVersions[s.Name] = SecretVersion(s.Name, v)
		}
	}
	return rel
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// planFor observes the engine once and plans against the artifacts.
func (d *Deployer) planFor(ctx context.Context, artifacts []templates.Artifact) (Plan, []ServiceSpec, error) {
	desired, err := DesiredState(ctx, d.Stack, artifacts, d.Secrets)
	if err != nil {
		return Plan{}, nil, errors.Join(err, ErrRender)
	}
	if err := d.resolveImages(ctx, desired); err != nil {
		return Plan{}, nil, errors.Join(err, ErrConverge)
	}
	project := templates.ProjectName(d.Stack)
	observed, err := d.Engine.Observe(ctx, project)
	if err != nil {
		return Plan{}, nil, errors.Join(err, ErrConverge)
	}
	return MakePlan(project, desired, observed), desired, nil
}

// resolveImages records what each service's image reference points at on
// the engine now, once per reference. A missing image stays "": the
// deploy builds it or says it is missing before anything changes.
func (d *Deployer) resolveImages(ctx context.Context, desired []ServiceSpec) error {
	ids := map[string]string{}
	for i, spec := range desired {
		id, seen := ids[spec.Image]
		if !seen {
			resolved, _, err := d.Engine.ImagePresent(ctx, spec.Image)
			if err != nil {
				return err
			}
			id, ids[spec.Image] = resolved, resolved
		}
		desired[i].ImageID = id
	}
	return nil
}

// markInterrupted closes the records of deploys whose process died: the
// caller holds the lock, so nothing else can be in progress.
func (d *Deployer) markInterrupted(ctx context.Context) error {
	releases, err := d.Store.List(ctx)
	if err != nil {
		return err
	}
	for _, r := range releases {
		if r.Outcome != OutcomeInProgress {
			continue
		}
		r.Outcome, r.Finished = OutcomeInterrupted, time.Now().UTC()
		r.Message = "the deploy process ended before it finished; the next deploy converged from what it left"
		d.emit("state", "", "", "release %s was interrupted", r.ID)
		if err := d.Store.Save(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// refuseFailed stops a deploy of a configuration that failed before.
func (d *Deployer) refuseFailed(ctx context.Context, rel Release, force bool) error {
	if force {
		return nil
	}
	history, err := d.Store.List(ctx)
	if err != nil {
		return err
	}
	for _, old := range history {
		if old.ConfigHash == rel.ConfigHash && (old.Outcome == OutcomeFailed || old.Outcome == OutcomeRolledBack) {
			return errors.Join(fmt.Errorf("release %s with this exact configuration failed (%s); fix it, or deploy again with --force", old.ID, firstLine(old.Message)), ErrRefused)
		}
	}
	return nil
}

// prepare tags what runs now as stable, checks images, creates networks
// and volumes, and records the release before anything changes.
func (d *Deployer) prepare(ctx context.Context, rel *Release, desired []ServiceSpec, artifacts []templates.Artifact, stable Release, hasStable bool) error {
	for _, spec := range desired {
		id, err := d.ensureImage(ctx, spec)
		if err != nil {
			return errors.Join(err, ErrImages)
		}
		rel.Images[spec.Name], rel.ImageDigests[spec.Name] = spec.Image, id
	}
	if hasStable {
		d.tagStable(ctx, stable)
	}
	if _, err := d.Engine.EnsureNetwork(ctx, templates.ProjectName(d.Stack)); err != nil {
		return errors.Join(err, ErrConverge)
	}
	for _, spec := range desired {
		for _, m := range spec.Mounts {
			if m.Volume != "" {
				if _, err := d.Engine.EnsureVolume(ctx, spec.Project, m.Volume); err != nil {
					return errors.Join(err, ErrConverge)
				}
			}
		}
	}
	if err := d.Store.SaveArtifacts(ctx, rel.ID, artifacts); err != nil {
		return err
	}
	return d.Store.Save(ctx, *rel)
}

// ensureImage returns the image's ID, building it through the API from
// the stack's build context when the engine lacks it. No registry is
// assumed: an image that is neither present nor buildable is an error.
func (d *Deployer) ensureImage(ctx context.Context, spec ServiceSpec) (string, error) {
	if spec.ImageID != "" { // resolved by planFor
		return spec.ImageID, nil
	}
	id, ok, err := d.Engine.ImagePresent(ctx, spec.Image)
	if err != nil || ok {
		return id, err
	}
	var build *stackhcl.Build
	for _, svc := range d.Stack.Services {
		if svc.Image == spec.Image && svc.Build != nil {
			build = svc.Build
		}
	}
	if build == nil {
		return "", fmt.Errorf("image %s of service %s is not on the engine; load or build it first (or give the service a build block)", spec.Image, spec.Name)
	}
	d.emit("images", spec.Name, "", "building %s from %s", spec.Image, build.Context)
	contextTar, err := tarContext(build.Context, build.Dockerfile)
	if err != nil {
		return "", err
	}
	if err := d.Engine.BuildImage(ctx, contextTar, spec.Image, nil); err != nil {
		return "", fmt.Errorf("build %s: %w", spec.Image, err)
	}
	id, ok, err = d.Engine.ImagePresent(ctx, spec.Image)
	if err == nil && !ok {
		err = fmt.Errorf("image %s is missing after its build", spec.Image)
	}
	return id, err
}

// tagStable tags the stable release's app image as <repo>:stable and
// <repo>:stable-<release>, the manual rollback point of the audit.
func (d *Deployer) tagStable(ctx context.Context, stable Release) {
	for service, ref := range stable.Images {
		repo := ref
		if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
			repo = ref[:i]
		}
		if repo != d.Stack.AppImage {
			continue
		}
		for _, tag := range []string{repo + ":stable", repo + ":stable-" + stable.ID} {
			if err := d.Engine.TagImage(ctx, ref, tag); err == nil {
				d.emit("tag", service, "", "tagged %s as %s", ref, tag)
			}
		}
		return
	}
}

// converge executes the plan, step by step in order. It reports whether
// any change began (the point of no return for rolling back).
func (d *Deployer) converge(ctx context.Context, releaseID string, plan Plan, desired []ServiceSpec) (bool, error) {
	specs := map[string]ServiceSpec{}
	d.backup = nil
	for _, s := range desired {
		specs[s.Name] = s
		if s.Name == d.backupService() {
			backup := s
			d.backup = &backup
		}
	}
	began := false
	for rest := plan.Actions; len(rest) > 0; {
		wave := nextWave(rest, specs)
		rest = rest[len(wave):]
		var todo []Action
		for _, a := range wave {
			if a.Kind != ActionKeep {
				todo = append(todo, a)
			}
		}
		if len(todo) == 0 {
			continue
		}
		began = true
		if err := d.applyWave(ctx, releaseID, todo, specs); err != nil {
			return began, err
		}
	}
	return began, nil
}

// nextWave is the longest run of steps at the head of actions that may
// run at the same time: new containers and stop-first replacements of
// services none of which waits for another in the run, or the start-first
// replacements of one service's replicas (rolled together by startFirst).
// A one-off run and a removal are waves of their own, in plan order, so
// the point where new code starts serving stays where the plan prints it.
func nextWave(actions []Action, specs map[string]ServiceSpec) []Action {
	if first := actions[0]; first.Kind == ActionRecreate && first.StartFirst {
		n := 1
		for n < len(actions) && actions[n].Kind == ActionRecreate && actions[n].StartFirst && actions[n].Service == first.Service {
			n++
		}
		return actions[:n]
	}
	if !concurrent(actions[0]) {
		return actions[:1]
	}
	inWave := map[string]bool{}
	n := 0
	for _, a := range actions {
		if !concurrent(a) {
			break
		}
		if a.Kind != ActionKeep && waitsFor(specs[a.Service], inWave) {
			break
		}
		if a.Kind != ActionKeep {
			inWave[a.Service] = true
		}
		n++
	}
	return actions[:n]
}

func concurrent(a Action) bool {
	return a.Kind == ActionKeep || a.Kind == ActionCreate || (a.Kind == ActionRecreate && !a.StartFirst)
}

func waitsFor(spec ServiceSpec, services map[string]bool) bool {
	for _, dep := range spec.DependsOn {
		if services[dep] {
			return true
		}
	}
	return false
}

// applyWave applies one wave's steps, all at once when there are several,
// and waits for every one of them: a step that fails does not stop the
// others, whose containers are then healthy or already removed again.
func (d *Deployer) applyWave(ctx context.Context, releaseID string, wave []Action, specs map[string]ServiceSpec) error {
	if first := wave[0]; first.Kind == ActionRecreate && first.StartFirst {
		olds := make([]string, len(wave))
		for i, a := range wave {
			d.emit("converge", a.Service, a.Container, "%s: %s", a.Kind, a.Reason)
			olds[i] = a.Container
		}
		return d.startFirst(ctx, specs[first.Service], olds, releaseID)
	}
	for _, a := range wave {
		d.emit("converge", a.Service, a.Container, "%s: %s", a.Kind, a.Reason)
	}
	if len(wave) == 1 {
		return d.apply(ctx, releaseID, wave[0], specs[wave[0].Service])
	}
	errs := make([]error, len(wave))
	var wg sync.WaitGroup
	for i, a := range wave {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.apply(ctx, releaseID, a, specs[a.Service])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (d *Deployer) apply(ctx context.Context, releaseID string, a Action, spec ServiceSpec) error {
	switch a.Kind {
	case ActionRun:
		if err := d.backupBeforeMigrate(ctx, releaseID); err != nil {
			return err
		}
		code, logs, err := d.Engine.RunOneOff(ctx, spec, releaseID)
		if err != nil || code != 0 {
			return errors.Join(fmt.Errorf("%s exited %d before any web change: %v\n%s", spec.Name, code, err, tail(logs, 20)), ErrMigrate)
		}
		return nil
	case ActionCreate:
		_, err := d.startHealthy(ctx, spec, a.Number, releaseID)
		return err
	case ActionRemove:
		return d.retire(ctx, a.Container)
	case ActionRecreate:
		if a.StartFirst {
			return d.startFirst(ctx, spec, []string{a.Container}, releaseID)
		}
		if err := d.retire(ctx, a.Container); err != nil {
			return err
		}
		_, err := d.startHealthy(ctx, spec, a.Number, releaseID)
		return err
	}
	return nil
}

// backupBeforeMigrate takes one verified pg_dump with the stack's backup
// job before migrations run, so a migration that goes wrong can be undone
// from a dump of the schema it started from.
func (d *Deployer) backupBeforeMigrate(ctx context.Context, releaseID string) error {
	if d.backup == nil {
		return nil
	}
	spec := *d.backup
	spec.Env = map[string]string{}
	for k, v := range d.backup.Env {
		spec.Env[k] = v
	}
	spec.Env["BACKUP_ONCE"] = "1"
	d.emit("backup", spec.Name, "", "pg_dump before migrations")
	code, logs, err := d.Engine.RunOneOff(ctx, spec, releaseID)
	if err != nil || code != 0 {
		return errors.Join(fmt.Errorf("backup before migrations exited %d: %v\n%s", code, err, tail(logs, 20)), ErrMigrate)
	}
	return nil
}

// startFirst replaces a service's containers with no gap: one new
// replica per old one, all started at once (a surge of the service's
// replica count), and only when every new one is healthy and in the alias
// do the old ones go, after the overlap. If any new one fails, every new
// one is disposed of and the old ones keep serving, untouched.
func (d *Deployer) startFirst(ctx context.Context, spec ServiceSpec, olds []string, releaseID string) error {
	observed, err := d.Engine.Observe(ctx, spec.Project)
	if err != nil {
		return errors.Join(err, ErrConverge)
	}
	var mine []Container
	for _, c := range observed {
		if c.Service == spec.Name {
			mine = append(mine, c)
		}
	}
	base := nextNumber(mine)
	created := make([]Container, len(olds))
	errs := make([]error, len(olds))
	var wg sync.WaitGroup
	for i := range olds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created[i], errs[i] = d.startHealthy(ctx, spec, base+i, releaseID)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for i, c := range created {
			if errs[i] == nil {
				d.emit("converge", spec.Name, c.Name, "removing it: another new replica failed")
				_ = d.Engine.Retire(context.WithoutCancel(ctx), c.ID)
			}
		}
		return err
	}
	if d.Overlap > 0 {
		d.emit("converge", spec.Name, "", "new and old replicas serve side by side for %s while proxies re-resolve", d.Overlap)
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), ErrConverge)
		case <-time.After(d.Overlap):
		}
	}
	for _, old := range olds {
		if err := d.retire(ctx, old); err != nil {
			return err
		}
	}
	return nil
}

// startHealthy creates, starts and waits for one healthy container; a
// container that does not become healthy is removed again.
func (d *Deployer) startHealthy(ctx context.Context, spec ServiceSpec, number int, releaseID string) (Container, error) {
	c, err := d.Engine.Create(ctx, spec, number, releaseID)
	if err != nil {
		return c, errors.Join(err, ErrConverge)
	}
	if err := d.Engine.Start(ctx, c.ID); err != nil {
		_ = d.Engine.Retire(context.WithoutCancel(ctx), c.ID)
		return c, errors.Join(err, ErrConverge)
	}
	wait, cancel := context.WithTimeout(ctx, d.HealthTimeout)
	defer cancel()
	if err := d.Engine.WaitHealthy(wait, c.ID); err != nil {
		d.emit("converge", spec.Name, c.Name, "not healthy, removing it: %v", firstLine(err.Error()))
		_ = d.Engine.Retire(context.WithoutCancel(ctx), c.ID)
		return c, errors.Join(err, ErrConverge)
	}
	if spec.StartFirst {
		if err := d.Engine.Publish(ctx, c.ID, spec); err != nil {
			_ = d.Engine.Retire(context.WithoutCancel(ctx), c.ID)
			return c, errors.Join(err, ErrConverge)
		}
	}
	d.emit("converge", spec.Name, c.Name, "healthy, in rotation")
	return c, nil
}

func (d *Deployer) retire(ctx context.Context, name string) error {
	observed, err := d.Engine.Observe(ctx, templates.ProjectName(d.Stack))
	if err != nil {
		return errors.Join(err, ErrConverge)
	}
	for _, c := range observed {
		if c.Name == name {
			d.emit("converge", c.Service, c.Name, "stopping and removing")
			if err := d.Engine.Retire(ctx, c.ID); err != nil {
				return errors.Join(err, ErrConverge)
			}
		}
	}
	return nil
}

// verify runs the post-deploy probes over the verification window.
func (d *Deployer) verify(ctx context.Context) ([]probe.Result, error) {
	build := d.Probes
	if build == nil {
		build = func(s *stackhcl.Stack) (probe.Plan, error) {
			return probe.Build(probe.BuildOptions{Stack: s, Secrets: d.Secrets, Docker: d.Docker})
		}
	}
	plan, err := build(d.Stack)
	if err != nil {
		return nil, errors.Join(err, ErrVerify)
	}
	vctx, cancel := context.WithTimeout(ctx, d.Verify)
	defer cancel()
	d.emit("verify", "", "", "running %d probes (window %s)", len(plan.Specs), d.Verify)
	results := probe.Run(vctx, plan.Specs)
	if !probe.AllCriticalPassed(results) {
		failed := probe.Failures(results)
		return results, errors.Join(fmt.Errorf("probe %s failed: %s", failed[0].Name, failed[0].Message), ErrVerify)
	}
	return results, nil
}

func (d *Deployer) succeed(ctx context.Context, result DeployResult, rel Release) (DeployResult, error) {
	rel.Outcome, rel.Stable, rel.Finished = OutcomeSucceeded, true, time.Now().UTC()
	if err := d.Store.Save(ctx, rel); err != nil {
		return result, err
	}
	if err := d.markStable(ctx, rel.ID); err != nil {
		return result, err
	}
	result.Release = rel
	d.emit("done", "", "", "release %s is live and stable", rel.ID)
	return result, nil
}

// rollbackAfter returns to the stable release after a failed deploy and
// records both outcomes.
func (d *Deployer) rollbackAfter(ctx context.Context, result DeployResult, rel Release, stable Release, cause error) (DeployResult, error) {
	rctx := context.WithoutCancel(ctx)
	d.emit("rollback", "", "", "rolling back to stable release %s: %s", stable.ID, firstLine(cause.Error()))
	rel.Outcome, rel.RolledBackTo = OutcomeRolledBack, stable.ID
	_ = d.Store.Save(rctx, rel)
	result.Release, result.RolledBack = rel, true
	if _, err := d.restore(rctx, stable); err != nil {
		return result, errors.Join(cause, fmt.Errorf("rollback to %s also failed: %w", stable.ID, err))
	}
	return result, cause
}

// Rollback returns the environment to a recorded release: its images,
// rendered config and env, not today's. It verifies the result.
func (d *Deployer) Rollback(ctx context.Context, to Release) (DeployResult, error) {
	d.defaults()
	artifacts, err := d.Store.LoadArtifacts(ctx, to.ID)
	if err != nil {
		return DeployResult{Release: to}, err
	}
	rec := rollbackRecord(to)
	if err := d.Store.SaveArtifacts(ctx, rec.ID, artifacts); err != nil {
		return DeployResult{Release: rec}, err
	}
	if err := d.Store.Save(ctx, rec); err != nil {
		return DeployResult{Release: rec}, err
	}
	// The record holds to's files, so restoring it restores to, and the
	// containers it creates belong to the rollback.
	results, err := d.restore(ctx, rec)
	rec.Probes, rec.Finished = results, time.Now().UTC()
	result := DeployResult{Release: rec, Failed: probe.Failures(results)}
	if err != nil {
		rec.Outcome, rec.Message = OutcomeFailed, err.Error()
		_ = d.Store.Save(context.WithoutCancel(ctx), rec)
		result.Release = rec
		return result, err
	}
	rec.Outcome, rec.Stable = OutcomeSucceeded, true
	if err := d.Store.Save(ctx, rec); err != nil {
		return result, err
	}
	result.Release = rec
	return result, d.markStable(ctx, rec.ID)
}

// rollbackRecord is the release a manual rollback to `to` makes: to's
// version, images and config, with its own ID, time, user and host.
func rollbackRecord(to Release) Release {
	rec := startedRelease(to.Environment)
	rec.Version, rec.Images, rec.ImageDigests, rec.ConfigHash = to.Version, to.Images, to.ImageDigests, to.ConfigHash
	rec.SecretVersions, rec.RollbackOf = to.SecretVersions, to.ID
	return rec
}

// startedRelease is a new release record, in progress: its ID, time, user
// and host.
func startedRelease(environment string) Release {
	now := time.Now().UTC()
	rel := Release{ID: NewReleaseID(now), Environment: environment, Created: now, User: currentUser(), Outcome: OutcomeInProgress}
	rel.Host, _ = os.Hostname()
	return rel
}

// markStable makes id the only stable release: the one that runs now,
// and the one the next failed deploy returns to.
func (d *Deployer) markStable(ctx context.Context, id string) error {
	releases, err := d.Store.List(ctx)
	if err != nil {
		return err
	}
	for _, r := range releases {
		if r.Stable && r.ID != id {
			r.Stable = false
			if err := d.Store.Save(ctx, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// restore converges to a release's saved artifacts and runs the probes.
func (d *Deployer) restore(ctx context.Context, to Release) ([]probe.Result, error) {
	artifacts, err := d.Store.LoadArtifacts(ctx, to.ID)
	if err != nil {
		return nil, err
	}
	plan, desired, err := d.planFor(ctx, artifacts)
	if err != nil {
		return nil, err
	}
	d.emit("rollback", "", "", "%d steps to release %s", len(plan.Actions)-plan.Count(ActionKeep), to.ID)
	if _, err := d.converge(ctx, to.ID, plan, desired); err != nil {
		return nil, err
	}
	return d.verify(ctx)
}

// report explains a failure: the error, the failing probes' last
// results, and each app container's state and last log lines.
func (d *Deployer) report(ctx context.Context, cause error, failed []probe.Result, desired []ServiceSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "deploy failed: %v\n", cause)
	for _, r := range failed {
		fmt.Fprintf(&b, "probe %s (%s): %s after %d attempt(s): %s\n", r.Name, r.Target, r.Status, r.Attempts, r.Message)
	}
	observed, err := d.Engine.Observe(context.WithoutCancel(ctx), templates.ProjectName(d.Stack))
	if err != nil {
		return b.String()
	}
	for _, c := range observed {
		fmt.Fprintf(&b, "container %s: %s %s (release %s)\n", c.Name, c.State, c.Health, c.Release)
		if c.Service == "web" || c.State != "running" {
			if logs, err := d.Engine.Logs(context.WithoutCancel(ctx), c.ID, 10); err == nil && logs != "" {
				fmt.Fprintf(&b, "%s\n", indent(logs))
			}
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
