package engine

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// WaitHealthy inspects the container every 200ms until it is running and
// healthy, or, without a healthcheck, has stayed running for a second. It
// fails at once, with a *ContainerError, when the container exits or
// restarts (with its last log lines) or turns unhealthy (with the last
// healthcheck's output), and when ctx ends.
func (e *Engine) WaitHealthy(ctx context.Context, containerID string) error {
	ticker := time.NewTicker(cmp.Or(e.pollInterval, defaultPoll))
	defer ticker.Stop()
	wait := healthWait{containerID: containerID, name: containerID, settle: cmp.Or(e.settleRunning, defaultSettle)}
	for {
		inspected, err := e.API.ContainerInspect(ctx, containerID, client.ContainerInspectOptions{})
		switch {
		case cerrdefs.IsNotFound(err):
			return &ContainerError{Container: wait.name, Reason: "is gone", State: wait.state, Health: wait.health, Err: err}
		case err != nil:
			wait.lastErr = err // the engine may be busy: retry until ctx ends
		default:
			healthy, failure := wait.decide(inspected.Container, time.Now())
			if healthy {
				return nil
			}
			if failure != nil {
				return e.withLogs(ctx, containerID, failure)
			}
		}
		select {
		case <-ctx.Done():
			return wait.timeout(ctx.Err())
		case <-ticker.C:
		}
	}
}

// healthWait is what WaitHealthy remembers between inspections.
type healthWait struct {
	containerID, name string
	settle            time.Duration
	runningSince      time.Time // when it was first seen running, by our clock
	state, health     string
	lastHealthOutput  string
	lastErr           error
}

// decide is WaitHealthy's three-way verdict on one inspection: healthy,
// failed, or neither (keep waiting).
func (w *healthWait) decide(inspected container.InspectResponse, now time.Time) (bool, *ContainerError) {
	if name := strings.TrimPrefix(inspected.Name, "/"); name != "" {
		w.name = name
	}
	state := inspected.State
	if state == nil {
		return false, nil
	}
	w.state, w.health = string(state.Status), ""
	if state.Health != nil {
		w.health = string(state.Health.Status)
		w.lastHealthOutput = lastHealthOutput(state.Health)
	}
	failed := func(reason, detail string) *ContainerError {
		return &ContainerError{Container: w.name, Reason: reason, State: w.state, Health: w.health, Detail: detail}
	}
	switch {
	case state.Status == container.StateExited || state.Status == container.StateDead:
		return false, failed(fmt.Sprintf("exited with code %d", state.ExitCode), "")
	case state.Restarting:
		return false, failed(fmt.Sprintf("is restarting after exiting with code %d", state.ExitCode), "")
	case inspected.RestartCount > 0:
		return false, failed(fmt.Sprintf("restarted %d time(s)", inspected.RestartCount), "")
	case !state.Running:
		return false, nil // created, not started yet
	case state.Health != nil && state.Health.Status == container.Unhealthy:
		return false, failed(fmt.Sprintf("is unhealthy after %d failed healthchecks", state.Health.FailingStreak), w.lastHealthOutput)
	case state.Health != nil:
		return state.Health.Status == container.Healthy, nil
	}
	if w.runningSince.IsZero() {
		w.runningSince = now
	}
	return now.Sub(w.runningSince) >= w.settle, nil
}

func lastHealthOutput(health *container.Health) string {
	if len(health.Log) == 0 || health.Log[len(health.Log)-1] == nil {
		return ""
	}
	last := health.Log[len(health.Log)-1]
	return fmt.Sprintf("last healthcheck exited %d: %s", last.ExitCode, strings.TrimSpace(last.Output))
}

func (w *healthWait) timeout(ctxErr error) *ContainerError {
	reason := "did not become healthy"
	switch {
	case w.state == "":
		reason += " (never inspected)"
	case w.health != "":
		reason += fmt.Sprintf(" (last state %s, health %s)", w.state, w.health)
	default:
		reason += fmt.Sprintf(" (last state %s)", w.state)
	}
	err := ctxErr
	if w.lastErr != nil {
		err = fmt.Errorf("%w; last inspect error: %v", ctxErr, w.lastErr)
	}
	return &ContainerError{Container: w.name, Reason: reason, State: w.state, Health: w.health, Detail: w.lastHealthOutput, Err: err}
}

// withLogs adds the container's last log lines to a failure that has no
// healthcheck output, even when ctx has just ended.
func (e *Engine) withLogs(ctx context.Context, containerID string, failure *ContainerError) *ContainerError {
	if failure.Detail != "" {
		return failure
	}
	logCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	logs, err := e.Logs(logCtx, containerID, failureLogLines)
	switch {
	case err != nil:
		failure.Detail = fmt.Sprintf("(logs unavailable: %v)", err)
	case strings.TrimSpace(logs) == "":
		failure.Detail = "(no log output)"
	default:
		failure.Detail = fmt.Sprintf("last %d log lines:\n%s", failureLogLines, logs)
	}
	return failure
}
