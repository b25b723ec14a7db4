package swarm

import (
	"context"
	"fmt"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/obcd/obcd/orchestrator/engine"
)

// Plan says what Apply would do to each service of specs, in Apply's
// order (Waves), without changing anything: the step's Change is what
// Converge will do, and its Cause why. It reads one snapshot of the
// project's services.
func (e *Engine) Plan(ctx context.Context, specs []engine.ServiceSpec, opts Options) ([]Step, error) {
	waves, err := Waves(specs)
	if err != nil {
		return nil, err
	}
	var steps []Step
	for _, wave := range waves {
		for _, spec := range wave {
			svc, err := Translate(spec, opts)
			if err != nil {
				return nil, err
			}
			current, err := e.API.ServiceInspect(ctx, svc.Spec.Name, client.ServiceInspectOptions{})
			switch {
			case cerrdefs.IsNotFound(err):
				steps = append(steps, Step{Service: spec.Name, Change: Created, Cause: "new service"})
			case err != nil:
				return nil, fmt.Errorf("inspect service %s: %w", svc.Spec.Name, err)
			case current.Service.Spec.Labels[LabelSpecHash] == svc.Spec.Labels[LabelSpecHash]:
				steps = append(steps, Step{Service: spec.Name, Change: Unchanged})
			default:
				steps = append(steps, Step{Service: spec.Name, Change: Updated, Cause: Cause(current.Service.Spec, svc.Spec)})
			}
		}
	}
	return steps, nil
}

// Extra lists the project's services that specs do not name: a service
// the stack no longer declares. Apply leaves them; the plan says so.
func (e *Engine) Extra(ctx context.Context, project string, specs []engine.ServiceSpec) ([]string, error) {
	services, err := e.API.ServiceList(ctx, client.ServiceListOptions{Filters: make(client.Filters).Add("label", LabelNamespace+"="+project)})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	wanted := map[string]bool{}
	for _, s := range specs {
		wanted[ServiceName(project, s.Name)] = true
	}
	var extra []string
	for _, s := range services.Items {
		if !wanted[s.Spec.Name] {
			extra = append(extra, s.Spec.Name)
		}
	}
	slices.Sort(extra)
	return extra, nil
}

// Resolve pins every spec's image to the digest its registry serves now,
// as `docker stack deploy` does, and sets RunImage to repo@digest: every
// node then runs the same image, and a release records what it ran, not
// a tag that can move. pinned gives, by service, a digest reference
// recorded earlier (a rollback): it is used as it is. An image no
// registry serves cannot run on a swarm's other nodes, so Resolve refuses
// it, before anything changes.
func (e *Engine) Resolve(ctx context.Context, specs []engine.ServiceSpec, pinned map[string]string) error {
	digests := map[string]string{}
	for i := range specs {
		spec := &specs[i]
		if ref := pinned[spec.Name]; ref != "" {
			spec.RunImage = ref
			continue
		}
		if d, ok := digests[spec.Image]; ok {
			spec.RunImage = d
			continue
		}
		named, err := reference.ParseNormalizedNamed(spec.Image)
		if err != nil {
			return fmt.Errorf("service %s: image %s: %w", spec.Name, spec.Image, err)
		}
		if canonical, ok := named.(reference.Canonical); ok {
			digests[spec.Image] = canonical.String()
			spec.RunImage = canonical.String()
			continue
		}
		inspected, err := e.API.DistributionInspect(ctx, spec.Image, client.DistributionInspectOptions{EncodedRegistryAuth: e.auth(spec.Image)})
		if err != nil {
			return fmt.Errorf("service %s: image %s is not served by its registry (%s): on a swarm every node pulls the image, so push it first (docker push %s)",
				spec.Name, spec.Image, firstLine(err.Error()), spec.Image)
		}
		pinnedRef, err := reference.WithDigest(reference.TrimNamed(named), inspected.Descriptor.Digest)
		if err != nil {
			return fmt.Errorf("service %s: image %s: %w", spec.Name, spec.Image, err)
		}
		digests[spec.Image] = pinnedRef.String()
		spec.RunImage = pinnedRef.String()
	}
	return nil
}

// auth is the X-Registry-Auth header for ref.
func (e *Engine) auth(ref string) string {
	if e.Auth != nil {
		return e.Auth(ref)
	}
	return e.RegistryAuth
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// ServiceStatus is one service of the project as Swarm runs it now.
type ServiceStatus struct {
	Service string `json:"service"` // the stack's name
	Job     bool   `json:"job,omitempty"`
	Running uint64 `json:"running"`
	Desired uint64 `json:"desired"`
	// Update is Swarm's update state when one is not complete (updating,
	// paused, rollback_…); "" otherwise.
	Update   string   `json:"update,omitempty"`
	Problems []string `json:"problems,omitempty"` // the tasks that should run and do not, with why
}

// Healthy says whether the service runs all it should: every replica, or
// for a job, its last run complete.
func (s ServiceStatus) Healthy() bool {
	if s.Job {
		return len(s.Problems) == 0
	}
	return s.Running >= s.Desired && s.Update == "" && len(s.Problems) == 0
}

func (s ServiceStatus) String() string {
	var b strings.Builder
	switch {
	case s.Job:
		fmt.Fprintf(&b, "%s: job", s.Service)
	default:
		fmt.Fprintf(&b, "%s: %d of %d running", s.Service, s.Running, s.Desired)
	}
	if s.Update != "" {
		fmt.Fprintf(&b, ", update %s", s.Update)
	}
	if len(s.Problems) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(s.Problems, "; "))
	}
	return b.String()
}

// NodeStatus is one node of the swarm.
type NodeStatus struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
	// Name is the node's obcd.node label when it has one: nodes of one
	// machine share a hostname.
	Name  string `json:"name,omitempty"`
	Role  string `json:"role"`
	State string `json:"state"` // ready, down, unknown, disconnected
	Addr  string `json:"addr,omitempty"`
}

func (n NodeStatus) String() string {
	name := n.Hostname
	if n.Name != "" {
		name = n.Name
	}
	if n.Addr != "" {
		name += " (" + n.Addr + ")"
	}
	return name
}

// Status reads the project's services, their tasks and the swarm's
// nodes.
func (e *Engine) Status(ctx context.Context, project string) ([]ServiceStatus, []NodeStatus, error) {
	listed, err := e.API.ServiceList(ctx, client.ServiceListOptions{Filters: make(client.Filters).Add("label", LabelNamespace+"="+project), Status: true})
	if err != nil {
		return nil, nil, fmt.Errorf("list services: %w", err)
	}
	var out []ServiceStatus
	for _, svc := range listed.Items {
		st := ServiceStatus{Service: strings.TrimPrefix(svc.Spec.Name, project+"_"), Job: svc.Spec.Mode.ReplicatedJob != nil}
		if svc.ServiceStatus != nil {
			st.Running, st.Desired = svc.ServiceStatus.RunningTasks, svc.ServiceStatus.DesiredTasks
		}
		if u := svc.UpdateStatus; u != nil && u.State != swarm.UpdateStateCompleted && u.State != swarm.UpdateStateRollbackCompleted {
			st.Update = string(u.State)
		}
		if !st.Job && st.Running < st.Desired {
			tasks, err := e.API.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", svc.ID).Add("desired-state", "running")})
			if err != nil {
				return nil, nil, fmt.Errorf("tasks of %s: %w", svc.Spec.Name, err)
			}
			for _, t := range tasks.Items {
				if t.Status.State != swarm.TaskStateRunning {
					st.Problems = append(st.Problems, strings.TrimSpace(fmt.Sprintf("task %d %s %s", t.Slot, t.Status.State, t.Status.Err)))
				}
			}
			if len(st.Problems) == 0 {
				st.Problems = append(st.Problems, fmt.Sprintf("%d of %d replicas running", st.Running, st.Desired))
			}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b ServiceStatus) int { return strings.Compare(a.Service, b.Service) })
	nodes, err := e.API.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return out, nil, fmt.Errorf("list nodes: %w", err)
	}
	var ns []NodeStatus
	for _, n := range nodes.Items {
		ns = append(ns, NodeStatus{ID: n.ID, Hostname: n.Description.Hostname, Name: n.Spec.Labels["obcd.node"], Role: string(n.Spec.Role), State: string(n.Status.State), Addr: n.Status.Addr})
	}
	slices.SortFunc(ns, func(a, b NodeStatus) int { return strings.Compare(a.Hostname, b.Hostname) })
	return out, ns, nil
}
