package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"sync"
	"time"

	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/orchestrator/state"
)

// ContainerEngine is what applying a plan needs from the engine: one call
// per plan step. *engine.Engine implements it on the Docker API; tests
// fake it to check the executor's order.
type ContainerEngine interface {
	Observe(ctx context.Context, project string) ([]engine.Container, error)
	Inspect(ctx context.Context, containerID string) (engine.Container, error)
	EnsureNetwork(ctx context.Context, project string) (string, error)
	EnsureVolume(ctx context.Context, project, volume string) (string, error)
	Create(ctx context.Context, spec engine.ServiceSpec, name string, number int, release string) (engine.Container, error)
	Start(ctx context.Context, containerID string) error
	WaitHealthy(ctx context.Context, containerID string) error
	Publish(ctx context.Context, containerID string, spec engine.ServiceSpec) error
	Retire(ctx context.Context, containerID string) error
	RunOneOff(ctx context.Context, spec engine.ServiceSpec, name, release string) (int, string, error)
	Logs(ctx context.Context, containerID string, tail int) (string, error)
	ImagePresent(ctx context.Context, ref string) (string, bool, error)
	TagImage(ctx context.Context, src, dst string) error
	BuildImage(ctx context.Context, contextTar io.Reader, tag string, buildArgs map[string]*string) error
	PullImage(ctx context.Context, ref string, progress func(string)) (string, error)
	RepoDigest(ctx context.Context, id string) (string, error)
	RemoveProject(ctx context.Context, project string, volumes bool) error
	WatchFailures(ctx context.Context, project string, since time.Time) (<-chan engine.Failure, <-chan error)
	RemoveImage(ctx context.Context, id string) (bool, error)
	Untag(ctx context.Context, ref string) (bool, error)
	ReadFileDigests(ctx context.Context, containerID string, paths []string) (map[string]string, error)
	ReloadFile(ctx context.Context, containerID string, f engine.FileSpec, user string) error
	ApplyFile(ctx context.Context, containerID string, f engine.FileSpec) error
}

var _ ContainerEngine = (*engine.Engine)(nil)

// apply carries out a deploy's plan and proves the result with probes:
// the release becomes stable. A failure after changes began rolls back
// to the stable release; one before leaves everything as it was. Either
// way the release ends in exactly one recorded outcome.
func (d *Deployer) apply(ctx context.Context, planned *Planned) (DeployResult, error) {
	result := DeployResult{Plan: planned.Plan, Release: planned.Release}
	x := d.executor(planned)
	began, err := x.run(ctx)
	err = lockLost(ctx, err)
	rel := planned.Release
	if err == nil {
		return d.succeed(ctx, result, rel)
	}
	rel.Outcome, rel.Message, rel.Finished = state.OutcomeFailed, err.Error(), time.Now().UTC()
	result.Report = x.report(ctx, err, probe.Failures(rel.Probes))
	result.Failed = probe.Failures(rel.Probes)
	if !began || planned.Stable == nil {
		result.Release = rel
		return result, errors.Join(err, d.Store.Save(context.WithoutCancel(ctx), rel))
	}
	return d.rollbackAfter(ctx, result, rel, *planned.Stable, err)
}

// run prepares, applies the waves and verifies; it reports whether any
// change began. The probes' results go into the release record.
func (x *executor) run(ctx context.Context) (bool, error) {
	if err := x.prepare(ctx); err != nil {
		return false, err
	}
	if began, err := x.converge(ctx); err != nil {
		return began, err
	}
	switched := time.Now()
	var err error
	if x.planned.Release.Probes, err = x.d.verify(ctx); err != nil {
		return true, err
	}
	if err := x.watch(ctx, switched); err != nil {
		return true, err
	}
	if err := x.d.checkLock(); err != nil {
		return true, err
	}
	if err := x.recordMigrations(ctx); err != nil {
		x.d.emit("schema", "", "", "the applied migrations were not recorded, so a rollback to this release cannot check the schema: %v", err)
	}
	return true, x.tagStable(ctx)
}

// executor carries out one plan, wave by wave. It decides nothing: every
// container it creates, and every one it acts on, is in the plan.
type executor struct {
	d       *Deployer
	planned *Planned

	mu      sync.Mutex
	created []engine.Container // what it created and did not remove again
}

func (d *Deployer) executor(planned *Planned) *executor {
	return &executor{d: d, planned: planned}
}

// prepare builds the images the plan builds, tags what runs now as
// stable, and records the release and its files before anything changes.
func (x *executor) prepare(ctx context.Context) error {
	if err := x.buildImages(ctx); err != nil {
		return errors.Join(err, ErrImages)
	}
	rel := &x.planned.Release
	saved, err := withStackModel(x.planned.Artifacts, x.d.Stack)
	if err != nil {
		return err
	}
	if err := x.d.Store.SaveArtifacts(ctx, rel.ID, saved); err != nil {
		return err
	}
	return x.d.Store.Save(ctx, *rel)
}

// buildImages builds the plan's images through the API, from the stack's
// build contexts, or pulls them from their registries, and records their
// IDs. An image that can be neither stops the deploy here, before any
// change; so does a build or a pull that fails.
func (x *executor) buildImages(ctx context.Context) error {
	images := x.planned.Plan.Images
	if err := missingImages(images); err != nil {
		return err
	}
	if x.planned.Release.RepoDigests == nil {
		x.planned.Release.RepoDigests = map[string]string{}
	}
	for _, image := range images {
		if image.Pull {
			x.d.emit("images", image.Services[0], "", "pulling %s", image.Image)
			id, err := x.d.Engine.PullImage(ctx, image.Image, func(line string) {
				x.d.emit("images", image.Services[0], "", "%s", line)
			})
			if err != nil {
				return err
			}
			if image.ID != "" && id != image.ID {
				return fmt.Errorf("pulled %s as image %s, but the release recorded %s: the registry no longer holds that image under its digest", image.Image, id, image.ID)
			}
			digest, err := x.d.Engine.RepoDigest(ctx, id)
			if err != nil {
				return err
			}
			for _, service := range image.Services {
				x.planned.Release.ImageDigests[service] = id
				if digest != "" {
					x.planned.Release.RepoDigests[service] = digest
				}
			}
			continue
		}
		x.d.emit("images", image.Services[0], "", "building %s from %s", image.Image, image.Build)
		contextTar, err := engine.TarContext(image.Build, image.Dockerfile)
		if err != nil {
			return err
		}
		if err := x.d.Engine.BuildImage(ctx, contextTar, image.Image, nil); err != nil {
			return fmt.Errorf("build %s: %w", image.Image, err)
		}
		id, ok, err := x.d.Engine.ImagePresent(ctx, image.Image)
		if err == nil && !ok {
			err = fmt.Errorf("image %s is missing after its build", image.Image)
		}
		if err != nil {
			return err
		}
		for _, service := range image.Services {
			x.planned.Release.ImageDigests[service] = id
		}
	}
	return nil
}

// converge ensures the project's network and volumes, then applies the
// plan's waves in order. It reports whether any change began (the point
// of no return for rolling back).
func (x *executor) converge(ctx context.Context) (bool, error) {
	if err := x.ensureNetworkAndVolumes(ctx); err != nil {
		return false, err
	}
	waves := x.planned.Plan.Waves()
	for i, wave := range waves {
		if err := x.d.checkLock(); err != nil {
			return i > 0, err
		}
		if err := x.applyWave(ctx, wave); err != nil {
			return true, err
		}
	}
	// Proving containers that run unproven is a change of its own: if
	// they fail, the stable release comes back.
	return len(waves) > 0 || x.planned.Plan.Unproven != nil, nil
}

func (x *executor) ensureNetworkAndVolumes(ctx context.Context) error {
	plan := x.planned.Plan
	if _, err := x.d.Engine.EnsureNetwork(ctx, plan.Project); err != nil {
		return errors.Join(err, ErrConverge)
	}
	for _, volume := range plan.Volumes {
		if _, err := x.d.Engine.EnsureVolume(ctx, plan.Project, volume); err != nil {
			return errors.Join(err, ErrConverge)
		}
	}
	return nil
}

// applyWave applies one wave's steps, all at once when there are several,
// and waits for every one of them: a step that fails does not stop the
// others, whose containers are then healthy or already removed again.
func (x *executor) applyWave(ctx context.Context, wave []Action) error {
	for _, a := range wave {
		x.d.emit("converge", a.Service, a.target(), "%s: %s", a.Kind, a.Reason)
	}
	if first := wave[0]; first.Kind == ActionRecreate && first.StartFirst {
		return x.startFirst(ctx, wave)
	}
	errs := make([]error, len(wave))
	var wg sync.WaitGroup
	for i, a := range wave {
		wg.Go(func() { errs[i] = x.step(ctx, a) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// step applies one step that is not a start-first replacement.
func (x *executor) step(ctx context.Context, a Action) error {
	spec := x.planned.spec(a.Service)
	switch a.Kind {
	case ActionBackup:
		return x.backup(ctx, a, spec)
	case ActionRun:
		return x.runOneOff(ctx, a, spec, "before any web change")
	case ActionCreate:
		_, err := x.startHealthy(ctx, spec, a)
		return err
	case ActionRemove:
		return x.retire(ctx, a.Service, ContainerRef{ID: a.ID, Name: a.Container, Number: a.Number})
	case ActionReload:
		return x.reload(ctx, a, spec)
	case ActionRecreate:
		if err := x.retire(ctx, a.Service, *a.Replaces); err != nil {
			return err
		}
		_, err := x.startHealthy(ctx, spec, a)
		return err
	}
	return nil
}

// backup takes one verified pg_dump with the stack's backup job before
// migrations run, so a migration that goes wrong can be undone from a
// dump of the schema it started from.
func (x *executor) backup(ctx context.Context, a Action, spec engine.ServiceSpec) error {
	spec.Env = maps.Clone(spec.Env)
	if spec.Env == nil {
		spec.Env = map[string]string{}
	}
	spec.Env["BACKUP_ONCE"] = "1"
	return x.runOneOff(ctx, a, spec, "before migrations")
}

func (x *executor) runOneOff(ctx context.Context, a Action, spec engine.ServiceSpec, when string) error {
	code, logs, err := x.d.Engine.RunOneOff(ctx, spec, a.Container, x.planned.Plan.Release)
	if err != nil || code != 0 {
		return errors.Join(fmt.Errorf("%s (%s) exited %d %s: %v\n%s", a.Container, a.Kind, code, when, err, tail(logs, 20)), ErrMigrate)
	}
	return nil
}

// startFirst replaces a service's containers with no gap: every new
// replica of the wave starts at once (a surge of the service's replica
// count), and only when every new one is healthy and in the alias do the
// old ones go, after the overlap. If any new one fails, every new one is
// disposed of and the old ones keep serving, untouched.
func (x *executor) startFirst(ctx context.Context, wave []Action) error {
	spec := x.planned.spec(wave[0].Service)
	created := make([]engine.Container, len(wave))
	errs := make([]error, len(wave))
	var wg sync.WaitGroup
	for i, a := range wave {
		wg.Go(func() { created[i], errs[i] = x.startHealthy(ctx, spec, a) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for i, c := range created {
			if errs[i] == nil {
				x.d.emit("converge", spec.Name, c.Name, "removing it: another new replica failed")
				x.dispose(ctx, c)
			}
		}
		return err
	}
	if err := x.overlap(ctx, spec.Name); err != nil {
		return err
	}
	if err := x.d.checkLock(); err != nil {
		return err
	}
	for _, a := range wave {
		if err := x.retire(ctx, a.Service, *a.Replaces); err != nil {
			return err
		}
	}
	return nil
}

// overlap lets new and old replicas serve side by side while proxies in
// front re-resolve the service's name.
func (x *executor) overlap(ctx context.Context, service string) error {
	if x.d.Overlap <= 0 {
		return nil
	}
	x.d.emit("converge", service, "", "new and old replicas serve side by side for %s while proxies re-resolve", x.d.Overlap)
	timer := time.NewTimer(x.d.Overlap)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return errors.Join(ctx.Err(), ErrConverge)
	case <-timer.C:
		return nil
	}
}

// startHealthy creates the step's container under its planned name and
// number, starts it and waits for it to be healthy (and, start first, in
// rotation); a container that does not get there is removed again.
func (x *executor) startHealthy(ctx context.Context, spec engine.ServiceSpec, a Action) (engine.Container, error) {
	c, err := x.d.Engine.Create(ctx, spec, a.Container, a.Number, x.planned.Plan.Release)
	if err != nil {
		return c, errors.Join(err, ErrConverge)
	}
	x.track(c)
	if err := x.d.Engine.Start(ctx, c.ID); err != nil {
		x.dispose(ctx, c)
		return c, errors.Join(err, ErrConverge)
	}
	wait, cancel := context.WithTimeout(ctx, x.d.HealthTimeout)
	defer cancel()
	if err := x.d.Engine.WaitHealthy(wait, c.ID); err != nil {
		x.d.emit("converge", spec.Name, c.Name, "not healthy, removing it: %v", firstLine(err.Error()))
		x.dispose(ctx, c)
		return c, errors.Join(err, ErrConverge)
	}
	if err := x.applyFiles(ctx, spec, a, c); err != nil {
		x.d.emit("converge", spec.Name, c.Name, "removing it: %v", firstLine(err.Error()))
		x.dispose(ctx, c)
		return c, errors.Join(err, ErrConverge)
	}
	if spec.StartFirst {
		if err := x.d.Engine.Publish(ctx, c.ID, spec); err != nil {
			x.dispose(ctx, c)
			return c, errors.Join(err, ErrConverge)
		}
	}
	x.d.emit("converge", spec.Name, c.Name, "healthy, in rotation")
	return c, nil
}

// reload gives a running container the new versions of the step's files
// in place, one by one, in the plan's order.
func (x *executor) reload(ctx context.Context, a Action, spec engine.ServiceSpec) error {
	for _, target := range a.Files {
		f, ok := fileOf(spec, target)
		if !ok {
			return errors.Join(fmt.Errorf("%s: the plan reloads %s, which service %s does not have", a.Container, target, a.Service), ErrConverge)
		}
		if err := x.d.checkLock(); err != nil {
			return err
		}
		if err := x.d.Engine.ReloadFile(ctx, a.ID, f, spec.User); err != nil {
			return errors.Join(fmt.Errorf("%s: %w", a.Container, err), ErrConverge)
		}
		x.d.emit("converge", a.Service, a.Container, "%s reloaded in place", path.Base(target))
	}
	return nil
}

// applyFiles applies the step's files in a new container once it is
// healthy (the roles, on a database that may predate them).
func (x *executor) applyFiles(ctx context.Context, spec engine.ServiceSpec, a Action, c engine.Container) error {
	for _, target := range a.Files {
		f, ok := fileOf(spec, target)
		if !ok {
			return fmt.Errorf("the plan applies %s, which service %s does not have", target, a.Service)
		}
		if err := x.d.Engine.ApplyFile(ctx, c.ID, f); err != nil {
			return err
		}
		x.d.emit("converge", spec.Name, c.Name, "%s applied", path.Base(target))
	}
	return nil
}

// fileOf is the file of spec at target.
func fileOf(spec engine.ServiceSpec, target string) (engine.FileSpec, bool) {
	for _, f := range spec.Files {
		if f.Target == target {
			return f, true
		}
	}
	return engine.FileSpec{}, false
}

// retire stops and removes a container the plan names, by its ID.
func (x *executor) retire(ctx context.Context, service string, old ContainerRef) error {
	x.d.emit("converge", service, old.Name, "stopping and removing")
	if err := x.d.Engine.Retire(ctx, old.ID); err != nil {
		return errors.Join(err, ErrConverge)
	}
	return nil
}

// dispose removes a new container that must not stay, even when ctx has
// ended.
func (x *executor) dispose(ctx context.Context, c engine.Container) {
	_ = x.d.Engine.Retire(context.WithoutCancel(ctx), c.ID)
	x.mu.Lock()
	defer x.mu.Unlock()
	for i, known := range x.created {
		if known.ID == c.ID {
			x.created = append(x.created[:i], x.created[i+1:]...)
			break
		}
	}
}

func (x *executor) track(c engine.Container) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.created = append(x.created, c)
}

// tagStable gives each image of the proven release its stable tags, by
// the image ID the release recorded, so a tag rebuilt since cannot stand
// in for it.
func (x *executor) tagStable(ctx context.Context) error {
	for _, tag := range x.planned.Plan.Tags {
		id := x.planned.Release.ImageDigests[tag.Service]
		if id == "" {
			return fmt.Errorf("tag %s: release %s recorded no image ID for service %s", tag.Image, x.planned.Release.ID, tag.Service)
		}
		for _, name := range tag.Tags {
			if err := x.d.Engine.TagImage(ctx, id, name); err != nil {
				return err
			}
			x.d.emit("tag", tag.Service, "", "tagged %s (%s) as %s", tag.Image, shortImageID(id), name)
		}
	}
	return nil
}
