package engine

import (
	"context"
	"errors"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/moby/moby/client"
)

// EnsureNetwork returns the ID of the project's network, creating it with
// compose's labels when it does not exist.
func (e *Engine) EnsureNetwork(ctx context.Context, projectName string) (string, error) {
	name := NetworkName(projectName)
	existing, err := e.API.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err == nil {
		if owner := existing.Network.Labels[LabelProject]; owner != projectName {
			return "", fmt.Errorf("network %s exists but belongs to project %q, not %s (label %s); remove it or rename the project",
				name, owner, projectName, LabelProject)
		}
		return existing.Network.ID, nil
	}
	if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("inspect network %s: %w", name, err)
	}
	created, err := e.API.NetworkCreate(ctx, name, client.NetworkCreateOptions{
		Driver: "bridge", Labels: map[string]string{LabelProject: projectName, LabelNetwork: "default"},
	})
	if err != nil {
		return "", fmt.Errorf("create network %s: %w", name, err)
	}
	return created.ID, nil
}

// EnsureVolume returns the name of the project's volume, creating it with
// compose's labels; the engine returns an existing volume as it is. It
// never removes or recreates one.
func (e *Engine) EnsureVolume(ctx context.Context, projectName, volumeKey string) (string, error) {
	name := VolumeName(projectName, volumeKey)
	created, err := e.API.VolumeCreate(ctx, client.VolumeCreateOptions{
		Name: name, Labels: map[string]string{LabelProject: projectName, LabelVolume: volumeKey},
	})
	if err != nil {
		return "", fmt.Errorf("create volume %s: %w", name, err)
	}
	return created.Volume.Name, nil
}

// RemoveProject removes the project's containers (forcibly, one-offs
// included) and its network, and its labelled volumes only when volumes
// is set (obcd down --volumes). It goes on past failures and returns
// them all.
func (e *Engine) RemoveProject(ctx context.Context, projectName string, volumes bool) error {
	containers, err := e.Observe(ctx, projectName)
	if err != nil {
		return err
	}
	var errs []error
	for _, observed := range containers {
		if _, err := e.API.ContainerRemove(ctx, observed.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: volumes}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", observed.Name, err))
		}
	}
	networkName := NetworkName(projectName)
	if _, err := e.API.NetworkRemove(ctx, networkName, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("remove network %s: %w", networkName, err))
	}
	if volumes {
		errs = append(errs, e.removeVolumes(ctx, projectName))
	}
	return errors.Join(errs...)
}

func (e *Engine) removeVolumes(ctx context.Context, projectName string) error {
	listed, err := e.API.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", LabelProject+"="+projectName)})
	if err != nil {
		return fmt.Errorf("list volumes of project %s: %w", projectName, err)
	}
	var errs []error
	for _, vol := range listed.Items {
		if _, err := e.API.VolumeRemove(ctx, vol.Name, client.VolumeRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", vol.Name, err))
		}
	}
	return errors.Join(errs...)
}
