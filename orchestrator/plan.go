package orchestrator

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
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
)

// Action is one step of a plan, with its cause.
type Action struct {
	Kind      ActionKind `json:"action"`
	Service   string     `json:"service"`
	Number    int        `json:"number"`
	Container string     `json:"container"` // name of the container acted on or created
	Reason    string     `json:"reason"`
	// StartFirst: a recreate starts the new container and waits for it to
	// be healthy before the old one leaves.
	StartFirst bool `json:"start_first,omitempty"`
}

// Plan is the ordered steps from what runs to what the stack wants.
type Plan struct {
	Project string   `json:"project"`
	Actions []Action `json:"actions"`
}

// Changes reports whether the plan changes anything.
func (p Plan) Changes() bool {
	for _, a := range p.Actions {
		if a.Kind != ActionKeep {
			return true
		}
	}
	return false
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

// ContainerName is compose's name for a service's container number n.
func ContainerName(project, service string, n int) string {
	return fmt.Sprintf("%s-%s-%d", project, service, n)
}

// MakePlan computes, with no I/O, the steps that take observed to
// desired. desired is in dependency order; the plan follows it. Every
// step carries its cause. Volumes never appear: a plan never removes data.
func MakePlan(project string, desired []ServiceSpec, observed []Container) Plan {
	plan := Plan{Project: project}
	byService := map[string][]Container{}
	for _, c := range observed {
		if !c.OneOff {
			byService[c.Service] = append(byService[c.Service], c)
		}
	}
	// A one-off (migrate) runs right before the first new or replaced
	// container that waits for it: after the services it needs itself
	// (the database) are in place, before any new code serves.
	ranOneOffs := false
	for _, spec := range desired {
		if spec.OneOff {
			continue
		}
		actions := planService(project, spec, byService[spec.Name])
		if !ranOneOffs && dependsOnOneOff(spec, desired) && runsNewCode(actions) {
			plan.Actions = append(plan.Actions, oneOffRuns(desired)...)
			ranOneOffs = true
		}
		plan.Actions = append(plan.Actions, actions...)
		delete(byService, spec.Name)
	}
	var gone []string
	for service := range byService {
		gone = append(gone, service)
	}
	sort.Strings(gone)
	for _, service := range gone {
		for _, c := range byService[service] {
			plan.Actions = append(plan.Actions, Action{Kind: ActionRemove, Service: service, Number: c.Number, Container: c.Name,
				Reason: "service is no longer in the stack"})
		}
	}
	return plan
}

// planService matches a service's containers to its replicas by number.
func planService(project string, spec ServiceSpec, containers []Container) []Action {
	sort.Slice(containers, func(i, j int) bool { return containers[i].Number < containers[j].Number })
	hash := spec.Hash()
	var out []Action
	kept := 0
	for _, c := range containers {
		if kept >= spec.Replicas {
			out = append(out, Action{Kind: ActionRemove, Service: spec.Name, Number: c.Number, Container: c.Name,
				Reason: fmt.Sprintf("scale down to %d", spec.Replicas)})
			continue
		}
		kept++
		a := Action{Service: spec.Name, Number: c.Number, Container: c.Name, StartFirst: spec.StartFirst}
		switch {
		case c.Hash != hash && c.Image != spec.Image:
			a.Kind, a.Reason = ActionRecreate, fmt.Sprintf("image changed: %s -> %s", c.Image, spec.Image)
		case c.Hash != hash:
			a.Kind, a.Reason = ActionRecreate, "config hash changed"
		case spec.ImageID != "" && c.ImageID != "" && c.ImageID != spec.ImageID:
			a.Kind, a.Reason = ActionRecreate, fmt.Sprintf("image rebuilt: %s is now %s", spec.Image, shortImageID(spec.ImageID))
		case c.State != "running":
			a.Kind, a.Reason = ActionRecreate, "container is "+c.State
		default:
			a.Kind, a.Reason = ActionKeep, "up to date"
		}
		out = append(out, a)
	}
	next := nextNumber(containers)
	for ; kept < spec.Replicas; kept++ {
		reason := "no existing container"
		if len(containers) > 0 {
			reason = fmt.Sprintf("scale up to %d", spec.Replicas)
		}
		out = append(out, Action{Kind: ActionCreate, Service: spec.Name, Number: next,
			Container: ContainerName(project, spec.Name, next), Reason: reason})
		next++
	}
	return out
}

// shortImageID is an image ID as docker images prints it.
func shortImageID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

func nextNumber(containers []Container) int {
	n := 1
	for _, c := range containers {
		if c.Number >= n {
			n = c.Number + 1
		}
	}
	return n
}

// runsNewCode reports whether actions start a new or replaced container:
// removing one does not migrate.
func runsNewCode(actions []Action) bool {
	for _, a := range actions {
		if a.Kind == ActionCreate || a.Kind == ActionRecreate {
			return true
		}
	}
	return false
}

// oneOffRuns are the run steps of every one-off job in desired.
func oneOffRuns(desired []ServiceSpec) []Action {
	var runs []Action
	for _, spec := range desired {
		if spec.OneOff {
			runs = append(runs, Action{Kind: ActionRun, Service: spec.Name,
				Container: spec.Project + "-" + spec.Name + "-run", Reason: "runs before the services that depend on it change"})
		}
	}
	return runs
}

// dependsOnOneOff reports whether spec waits for a one-off job.
func dependsOnOneOff(spec ServiceSpec, desired []ServiceSpec) bool {
	for _, dep := range spec.DependsOn {
		for _, d := range desired {
			if d.Name == dep && d.OneOff {
				return true
			}
		}
	}
	return false
}

// String is the plan as printed by obcd plan and deploy --dry-run; tests
// compare it as golden text. It shows names and causes, never values.
func (p Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Plan for %s:\n", p.Project)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, a := range p.Actions {
		mode := ""
		if a.StartFirst && a.Kind == ActionRecreate {
			mode = " (start first)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s%s\n", a.Kind, a.Container, a.Reason, mode)
	}
	tw.Flush()
	fmt.Fprintf(&b, "%d to create, %d to recreate, %d to remove, %d to run, %d unchanged.\n",
		p.Count(ActionCreate), p.Count(ActionRecreate), p.Count(ActionRemove), p.Count(ActionRun), p.Count(ActionKeep))
	return b.String()
}
