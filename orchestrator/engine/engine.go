package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

const (
	// defaultPoll is how often WaitHealthy inspects the container.
	defaultPoll = 200 * time.Millisecond
	// defaultSettle is how long a container without a healthcheck
	// must stay running to count as healthy.
	defaultSettle = time.Second
	// failureLogLines is how many log lines a failed container's
	// error carries; oneOffLogLines is what RunOneOff returns.
	failureLogLines = 20
	oneOffLogLines  = 50
	// cleanupTimeout bounds removals and log reads done after the
	// caller's context has ended.
	cleanupTimeout = 30 * time.Second
)

// Engine runs obcd's primitives against a Docker engine.
type Engine struct {
	API DockerAPI

	pollInterval  time.Duration // 0 = defaultPoll; tests shorten it
	settleRunning time.Duration // 0 = defaultSettle
}

// Container is one observed container of a project.
type Container struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Service string    `json:"service"`
	Number  int       `json:"number"`
	Hash    string    `json:"hash"`    // LabelHash: the ServiceSpec.Hash it was created from
	Release string    `json:"release"` // LabelRelease
	Image   string    `json:"image"`   // the reference it was created with
	ImageID string    `json:"image_id"`
	State   string    `json:"state"`            // running, exited, created (or restarting, paused, dead)
	Health  string    `json:"health,omitempty"` // healthy, unhealthy, starting, "" without a healthcheck
	OneOff  bool      `json:"one_off,omitempty"`
	Created time.Time `json:"created"`
	// Files are the digests (FileDigest) of the files the container takes
	// in place (FileSpec.Reload), by path, as read from the container;
	// nil when they were not read.
	Files map[string]string `json:"files,omitempty"`
}

// ErrNameTaken says a container could not be created under the name the
// plan chose, because a container of that name exists.
var ErrNameTaken = errors.New("container name is taken")

// ContainerError says a container failed: it exited or restarted, turned
// unhealthy, or did not become healthy in time. Detail holds its last log
// lines or its last healthcheck output.
type ContainerError struct {
	Container string // the container's name, else its ID
	Reason    string // "exited with code 1", "is unhealthy", ...
	State     string
	Health    string
	Detail    string
	Err       error // the context's error when it timed out
}

func (e *ContainerError) Error() string {
	msg := fmt.Sprintf("container %s %s", e.Container, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if detail := strings.TrimRight(e.Detail, "\n"); detail != "" {
		msg += "\n  " + strings.ReplaceAll(detail, "\n", "\n  ")
	}
	return msg
}

func (e *ContainerError) Unwrap() error { return e.Err }

// Observe lists the project's containers, one-offs and stopped ones
// included, sorted by service then number, with one ContainerList call.
func (e *Engine) Observe(ctx context.Context, projectName string) ([]Container, error) {
	listed, err := e.API.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", LabelProject+"="+projectName),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers of project %s: %w", projectName, err)
	}
	containers := make([]Container, 0, len(listed.Items))
	for _, summary := range listed.Items {
		containers = append(containers, observed(summary))
	}
	sort.Slice(containers, func(i, j int) bool {
		a, b := containers[i], containers[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Number != b.Number {
			return a.Number < b.Number
		}
		return a.Name < b.Name
	})
	return containers, nil
}

func observed(summary container.Summary) Container {
	number, _ := strconv.Atoi(summary.Labels[LabelContainerNumber])
	observed := Container{
		ID: summary.ID, Name: summaryName(summary.Names), Service: summary.Labels[LabelService], Number: number,
		Hash: summary.Labels[LabelHash], Release: summary.Labels[LabelRelease],
		Image: summary.Image, ImageID: summary.ImageID, State: string(summary.State),
		OneOff: summary.Labels[LabelOneOff] == "True", Created: time.Unix(summary.Created, 0),
	}
	if summary.State == container.StateRunning {
		observed.Health = summaryHealth(summary)
	}
	return observed
}

// summaryName is the container's own name: Names also holds legacy
// link aliases, which have a second slash.
func summaryName(names []string) string {
	for _, name := range names {
		if trimmed := strings.TrimPrefix(name, "/"); !strings.Contains(trimmed, "/") {
			return trimmed
		}
	}
	return ""
}

// summaryHealth reads health from the list: engines since API 1.52
// report it as a field; older ones (20.10 is 1.41) only in Status text,
// "Up 5 seconds (healthy)", which is as current as inspect's.
func summaryHealth(summary container.Summary) string {
	if summary.Health != nil {
		if summary.Health.Status == container.NoHealthcheck {
			return ""
		}
		return string(summary.Health.Status)
	}
	switch {
	case strings.Contains(summary.Status, "(healthy)"):
		return string(container.Healthy)
	case strings.Contains(summary.Status, "(unhealthy)"):
		return string(container.Unhealthy)
	case strings.Contains(summary.Status, "(health: starting)"):
		return string(container.Starting)
	}
	return ""
}

// Inspect returns one container as Observe lists it, by ID.
func (e *Engine) Inspect(ctx context.Context, containerID string) (Container, error) {
	inspected, err := e.API.ContainerInspect(ctx, containerID, client.ContainerInspectOptions{})
	if err != nil {
		return Container{}, fmt.Errorf("inspect container %s: %w", containerID, err)
	}
	c := inspected.Container
	var labels map[string]string
	observed := Container{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/"), ImageID: c.Image}
	if c.Config != nil {
		labels, observed.Image = c.Config.Labels, c.Config.Image
	}
	observed.Service, observed.Hash, observed.Release = labels[LabelService], labels[LabelHash], labels[LabelRelease]
	observed.Number, _ = strconv.Atoi(labels[LabelContainerNumber])
	observed.OneOff = labels[LabelOneOff] == "True"
	observed.Created, _ = time.Parse(time.RFC3339Nano, c.Created)
	if c.State != nil {
		observed.State = string(c.State.Status)
		if c.State.Health != nil && c.State.Running {
			observed.Health = string(c.State.Health.Status)
		}
	}
	return observed, nil
}
