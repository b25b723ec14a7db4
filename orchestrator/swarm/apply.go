package swarm

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// Engine creates and updates one project's Swarm objects through a
// manager's API.
type Engine struct {
	API *client.Client
	// RegistryAuth is sent with creates and updates (X-Registry-Auth), so
	// that every node pulls with the deployer's login; "" pulls
	// anonymously.
	RegistryAuth string
	// Auth, when set, is the X-Registry-Auth of an image reference (the
	// credentials of its registry), in place of RegistryAuth.
	Auth func(ref string) string
	// Poll is how often a wait reads the tasks; 0 is 500ms.
	Poll time.Duration
}

// NetworkName is the project's attachable overlay network.
func NetworkName(project string) string { return project + "_default" }

// EnsureNetwork creates the project's overlay network when it is missing.
// It is attachable, so the in-network probe agent can join it.
func (e *Engine) EnsureNetwork(ctx context.Context, project string) (string, error) {
	name := NetworkName(project)
	if inspected, err := e.API.NetworkInspect(ctx, name, client.NetworkInspectOptions{}); err == nil {
		return inspected.Network.ID, nil
	} else if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("network %s: %w", name, err)
	}
	created, err := e.API.NetworkCreate(ctx, name, client.NetworkCreateOptions{
		Driver: "overlay", Scope: "swarm", Attachable: true,
		Labels: map[string]string{LabelNamespace: project},
	})
	if err != nil {
		return "", fmt.Errorf("create network %s: %w", name, err)
	}
	return created.ID, nil
}

// EnsureObjects creates the service's secrets and configs that do not
// exist yet, and gives the service's references their IDs (Swarm refuses
// a reference by name alone). The names hold the contents' digests, so
// one that exists holds the same content.
func (e *Engine) EnsureObjects(ctx context.Context, svc *Service) error {
	secretIDs := map[string]string{}
	for _, s := range svc.Secrets {
		existing, err := e.API.SecretList(ctx, client.SecretListOptions{Filters: make(client.Filters).Add("name", s.Name)})
		if err != nil {
			return fmt.Errorf("list secrets: %w", err)
		}
		if i := slices.IndexFunc(existing.Items, func(x swarm.Secret) bool { return x.Spec.Name == s.Name }); i >= 0 {
			secretIDs[s.Name] = existing.Items[i].ID
			continue
		}
		created, err := e.API.SecretCreate(ctx, client.SecretCreateOptions{Spec: s})
		if err != nil {
			return fmt.Errorf("create secret %s: %w", s.Name, err)
		}
		secretIDs[s.Name] = created.ID
	}
	configIDs := map[string]string{}
	for _, c := range svc.Configs {
		existing, err := e.API.ConfigList(ctx, client.ConfigListOptions{Filters: make(client.Filters).Add("name", c.Name)})
		if err != nil {
			return fmt.Errorf("list configs: %w", err)
		}
		if i := slices.IndexFunc(existing.Items, func(x swarm.Config) bool { return x.Spec.Name == c.Name }); i >= 0 {
			configIDs[c.Name] = existing.Items[i].ID
			continue
		}
		created, err := e.API.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: c})
		if err != nil {
			return fmt.Errorf("create config %s: %w", c.Name, err)
		}
		configIDs[c.Name] = created.ID
	}
	cs := svc.Spec.TaskTemplate.ContainerSpec
	for _, ref := range cs.Secrets {
		if ref.SecretID = secretIDs[ref.SecretName]; ref.SecretID == "" {
			return fmt.Errorf("service %s mounts secret %s, which it does not declare", svc.Spec.Name, ref.SecretName)
		}
	}
	for _, ref := range cs.Configs {
		if ref.ConfigID = configIDs[ref.ConfigName]; ref.ConfigID == "" {
			return fmt.Errorf("service %s mounts config %s, which it does not declare", svc.Spec.Name, ref.ConfigName)
		}
	}
	return nil
}

// Change is what Converge did to a service.
type Change string

const (
	Unchanged Change = "unchanged"
	Created   Change = "created"
	Updated   Change = "updated"
)

// Converge creates the service, or updates it when its spec hash differs
// from the desired one, at the version it read (so that a concurrent
// writer makes it fail rather than be overwritten), and says why (Cause).
// Its secrets and configs must exist (EnsureObjects).
func (e *Engine) Converge(ctx context.Context, svc Service) (Change, string, error) {
	name := svc.Spec.Name
	current, err := e.API.ServiceInspect(ctx, name, client.ServiceInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		if _, err := e.API.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: svc.Spec, EncodedRegistryAuth: e.auth(svc.Spec.TaskTemplate.ContainerSpec.Image)}); err != nil {
			return "", "", fmt.Errorf("create service %s: %w", name, err)
		}
		return Created, "new service", nil
	case err != nil:
		return "", "", fmt.Errorf("inspect service %s: %w", name, err)
	}
	if current.Service.Spec.Labels[LabelSpecHash] == svc.Spec.Labels[LabelSpecHash] {
		return Unchanged, "", nil
	}
	cause := Cause(current.Service.Spec, svc.Spec)
	if _, err := e.API.ServiceUpdate(ctx, current.Service.ID, client.ServiceUpdateOptions{
		Version: current.Service.Version, Spec: svc.Spec, EncodedRegistryAuth: e.auth(svc.Spec.TaskTemplate.ContainerSpec.Image),
	}); err != nil {
		return "", "", fmt.Errorf("update service %s: %w", name, err)
	}
	return Updated, cause, nil
}

// ErrUpdatePaused is a service whose update Swarm paused: a new task
// failed. obcd rolls the release back.
var ErrUpdatePaused = errors.New("update paused")

// WaitConverged waits until the service runs what its spec says: every
// replica's task running (healthy, where the image has a healthcheck:
// Swarm keeps a task "starting" until then) at the current spec, and an
// update completed; a job's tasks complete. It fails at once on a paused
// update or a failed job task, with the task's own message.
func (e *Engine) WaitConverged(ctx context.Context, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	poll := cmp.Or(e.Poll, 500*time.Millisecond)
	last := "no tasks yet"
	for {
		done, status, err := e.converged(ctx, name)
		if err != nil || done {
			return err
		}
		last = status
		select {
		case <-ctx.Done():
			return fmt.Errorf("service %s did not converge within %s: %s", name, timeout, last)
		case <-time.After(poll):
		}
	}
}

func (e *Engine) converged(ctx context.Context, name string) (bool, string, error) {
	inspected, err := e.API.ServiceInspect(ctx, name, client.ServiceInspectOptions{})
	if err != nil {
		return false, "", fmt.Errorf("inspect service %s: %w", name, err)
	}
	svc := inspected.Service
	if u := svc.UpdateStatus; u != nil && u.State == swarm.UpdateStatePaused {
		return false, "", fmt.Errorf("service %s: %w: %s", name, ErrUpdatePaused, u.Message)
	}
	tasks, err := e.API.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", svc.ID)})
	if err != nil {
		return false, "", fmt.Errorf("tasks of %s: %w", name, err)
	}
	want, _ := json.Marshal(svc.Spec.TaskTemplate.ContainerSpec)
	current := func(t swarm.Task) bool {
		got, _ := json.Marshal(t.Spec.ContainerSpec)
		return bytes.Equal(got, want)
	}
	if job := svc.Spec.Mode.ReplicatedJob; job != nil {
		var complete int
		for _, t := range tasks.Items {
			// A job runs again on each update: only this execution's
			// tasks count.
			if st := svc.JobStatus; st != nil && (t.JobIteration == nil || t.JobIteration.Index != st.JobIteration.Index) {
				continue
			}
			switch t.Status.State {
			case swarm.TaskStateComplete:
				complete++
			case swarm.TaskStateFailed, swarm.TaskStateRejected:
				return false, "", fmt.Errorf("job %s: task failed: %s %s", name, t.Status.Err, t.Status.Message)
			}
		}
		total := uint64(1)
		if job.TotalCompletions != nil {
			total = *job.TotalCompletions
		}
		return uint64(complete) >= total, fmt.Sprintf("%d of %d complete", complete, total), nil
	}
	replicas := uint64(1)
	if r := svc.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
		replicas = *r.Replicas
	}
	var running, other uint64
	var states []string
	for _, t := range tasks.Items {
		if t.DesiredState != swarm.TaskStateRunning {
			continue
		}
		if t.Status.State == swarm.TaskStateRunning && current(t) && t.Spec.ForceUpdate == svc.Spec.TaskTemplate.ForceUpdate {
			running++
			continue
		}
		other++
		states = append(states, fmt.Sprintf("%s %s", t.Status.State, strings.TrimSpace(t.Status.Err+" "+t.Status.Message)))
	}
	updating := svc.UpdateStatus != nil && svc.UpdateStatus.State == swarm.UpdateStateUpdating
	status := fmt.Sprintf("%d of %d running at the current spec", running, replicas)
	if len(states) > 0 {
		status += "; others: " + strings.Join(states, ", ")
	}
	return running == replicas && other == 0 && !updating, status, nil
}

// RemoveUnused removes the project's secrets and configs that none of
// keep names: after a successful release, the old contents. One still in
// use by a service is left.
func (e *Engine) RemoveUnused(ctx context.Context, project string, keep []Service) ([]string, error) {
	wanted := map[string]bool{}
	for _, svc := range keep {
		for _, s := range svc.Secrets {
			wanted[s.Name] = true
		}
		for _, c := range svc.Configs {
			wanted[c.Name] = true
		}
	}
	filter := make(client.Filters).Add("label", LabelNamespace+"="+project)
	var removed []string
	secrets, err := e.API.SecretList(ctx, client.SecretListOptions{Filters: filter})
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	for _, s := range secrets.Items {
		if wanted[s.Spec.Name] {
			continue
		}
		if _, err := e.API.SecretRemove(ctx, s.ID, client.SecretRemoveOptions{}); err == nil {
			removed = append(removed, s.Spec.Name)
		}
	}
	configs, err := e.API.ConfigList(ctx, client.ConfigListOptions{Filters: filter})
	if err != nil {
		return removed, fmt.Errorf("list configs: %w", err)
	}
	for _, c := range configs.Items {
		if wanted[c.Spec.Name] {
			continue
		}
		if _, err := e.API.ConfigRemove(ctx, c.ID, client.ConfigRemoveOptions{}); err == nil {
			removed = append(removed, c.Spec.Name)
		}
	}
	return removed, nil
}

// RemoveProject removes the project's services, then its secrets,
// configs and network.
func (e *Engine) RemoveProject(ctx context.Context, project string) error {
	filter := make(client.Filters).Add("label", LabelNamespace+"="+project)
	services, err := e.API.ServiceList(ctx, client.ServiceListOptions{Filters: filter})
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	var errs []error
	for _, s := range services.Items {
		if _, err := e.API.ServiceRemove(ctx, s.ID, client.ServiceRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove service %s: %w", s.Spec.Name, err))
		}
	}
	// A secret, a config or the network is in use until the removed
	// services' tasks are gone.
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range services.Items {
		for time.Now().Before(deadline) {
			left, err := e.API.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", s.ID)})
			if err != nil || len(left.Items) == 0 {
				break
			}
			time.Sleep(cmp.Or(e.Poll, 500*time.Millisecond))
		}
	}
	if _, err := e.RemoveUnused(ctx, project, nil); err != nil {
		errs = append(errs, err)
	}
	if _, err := e.API.NetworkRemove(ctx, NetworkName(project), client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("remove network %s: %w", NetworkName(project), err))
	}
	return errors.Join(errs...)
}
