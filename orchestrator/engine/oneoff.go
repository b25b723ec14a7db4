package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// RunOneOff runs spec once to completion (a migration): it creates the
// container name (OneOffName: oneoff True, never restarted), starts it,
// waits for it to exit, and returns its exit code and last 50 log lines,
// then removes it. A non-zero exit is not an
// error: the caller decides. When ctx ends first, the container is left
// running (a migration is not killed half-way) and the error names it.
func (e *Engine) RunOneOff(ctx context.Context, spec ServiceSpec, name, release string) (int, string, error) {
	spec.OneOff = true
	oneOff, err := e.Create(ctx, spec, name, 1, release)
	if err != nil {
		return -1, "", err
	}
	// Waiting for the next exit is registered before the start, so a fast
	// exit is not missed.
	waitCtx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	wait := e.API.ContainerWait(waitCtx, oneOff.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if err := e.Start(ctx, oneOff.ID); err != nil {
		return -1, "", errors.Join(fmt.Errorf("one-off %s: %w", oneOff.Name, err), e.removeAfterFailure(ctx, oneOff.ID, oneOff.Name))
	}
	exitCode, err := awaitExit(wait, oneOff.Name)
	if err != nil {
		return -1, "", err
	}
	logs, logErr := e.Logs(ctx, oneOff.ID, oneOffLogLines)
	if _, err := e.API.ContainerRemove(ctx, oneOff.ID, client.ContainerRemoveOptions{}); err != nil {
		return exitCode, logs, errors.Join(logErr, fmt.Errorf("remove one-off container %s: %w", oneOff.Name, err))
	}
	return exitCode, logs, logErr
}

func awaitExit(wait client.ContainerWaitResult, name string) (int, error) {
	select {
	case result := <-wait.Result:
		if result.Error != nil && result.Error.Message != "" {
			return -1, fmt.Errorf("one-off container %s: %s", name, result.Error.Message)
		}
		return int(result.StatusCode), nil
	case err := <-wait.Error:
		return -1, fmt.Errorf("one-off container %s did not finish (left in place): %w", name, err)
	}
}
