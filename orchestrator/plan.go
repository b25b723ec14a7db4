package orchestrator

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/obcd/obcd/orchestrator/engine"
)

// ActionKind is what a plan step does to one container.
type ActionKind string

// Plan step kinds.
const (
	ActionCreate   ActionKind = "create"   // a new container
	ActionRecreate ActionKind = "recreate" // replace a container whose spec changed
	ActionRemove   ActionKind = "remove"   // a container no longer wanted
	ActionKeep     ActionKind = "keep"     // up to date
	ActionRun      ActionKind = "run"      // a one-off job (migrate) before the app changes
	ActionBackup   ActionKind = "backup"   // a one-shot pg_dump by the backup job, before migrations
	ActionReload   ActionKind = "reload"   // a running container takes new versions of files in place
)

// Action is one step of a plan, with its cause. Every container it names
// is named exactly: apply creates Container under that name and number,
// and acts on existing containers by ID.
type Action struct {
	// Wave orders the steps: the steps of one wave run together, and a
	// wave starts when the one before it has finished. Keep steps do
	// nothing and have wave 0.
	Wave    int        `json:"wave"`
	Kind    ActionKind `json:"action"`
	Service string     `json:"service"`
	// Number is the replica number of Container; 0 for a one-off.
	Number int `json:"number"`
	// Container is the container this step creates (create, recreate,
	// run, backup), or the one it acts on (remove, keep).
	Container string `json:"container"`
	// ID is the existing container a remove or keep acts on.
	ID string `json:"id,omitempty"`
	// Replaces is the container a recreate replaces.
	Replaces *ContainerRef `json:"replaces,omitempty"`
	Reason   string        `json:"reason"`
	// StartFirst: a recreate starts the new container and waits for it to
	// be healthy and in rotation before the old one leaves.
	StartFirst bool `json:"start_first,omitempty"`
	// Files are the container paths a reload gives their new versions,
	// or, on a create or recreate, the files applied once the new
	// container is healthy (a database's roles).
	Files []string `json:"files,omitempty"`
}

// ContainerRef names an existing container.
type ContainerRef struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Number int    `json:"number"`
}

// Plan is what a deploy does, step by step. obcd plan prints it, obcd
// deploy shows it before it asks, and apply carries it out as it is: it
// makes no decision of its own.
type Plan struct {
	Project string `json:"project"`
	// Release is the release the containers it creates belong to.
	Release string `json:"release"`
	Version string `json:"version,omitempty"`
	// Images are built (or found missing) before anything changes.
	Images []ImageAction `json:"images,omitempty"`
	// Tags are given to the release's images once it is proven.
	Tags []TagAction `json:"tags,omitempty"`
	// Network and Volumes are created when missing, before the first
	// wave; an existing volume is used as it is, never emptied.
	Network string   `json:"network"`
	Volumes []string `json:"volumes,omitempty"`
	Actions []Action `json:"actions"`
	// Unproven is the release whose containers run but which never ended
	// proven (a deploy killed after its switch): a deploy proves them with
	// the probes and the watch window, or returns to the stable release,
	// even when it has nothing to change.
	Unproven *UnprovenRelease `json:"unproven,omitempty"`
	// Engine is "swarm" for a plan of swarm services (Services), "" for
	// one of containers (Actions).
	Engine   string          `json:"engine,omitempty"`
	Services []ServiceAction `json:"services,omitempty"`
	// Extra are swarm services of the project that the stack no longer
	// declares: the deploy leaves them; obcd down removes them.
	Extra []string `json:"extra,omitempty"`
}

// UnprovenRelease is a release whose containers run unproven.
type UnprovenRelease struct {
	ID         string   `json:"id"`
	Outcome    string   `json:"outcome"`
	Containers []string `json:"containers"`
}

// HasWork reports whether a deploy of the plan does anything: change a
// container, or prove the ones that run.
func (p Plan) HasWork() bool { return p.Changes() || p.Unproven != nil }

// ImageAction is an image the engine lacks: the deploy builds it from
// the stack's build context, or pulls it from its registry, before any
// change.
type ImageAction struct {
	Image    string   `json:"image"`
	Services []string `json:"services"`
	// Build is the context it is built from; "" means it is pulled.
	Build      string `json:"build,omitempty"`
	Dockerfile string `json:"dockerfile,omitempty"`
	// Pull says it is pulled from its registry, with the credentials of
	// the user's Docker config. An image a release pinned by ID and the
	// engine has lost can be neither built nor pulled (Build "" and Pull
	// false): the deploy fails before anything changes.
	Pull bool `json:"pull,omitempty"`
	// ID, on a pull by digest, is the image ID the release recorded: the
	// pull must give exactly that image.
	ID string `json:"id,omitempty"`
}

// TagAction tags the image a service runs, by its ID, once the release
// is proven.
type TagAction struct {
	Service string   `json:"service"`
	Image   string   `json:"image"`
	Tags    []string `json:"tags"`
}

// Changes reports whether the plan changes anything.
func (p Plan) Changes() bool {
	return slices.ContainsFunc(p.Actions, func(a Action) bool { return a.Kind != ActionKeep }) ||
		slices.ContainsFunc(p.Services, func(s ServiceAction) bool { return s.Change != "keep" })
}

// Count tallies actions by kind.
func (p Plan) Count(kind ActionKind) int {
	n := 0
	for _, a := range p.Actions {
		if a.Kind == kind {
			n++
		}
	}
	return n
}

// Waves returns the steps that change something, wave by wave.
func (p Plan) Waves() [][]Action {
	var waves [][]Action
	for _, a := range p.Actions {
		if a.Wave == 0 {
			continue
		}
		for len(waves) < a.Wave {
			waves = append(waves, nil)
		}
		waves[a.Wave-1] = append(waves[a.Wave-1], a)
	}
	return waves
}

// PlanInput is everything MakePlan decides from.
type PlanInput struct {
	Project string
	// Release names the containers' release label and the one-offs.
	Release string
	// Desired is in dependency order; the plan follows it.
	Desired  []engine.ServiceSpec
	Observed []engine.Container
	// Backup is the service whose one-shot dump runs before migrations
	// ("" when the stack has no backup job).
	Backup string
}

// MakePlan computes, with no I/O, the steps that take observed to
// desired, numbered and grouped into waves. Every step carries its
// cause. Volumes never appear: a plan never removes data.
func MakePlan(in PlanInput) Plan {
	byService := map[string][]engine.Container{}
	for _, c := range in.Observed {
		if !c.OneOff {
			byService[c.Service] = append(byService[c.Service], c)
		}
	}
	var actions []Action
	// A one-off (migrate) runs right before the first new or replaced
	// container that waits for it: after the services it needs itself
	// (the database) are in place, before any new code serves.
	ranOneOffs := false
	for _, spec := range in.Desired {
		if spec.OneOff {
			continue
		}
		steps := planService(in.Project, spec, byService[spec.Name])
		if !ranOneOffs && dependsOnOneOff(spec, in.Desired) && runsNewCode(steps) {
			actions = append(actions, oneOffRuns(in)...)
			ranOneOffs = true
		}
		actions = append(actions, steps...)
		delete(byService, spec.Name)
	}
	for _, service := range slices.Sorted(maps.Keys(byService)) {
		for _, c := range byService[service] {
			actions = append(actions, Action{Kind: ActionRemove, Service: service, Number: c.Number, Container: c.Name, ID: c.ID,
				Reason: "service is no longer in the stack"})
		}
	}
	actions = append(actions, leftoverOneOffs(in.Observed)...)
	assignWaves(actions, in.Desired)
	return Plan{Project: in.Project, Release: in.Release, Network: engine.NetworkName(in.Project), Volumes: volumesOf(in.Desired), Actions: actions}
}

// leftoverOneOffs remove the one-off containers earlier deploys left
// behind (killed halfway): they never run again. One still running (a
// migration whose deploy died) is left alone to finish.
func leftoverOneOffs(observed []engine.Container) []Action {
	var actions []Action
	for _, c := range observed {
		if c.OneOff && c.State != "running" && c.State != "restarting" {
			actions = append(actions, Action{Kind: ActionRemove, Service: c.Service, Container: c.Name, ID: c.ID,
				Reason: fmt.Sprintf("one-off left %s by release %s", c.State, cmp.Or(c.Release, "unknown"))})
		}
	}
	return actions
}

// volumesOf are the project volumes the services mount, sorted.
func volumesOf(desired []engine.ServiceSpec) []string {
	var volumes []string
	for _, spec := range desired {
		for _, m := range spec.Mounts {
			if m.Volume != "" && !slices.Contains(volumes, m.Volume) {
				volumes = append(volumes, m.Volume)
			}
		}
	}
	slices.Sort(volumes)
	return volumes
}

// planService matches a service's containers to its replicas by number.
// New containers take the numbers after the highest one the service has,
// so a start-first replica never needs the name of the one it replaces.
func planService(project string, spec engine.ServiceSpec, containers []engine.Container) []Action {
	slices.SortFunc(containers, func(a, b engine.Container) int { return a.Number - b.Number })
	hash := spec.Hash()
	next := nextNumber(containers)
	newNumber := func() int { next++; return next - 1 }
	var out []Action
	kept := 0
	for _, c := range containers {
		if kept >= spec.Replicas {
			out = append(out, Action{Kind: ActionRemove, Service: spec.Name, Number: c.Number, Container: c.Name, ID: c.ID,
				Reason: fmt.Sprintf("scale down to %d", spec.Replicas)})
			continue
		}
		kept++
		reason := recreateReason(spec, hash, c)
		if reason == "" {
			if files, how := changedReloads(spec, c); len(files) > 0 {
				out = append(out, Action{Kind: ActionReload, Service: spec.Name, Number: c.Number, Container: c.Name, ID: c.ID,
					Files: files, Reason: how})
				continue
			}
			out = append(out, Action{Kind: ActionKeep, Service: spec.Name, Number: c.Number, Container: c.Name, ID: c.ID, Reason: "up to date"})
			continue
		}
		number := c.Number // stop first: the new one takes the old one's name once it is gone
		if spec.StartFirst {
			number = newNumber()
		}
		files, reason := appliedAfterStart(spec, reason)
		out = append(out, Action{Kind: ActionRecreate, Service: spec.Name, Number: number,
			Container: engine.ContainerName(project, spec.Name, number), Replaces: &ContainerRef{ID: c.ID, Name: c.Name, Number: c.Number},
			Reason: reason, StartFirst: spec.StartFirst, Files: files})
	}
	for ; kept < spec.Replicas; kept++ {
		reason := "no existing container"
		if len(containers) > 0 {
			reason = fmt.Sprintf("scale up to %d", spec.Replicas)
		}
		number := newNumber()
		files, reason := appliedAfterStart(spec, reason)
		out = append(out, Action{Kind: ActionCreate, Service: spec.Name, Number: number,
			Container: engine.ContainerName(project, spec.Name, number), Reason: reason, Files: files})
	}
	return out
}

// changedReloads are the files of spec that reload in place and whose
// version in container c is not the desired one, with how they reload.
// A container whose files were not read (nil) gets them all: applying
// a file again is harmless, leaving an old password is not.
func changedReloads(spec engine.ServiceSpec, c engine.Container) ([]string, string) {
	var files, hows []string
	for _, f := range spec.ReloadedFiles() {
		if digest, read := c.Files[f.Target]; read && digest == engine.FileDigest(f.Data) {
			continue
		}
		files = append(files, f.Target)
		hows = append(hows, path.Base(f.Target)+" changed: "+f.Reload.How)
	}
	return files, strings.Join(hows, "; ")
}

// appliedAfterStart are the files a new container of spec applies once
// it is healthy, and the step's reason saying so.
func appliedAfterStart(spec engine.ServiceSpec, reason string) ([]string, string) {
	var files, names []string
	for _, f := range spec.ReloadedFiles() {
		if len(f.Reload.Exec) > 0 {
			files = append(files, f.Target)
			names = append(names, path.Base(f.Target))
		}
	}
	if len(files) == 0 {
		return nil, reason
	}
	return files, reason + "; then applies " + strings.Join(names, ", ")
}

// recreateReason says why container c no longer matches spec, or "" when
// it does.
func recreateReason(spec engine.ServiceSpec, hash string, c engine.Container) string {
	switch {
	case c.Hash != hash && c.Image != spec.Image:
		return fmt.Sprintf("image changed: %s -> %s", c.Image, spec.Image)
	case c.Hash != hash:
		return "config hash changed"
	case spec.RunImage != "" && c.ImageID != spec.ImageID:
		return fmt.Sprintf("runs image %s; the release recorded %s (%s has moved since)", shortImageID(c.ImageID), shortImageID(spec.ImageID), spec.Image)
	case spec.ImageID != "" && c.ImageID != "" && c.ImageID != spec.ImageID:
		return fmt.Sprintf("image rebuilt: %s is now %s", spec.Image, shortImageID(spec.ImageID))
	case c.State != "running":
		return "container is " + c.State
	}
	return ""
}

// shortImageID is an image ID as docker images prints it.
func shortImageID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(len(id), 12)]
}

func nextNumber(containers []engine.Container) int {
	n := 1
	for _, c := range containers {
		n = max(n, c.Number+1)
	}
	return n
}

// runsNewCode reports whether actions start a new or replaced container:
// removing one does not migrate.
func runsNewCode(actions []Action) bool {
	return slices.ContainsFunc(actions, func(a Action) bool { return a.Kind == ActionCreate || a.Kind == ActionRecreate })
}

// oneOffRuns are the steps that run every one-off job of the stack: the
// backup job's dump first, when the stack has one, then each one-off.
func oneOffRuns(in PlanInput) []Action {
	var runs []Action
	if in.Backup != "" && slices.ContainsFunc(in.Desired, func(s engine.ServiceSpec) bool { return s.Name == in.Backup }) {
		runs = append(runs, Action{Kind: ActionBackup, Service: in.Backup,
			Container: engine.OneOffName(in.Project, in.Backup, in.Release), Reason: "pg_dump before migrations"})
	}
	for _, spec := range in.Desired {
		if spec.OneOff {
			runs = append(runs, Action{Kind: ActionRun, Service: spec.Name,
				Container: engine.OneOffName(in.Project, spec.Name, in.Release), Reason: "runs before the services that depend on it change"})
		}
	}
	return runs
}

// dependsOnOneOff reports whether spec waits for a one-off job.
func dependsOnOneOff(spec engine.ServiceSpec, desired []engine.ServiceSpec) bool {
	return slices.ContainsFunc(desired, func(d engine.ServiceSpec) bool { return d.OneOff && slices.Contains(spec.DependsOn, d.Name) })
}
