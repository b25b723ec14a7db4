package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/state"
	"github.com/obcd/obcd/templates"
)

// Planned is a release ready to apply: the plan, and everything apply
// needs to carry it out without observing the engine or deciding
// anything of its own.
type Planned struct {
	Plan Plan
	// Release is the record the deploy saves, in progress until it ends.
	Release state.Release
	// Stable is the release a failure returns to; nil when there is none.
	Stable *state.Release
	// Artifacts are the rendered files. Some derive from secrets: they
	// are never printed, and a saved plan leaves them out.
	Artifacts []templates.Artifact
	// Desired is what each service runs, by service. Env holds secret
	// values: it is never printed, and a saved plan leaves it out.
	Desired []engine.ServiceSpec
	// Observed is the engine's snapshot the plan was made from.
	Observed []engine.Container
}

// spec returns the desired state of a service.
func (p *Planned) spec(service string) engine.ServiceSpec {
	i := slices.IndexFunc(p.Desired, func(s engine.ServiceSpec) bool { return s.Name == service })
	if i < 0 {
		return engine.ServiceSpec{}
	}
	return p.Desired[i]
}

// Plan renders the stack and plans the release against one snapshot of
// the engine. It changes nothing and takes no lock: obcd plan.
func (d *Deployer) Plan(ctx context.Context) (*Planned, error) {
	artifacts, err := templates.Render(d.Stack, d.Secrets)
	if err != nil {
		return nil, errors.Join(err, ErrRender)
	}
	stable, hasStable, err := state.Stable(ctx, d.Store)
	if err != nil {
		return nil, err
	}
	planned, err := d.planFor(ctx, d.newRelease(artifacts), artifacts)
	if err != nil {
		return nil, err
	}
	if hasStable {
		planned.Stable = &stable
	}
	if planned.Plan.Unproven, err = d.unproven(ctx, planned); err != nil {
		return nil, err
	}
	return planned, nil
}

// unproven finds the containers the plan keeps that belong to the newest
// release when that release was interrupted: a deploy killed in its
// probes or its watch window leaves them serving, never proven. Once a
// deploy has proven them, it is the newest release, so they are proven
// once.
func (d *Deployer) unproven(ctx context.Context, planned *Planned) (*UnprovenRelease, error) {
	releases, err := d.Store.List(ctx)
	if err != nil || len(releases) == 0 {
		return nil, err
	}
	newest := releases[len(releases)-1]
	if newest.Outcome != state.OutcomeInterrupted {
		return nil, nil
	}
	kept := map[string]bool{}
	for _, a := range planned.Plan.Actions {
		if a.Kind == ActionKeep || a.Kind == ActionReload {
			kept[a.ID] = true
		}
	}
	var containers []string
	for _, c := range planned.Observed {
		if kept[c.ID] && c.Release == newest.ID {
			containers = append(containers, c.Name)
		}
	}
	if len(containers) == 0 {
		return nil, nil
	}
	slices.Sort(containers)
	return &UnprovenRelease{ID: newest.ID, Outcome: string(newest.Outcome), Containers: containers}, nil
}

// stableTags name, for each image repository the release runs, the tags
// its image gets once the release is proven and becomes stable:
// <repo>:stable-<release>, and <repo>:stable moved to it. Where services
// run two tags of one repository, the one of the release's version gets
// them. An image run by its ID keeps the tags of the release that
// recorded it.
func stableTags(rel state.Release, desired []engine.ServiceSpec) []TagAction {
	var tags []TagAction
	for _, spec := range desired {
		repo := imageRepo(spec.Image)
		if spec.RunImage != "" || repo == "" {
			continue
		}
		tag := TagAction{Service: spec.Name, Image: spec.Image, Tags: []string{repo + ":stable-" + rel.ID, repo + ":stable"}}
		i := slices.IndexFunc(tags, func(t TagAction) bool { return imageRepo(t.Image) == repo })
		switch {
		case i < 0:
			tags = append(tags, tag)
		case spec.Image == repo+":"+rel.Version && tags[i].Image != spec.Image:
			tags[i] = tag
		}
	}
	return tags
}

// imageRepo is an image reference without its tag or digest; "" for an
// image ID.
func imageRepo(ref string) string {
	if strings.HasPrefix(ref, "sha256:") {
		return ""
	}
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// planFor plans a release of artifacts: the desired state they describe,
// the images they need, and one Observe of the engine.
func (d *Deployer) planFor(ctx context.Context, rel state.Release, artifacts []templates.Artifact) (*Planned, error) {
	desired, err := DesiredState(ctx, d.Stack, artifacts, d.Secrets)
	if err != nil {
		return nil, errors.Join(err, ErrRender)
	}
	if err := d.resolveImages(ctx, desired); err != nil {
		return nil, errors.Join(err, ErrConverge)
	}
	pulls, err := d.pinImages(ctx, desired, rel.ImageDigests, rel.RepoDigests)
	if err != nil {
		return nil, errors.Join(err, ErrConverge)
	}
	project := templates.ProjectName(d.Stack)
	observed, err := d.Engine.Observe(ctx, project)
	if err != nil {
		return nil, errors.Join(err, ErrConverge)
	}
	if err := d.readReloadedFiles(ctx, desired, observed); err != nil {
		return nil, errors.Join(err, ErrConverge)
	}
	plan := MakePlan(PlanInput{Project: project, Release: rel.ID, Desired: desired, Observed: observed, Backup: d.backupService()})
	plan.Version, plan.Images, plan.Tags = rel.Version, planImages(desired, d.Stack, pulls), stableTags(rel, desired)
	if err := d.recordImages(ctx, &rel, desired); err != nil {
		return nil, errors.Join(err, ErrConverge)
	}
	return &Planned{Plan: plan, Release: rel, Artifacts: artifacts, Desired: desired, Observed: observed}, nil
}

// readReloadedFiles reads, from each running container, the digests of
// the files its service takes in place, so the plan reloads exactly the
// ones whose applied version is not the desired one.
func (d *Deployer) readReloadedFiles(ctx context.Context, desired []engine.ServiceSpec, observed []engine.Container) error {
	targets := map[string][]string{}
	for _, spec := range desired {
		for _, f := range spec.ReloadedFiles() {
			targets[spec.Name] = append(targets[spec.Name], f.Target)
		}
	}
	for i, c := range observed {
		if c.OneOff || c.State != "running" || len(targets[c.Service]) == 0 {
			continue
		}
		digests, err := d.Engine.ReadFileDigests(ctx, c.ID, targets[c.Service])
		if err != nil {
			return err
		}
		observed[i].Files = digests
	}
	return nil
}

// backupService is the stack's backup job, if it has one.
func (d *Deployer) backupService() string {
	if b := d.Stack.First(stackhcl.KindBackup); b != nil {
		return b.Name
	}
	return ""
}

// resolveImages records what each service's image reference points at on
// the engine now, once per reference. A missing image stays "": the plan
// builds it, or says it is missing, before anything changes.
func (d *Deployer) resolveImages(ctx context.Context, desired []engine.ServiceSpec) error {
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

// pinImages makes each service whose image ID the release recorded run
// exactly that image: by its ID when its tag has moved since (a tag
// rebuilt by CI), and missing when the engine no longer has it. A
// missing one the release also recorded a registry digest of is pulled
// back by that digest: pulls maps the service to it. Without a digest
// the plan says the image is gone. A new release records none, so
// nothing is pinned.
func (d *Deployer) pinImages(ctx context.Context, desired []engine.ServiceSpec, recorded, repoDigests map[string]string) (pulls map[string]string, err error) {
	pulls = map[string]string{}
	for i, spec := range desired {
		id := recorded[spec.Name]
		if id == "" || id == spec.ImageID {
			continue
		}
		_, present, err := d.Engine.ImagePresent(ctx, id)
		if err != nil {
			return nil, err
		}
		desired[i].RunImage, desired[i].ImageID = id, ""
		switch {
		case present:
			desired[i].ImageID = id
		case repoDigests[spec.Name] != "":
			pulls[spec.Name] = repoDigests[spec.Name]
		}
	}
	return pulls, nil
}

// planImages lists the images the engine lacks, once each, with the
// stack's build context for the ones it can build, and pulls: by tag, or
// by the recorded digest (pulls) for an image a release pinned by ID.
func planImages(desired []engine.ServiceSpec, stack *stackhcl.Stack, pulls map[string]string) []ImageAction {
	var images []ImageAction
	for _, spec := range desired {
		if spec.ImageID != "" {
			continue
		}
		if digest := pulls[spec.Name]; digest != "" {
			if i := slices.IndexFunc(images, func(a ImageAction) bool { return a.Image == digest }); i >= 0 {
				images[i].Services = append(images[i].Services, spec.Name)
				continue
			}
			images = append(images, ImageAction{Image: digest, Services: []string{spec.Name}, Pull: true, ID: spec.RunImage})
			continue
		}
		image := cmp.Or(spec.RunImage, spec.Image)
		if i := slices.IndexFunc(images, func(a ImageAction) bool { return a.Image == image }); i >= 0 {
			images[i].Services = append(images[i].Services, spec.Name)
			continue
		}
		action := ImageAction{Image: image, Services: []string{spec.Name}}
		switch build := buildOf(stack, image); {
		case spec.RunImage != "":
			// pinned by ID: there is no tag to build or pull
		case build != nil:
			action.Build, action.Dockerfile = build.Context, build.Dockerfile
		default:
			action.Pull = true
		}
		images = append(images, action)
	}
	return images
}

// buildOf is the build block of a service of the stack that runs image.
func buildOf(stack *stackhcl.Stack, image string) *stackhcl.Build {
	var build *stackhcl.Build
	for _, svc := range stack.Services {
		if svc.Image == image && svc.Build != nil {
			build = svc.Build
		}
	}
	return build
}

// recordImages puts each service's image, its ID where the engine has
// it, and the registry digest that ID is known by, into the release
// record. A pulled image's digest is recorded when the pull is done.
func (d *Deployer) recordImages(ctx context.Context, rel *state.Release, desired []engine.ServiceSpec) error {
	rel.Images, rel.ImageDigests, rel.RepoDigests = map[string]string{}, map[string]string{}, map[string]string{}
	digests := map[string]string{}
	for _, spec := range desired {
		rel.Images[spec.Name] = spec.Image
		if spec.ImageID == "" {
			continue
		}
		rel.ImageDigests[spec.Name] = spec.ImageID
		digest, seen := digests[spec.ImageID]
		if !seen {
			var err error
			if digest, err = d.Engine.RepoDigest(ctx, spec.ImageID); err != nil {
				return err
			}
			digests[spec.ImageID] = digest
		}
		if digest != "" {
			rel.RepoDigests[spec.Name] = digest
		}
	}
	return nil
}

// missingImages is the error of a plan with images that can be neither
// built nor pulled.
func missingImages(images []ImageAction) error {
	var errs []error
	for _, image := range images {
		if image.Build == "" && !image.Pull {
			errs = append(errs, fmt.Errorf("image %s of service %s, which the release recorded by ID, is no longer on the engine; load it again (docker load), or deploy the stack's version instead",
				image.Image, image.Services[0]))
		}
	}
	return errors.Join(errs...)
}
