package probe

// container.go checks a compose project's containers on the Docker engine:
// running, healthy when they have a healthcheck, not restarting over and
// over, and at least one per expected service.

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/obcd/obcd/orchestrator/engine"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// DefaultMaxRestarts is how many restarts a container may have before the
// container probe fails it.
const DefaultMaxRestarts = 3

// ContainerAPI is the part of the Docker client the container probe uses.
type ContainerAPI interface {
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
}

var _ ContainerAPI = (*client.Client)(nil)

// ContainerConfig is what a container probe checks.
type ContainerConfig struct {
	Docker      ContainerAPI
	Project     string   // com.docker.compose.project label
	Services    []string // each must have at least one running container
	MaxRestarts int      // a container with more restarts fails; 0 = DefaultMaxRestarts
}

// Container returns a checker that lists the project's containers and
// wants each running, "healthy" when it has a healthcheck, and restarted
// at most MaxRestarts times, and every expected service represented by a
// running container. Every problem is reported, each naming its container.
func Container(cfg ContainerConfig) Checker {
	if cfg.MaxRestarts <= 0 {
		cfg.MaxRestarts = DefaultMaxRestarts
	}
	return CheckFunc(func(ctx context.Context) Attempt { return containerCheck(ctx, cfg) })
}

func containerCheck(ctx context.Context, cfg ContainerConfig) Attempt {
	if cfg.Docker == nil || cfg.Project == "" {
		return Fatalf("container probe needs a Docker client and a compose project name")
	}
	listed, err := cfg.Docker.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", engine.LabelProject+"="+cfg.Project),
	})
	if err != nil {
		return Failed("listing the containers of project %q: %v", cfg.Project, err)
	}
	var problems []string
	// Every problem holds now except a healthcheck still starting.
	definite := false
	running := map[string]int{} // service → running containers
	total := 0
	for _, summary := range containerSorted(listed.Items) {
		if summary.Labels[engine.LabelOneOff] == "True" {
			continue
		}
		total++
		inspected, err := cfg.Docker.ContainerInspect(ctx, summary.ID, client.ContainerInspectOptions{})
		if err != nil {
			problems = append(problems, fmt.Sprintf("container %s: inspect failed: %v", containerSummaryName(summary), err))
			continue
		}
		problem := containerProblem(inspected.Container, cfg.MaxRestarts)
		if problem != "" {
			problems = append(problems, fmt.Sprintf("container %s %s", containerName(inspected.Container, summary), problem))
			definite = definite || !strings.HasPrefix(problem, "health is starting")
		}
		if inspected.Container.State != nil && inspected.Container.State.Running {
			running[summary.Labels[engine.LabelService]]++
		}
	}
	for _, service := range cfg.Services {
		if running[service] == 0 {
			problems = append(problems, fmt.Sprintf("service %q has no running container", service))
			definite = true
		}
	}
	if total == 0 && len(cfg.Services) == 0 {
		problems = append(problems, "no containers")
		definite = true
	}
	if len(problems) > 0 {
		attempt := Failed("project %q: %s", cfg.Project, strings.Join(problems, "; "))
		attempt.Definite = attempt.Definite || definite
		return attempt
	}
	return Passed("project %q: %d containers running and healthy", cfg.Project, total)
}

// containerProblem says what is wrong with one container, or "".
func containerProblem(inspected container.InspectResponse, maxRestarts int) string {
	state := inspected.State
	if state == nil {
		return "has no state"
	}
	if !state.Running || state.Restarting || state.Paused {
		detail := fmt.Sprintf("is %s, expected running", state.Status)
		if state.Status == container.StateExited || state.Status == container.StateDead {
			detail += fmt.Sprintf(" (exit code %d", state.ExitCode)
			if state.Error != "" {
				detail += ": " + state.Error
			}
			detail += ")"
		}
		return detail + containerRestarts(inspected.RestartCount)
	}
	if inspected.RestartCount > maxRestarts {
		return fmt.Sprintf("restarted %d times, more than the %d allowed", inspected.RestartCount, maxRestarts)
	}
	health := state.Health
	if health == nil || health.Status == "" || health.Status == container.NoHealthcheck {
		return ""
	}
	switch health.Status {
	case container.Healthy:
		return ""
	case container.Starting:
		return "health is starting (no passing healthcheck yet)" + containerLastHealth(health)
	case container.Unhealthy:
		return fmt.Sprintf("is unhealthy after %d failed healthchecks", health.FailingStreak) + containerLastHealth(health)
	default:
		return fmt.Sprintf("health is %q, expected healthy", health.Status)
	}
}

// containerLastHealth is the last healthcheck's exit code and output.
func containerLastHealth(health *container.Health) string {
	if len(health.Log) == 0 || health.Log[len(health.Log)-1] == nil {
		return ""
	}
	last := health.Log[len(health.Log)-1]
	output := strings.Join(strings.Fields(last.Output), " ")
	if output == "" {
		output = "(no output)"
	}
	const limit = 300
	if len(output) > limit {
		output = output[:limit] + "…"
	}
	return fmt.Sprintf("; last check exited %d: %s", last.ExitCode, output)
}

func containerRestarts(count int) string {
	if count == 0 {
		return ""
	}
	return fmt.Sprintf(", restarted %d times", count)
}

// containerSorted orders containers by name, so messages are stable.
func containerSorted(items []container.Summary) []container.Summary {
	sorted := append([]container.Summary(nil), items...)
	sort.SliceStable(sorted, func(i, j int) bool { return containerSummaryName(sorted[i]) < containerSummaryName(sorted[j]) })
	return sorted
}

func containerName(inspected container.InspectResponse, summary container.Summary) string {
	if name := strings.TrimPrefix(inspected.Name, "/"); name != "" {
		return name
	}
	return containerSummaryName(summary)
}

func containerSummaryName(summary container.Summary) string {
	if len(summary.Names) > 0 {
		return strings.TrimPrefix(summary.Names[0], "/")
	}
	if len(summary.ID) > 12 {
		return summary.ID[:12]
	}
	return summary.ID
}
