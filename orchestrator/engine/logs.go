package engine

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// Logs returns the container's last tail lines (all when tail <= 0) of
// stdout and stderr, interleaved as written.
func (e *Engine) Logs(ctx context.Context, containerID string, tail int) (string, error) {
	options := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "all"}
	if tail > 0 {
		options.Tail = strconv.Itoa(tail)
	}
	stream, err := e.API.ContainerLogs(ctx, containerID, options)
	if err != nil {
		return "", fmt.Errorf("logs of container %s: %w", containerID, err)
	}
	defer stream.Close()
	var logs bytes.Buffer
	if _, err := stdcopy.StdCopy(&logs, &logs, stream); err != nil {
		return logs.String(), fmt.Errorf("logs of container %s: %w", containerID, err)
	}
	return logs.String(), nil
}
