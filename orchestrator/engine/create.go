package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Create creates (without starting) replica number of spec under the
// name the plan chose (ContainerName, or OneOffName for a one-off), and
// delivers spec.Files into it. It never picks another name: a name that
// is taken is ErrNameTaken, since the engine then changed after planning.
func (e *Engine) Create(ctx context.Context, spec ServiceSpec, name string, number int, release string) (Container, error) {
	created, err := e.create(ctx, spec, name, number, release)
	if cerrdefs.IsConflict(err) {
		return Container{}, fmt.Errorf("%w: %s already exists, though the plan found no such container; make a new plan", ErrNameTaken, name)
	}
	return created, err
}

// create is one ContainerCreate and, when the service has files, one
// CopyToContainer; a container whose files could not be delivered is
// removed.
func (e *Engine) create(ctx context.Context, spec ServiceSpec, name string, number int, release string) (Container, error) {
	files, err := TarFiles(spec.Files, spec.User)
	if err != nil {
		return Container{}, fmt.Errorf("container %s: %w", name, err)
	}
	options, err := createOptions(spec, name, number, release)
	if err != nil {
		return Container{}, fmt.Errorf("container %s: %w", name, err)
	}
	created, err := e.API.ContainerCreate(ctx, options)
	if err != nil {
		return Container{}, fmt.Errorf("create container %s: %w", name, err)
	}
	if files != nil {
		_, err := e.API.CopyToContainer(ctx, created.ID, client.CopyToContainerOptions{DestinationPath: "/", Content: files})
		if err != nil {
			return Container{}, errors.Join(fmt.Errorf("deliver files into container %s: %w", name, err), e.removeAfterFailure(ctx, created.ID, name))
		}
	}
	return Container{
		ID: created.ID, Name: name, Service: spec.Name, Number: number, Hash: spec.Hash(), Release: release,
		Image: spec.Image, State: string(container.StateCreated), OneOff: spec.OneOff, Created: time.Now(),
	}, nil
}

// removeAfterFailure force-removes a container that must not stay, even
// when ctx has ended.
func (e *Engine) removeAfterFailure(ctx context.Context, containerID, name string) error {
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if _, err := e.API.ContainerRemove(cleanupCtx, containerID, client.ContainerRemoveOptions{Force: true}); err != nil {
		return fmt.Errorf("remove failed container %s: %w", name, err)
	}
	return nil
}

func containerLabels(spec ServiceSpec, number int, release string) map[string]string {
	oneOff := "False"
	if spec.OneOff {
		oneOff = "True"
	}
	hash := spec.Hash()
	return map[string]string{
		LabelProject: spec.Project, LabelService: spec.Name, LabelContainerNumber: strconv.Itoa(number),
		LabelOneOff: oneOff, LabelComposeConfigHash: hash, LabelRelease: release, LabelHash: hash,
	}
}

func createOptions(spec ServiceSpec, name string, number int, release string) (client.ContainerCreateOptions, error) {
	exposed, bindings, err := portBindings(spec.Ports)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	restart, err := restartPolicy(spec)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	networkName := NetworkName(spec.Project)
	endpoint := &network.EndpointSettings{}
	// A one-off must never answer for the service's name, and a
	// start-first replica only once it is healthy (see Publish).
	if !spec.OneOff && !spec.StartFirst {
		endpoint.Aliases = []string{spec.Name}
	}
	return client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image: cmp.Or(spec.RunImage, spec.Image), Labels: containerLabels(spec, number, release), Env: envList(spec.Env),
			Cmd: spec.Command, Entrypoint: spec.Entrypoint, User: spec.User, ExposedPorts: exposed,
			Healthcheck: healthConfig(spec.Health), StopTimeout: stopTimeout(spec.StopGrace),
		},
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode(networkName), PortBindings: bindings, Mounts: mountsOf(spec),
			RestartPolicy: restart, Resources: container.Resources{Memory: spec.Memory, NanoCPUs: spec.NanoCPUs},
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{networkName: endpoint}},
	}, nil
}

func envList(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for key, value := range env {
		list = append(list, key+"="+value)
	}
	sort.Strings(list)
	return list
}

func portBindings(ports []PortSpec) (network.PortSet, network.PortMap, error) {
	if len(ports) == 0 {
		return nil, nil, nil
	}
	exposed, bindings := network.PortSet{}, network.PortMap{}
	for _, spec := range ports {
		protocol := spec.Protocol
		if protocol == "" {
			protocol = "tcp"
		}
		port, err := network.ParsePort(spec.ContainerPort + "/" + protocol)
		if err != nil {
			return nil, nil, fmt.Errorf("port %s: %w", spec.ContainerPort, err)
		}
		binding := network.PortBinding{HostPort: spec.HostPort}
		if spec.HostIP != "" {
			if binding.HostIP, err = netip.ParseAddr(spec.HostIP); err != nil {
				return nil, nil, fmt.Errorf("port %s: host IP: %w", spec.ContainerPort, err)
			}
		}
		exposed[port] = struct{}{}
		bindings[port] = append(bindings[port], binding)
	}
	return exposed, bindings, nil
}

func mountsOf(spec ServiceSpec) []mount.Mount {
	var mounts []mount.Mount
	for _, m := range spec.Mounts {
		if m.Bind != "" {
			mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: m.Bind, Target: m.Target, ReadOnly: m.ReadOnly})
			continue
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeVolume, Source: VolumeName(spec.Project, m.Volume), Target: m.Target, ReadOnly: m.ReadOnly})
	}
	return mounts
}

// healthConfig passes a compose test ("CMD", "CMD-SHELL", "NONE")
// as it is, and takes a bare argv as CMD.
func healthConfig(health *HealthSpec) *container.HealthConfig {
	if health == nil {
		return nil
	}
	test := health.Test
	if len(test) > 0 && test[0] != "CMD" && test[0] != "CMD-SHELL" && test[0] != "NONE" {
		test = append([]string{"CMD"}, test...)
	}
	return &container.HealthConfig{Test: test, Interval: health.Interval, Timeout: health.Timeout,
		StartPeriod: health.StartPeriod, Retries: health.Retries}
}

func stopTimeout(grace time.Duration) *int {
	if grace <= 0 {
		return nil
	}
	seconds := int((grace + time.Second - 1) / time.Second)
	return &seconds
}

// restartPolicy is unless-stopped by default and always "no" for a
// one-off, which must run once.
func restartPolicy(spec ServiceSpec) (container.RestartPolicy, error) {
	if spec.OneOff {
		return container.RestartPolicy{Name: container.RestartPolicyDisabled}, nil
	}
	mode, retries, hasRetries := strings.Cut(spec.Restart, ":")
	switch container.RestartPolicyMode(mode) {
	case "":
		return container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}, nil
	case container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		if !hasRetries {
			return container.RestartPolicy{Name: container.RestartPolicyMode(mode)}, nil
		}
	case container.RestartPolicyOnFailure:
		count, err := strconv.Atoi(retries)
		if !hasRetries || err == nil && count >= 0 {
			return container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: count}, nil
		}
	}
	return container.RestartPolicy{}, fmt.Errorf("restart %q is not no, always, unless-stopped or on-failure[:N]", spec.Restart)
}
