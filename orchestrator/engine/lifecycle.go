package engine

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Start starts a created container.
func (e *Engine) Start(ctx context.Context, containerID string) error {
	if _, err := e.API.ContainerStart(ctx, containerID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", containerID, err)
	}
	return nil
}

// Publish puts a healthy start-first replica into the rotation: it
// rejoins the project network with the service's alias, so DNS starts
// returning it only now. (Docker cannot add an alias to a live endpoint.)
func (e *Engine) Publish(ctx context.Context, containerID string, spec ServiceSpec) error {
	networkName := NetworkName(spec.Project)
	if _, err := e.API.NetworkDisconnect(ctx, networkName, client.NetworkDisconnectOptions{Container: containerID}); err != nil {
		return fmt.Errorf("publish container %s: disconnect: %w", containerID, err)
	}
	_, err := e.API.NetworkConnect(ctx, networkName, client.NetworkConnectOptions{
		Container: containerID, EndpointConfig: &network.EndpointSettings{Aliases: []string{spec.Name}},
	})
	if err != nil {
		return fmt.Errorf("publish container %s: connect with alias %s: %w", containerID, spec.Name, err)
	}
	return nil
}

// Retire takes a container out of service: it stops it within its stop
// timeout while it is still on its network, then removes it. Volumes are
// never removed. A container that is already gone is retired.
//
// It is not disconnected first: that would cut the connections of requests
// in flight, which then never answer. Stopped in place, a server such as
// gunicorn closes its listener at once and finishes what it is serving; a
// proxy that still knows its address is refused at once and tries the next
// replica, and Docker's DNS stops returning it when it has stopped.
func (e *Engine) Retire(ctx context.Context, containerID string) error {
	inspected, err := e.API.ContainerInspect(ctx, containerID, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("retire container %s: %w", containerID, err)
	}
	name := cmp.Or(strings.TrimPrefix(inspected.Container.Name, "/"), containerID)
	if _, err := e.API.ContainerStop(ctx, containerID, client.ContainerStopOptions{}); err != nil {
		return fmt.Errorf("stop container %s: %w", name, err)
	}
	if _, err := e.API.ContainerRemove(ctx, containerID, client.ContainerRemoveOptions{}); err != nil {
		return fmt.Errorf("remove container %s: %w", name, err)
	}
	return nil
}
