package orchestrator

// engine.go holds the Docker primitives the executor calls: observe a
// project, ensure its network and volumes, create, start, wait healthy,
// retire, run one-offs, and images. Each primitive is one plan step.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

const (
	// engineDefaultPoll is how often WaitHealthy inspects the container.
	engineDefaultPoll = 200 * time.Millisecond
	// engineDefaultSettle is how long a container without a healthcheck
	// must stay running to count as healthy.
	engineDefaultSettle = time.Second
	// engineMaxNameAttempts bounds the search for a free container name.
	engineMaxNameAttempts = 100
	// engineFailureLogLines is how many log lines a failed container's
	// error carries; engineOneOffLogLines is what RunOneOff returns.
	engineFailureLogLines = 20
	engineOneOffLogLines  = 50
	// engineCleanupTimeout bounds removals and log reads done after the
	// caller's context has ended.
	engineCleanupTimeout = 30 * time.Second
)

// Engine runs obcd's primitives against a Docker engine.
type Engine struct {
	API DockerAPI

	pollInterval  time.Duration // 0 = engineDefaultPoll; tests shorten it
	settleRunning time.Duration // 0 = engineDefaultSettle
}

// Container is one observed container of a project.
type Container struct {
	ID, Name, Service string
	Number            int
	Hash              string // LabelHash: the ServiceSpec.Hash it was created from
	Release           string // LabelRelease
	Image             string // the reference it was created with
	ImageID           string
	State             string // running, exited, created (or restarting, paused, dead)
	Health            string // healthy, unhealthy, starting, "" without a healthcheck
	OneOff            bool
	Created           time.Time
}

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

// ProjectNetworkName is the project's network, as compose names it.
func ProjectNetworkName(projectName string) string { return projectName + "_default" }

// ProjectVolumeName is the engine name of the project's volume key.
func ProjectVolumeName(projectName, volumeKey string) string { return projectName + "_" + volumeKey }

// ServiceContainerName is the compose name of a service's replica.
func ServiceContainerName(projectName, serviceName string, number int) string {
	return fmt.Sprintf("%s-%s-%d", projectName, serviceName, number)
}

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
		containers = append(containers, engineObserved(summary))
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

func engineObserved(summary container.Summary) Container {
	number, _ := strconv.Atoi(summary.Labels[LabelContainerNumber])
	observed := Container{
		ID: summary.ID, Name: engineSummaryName(summary.Names), Service: summary.Labels[LabelService], Number: number,
		Hash: summary.Labels[LabelHash], Release: summary.Labels[LabelRelease],
		Image: summary.Image, ImageID: summary.ImageID, State: string(summary.State),
		OneOff: summary.Labels[LabelOneOff] == "True", Created: time.Unix(summary.Created, 0),
	}
	if summary.State == container.StateRunning {
		observed.Health = engineSummaryHealth(summary)
	}
	return observed
}

// engineSummaryName is the container's own name: Names also holds legacy
// link aliases, which have a second slash.
func engineSummaryName(names []string) string {
	for _, name := range names {
		if trimmed := strings.TrimPrefix(name, "/"); !strings.Contains(trimmed, "/") {
			return trimmed
		}
	}
	return ""
}

// engineSummaryHealth reads health from the list: engines since API 1.52
// report it as a field; older ones (20.10 is 1.41) only in Status text,
// "Up 5 seconds (healthy)", which is as current as inspect's.
func engineSummaryHealth(summary container.Summary) string {
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

// EnsureNetwork returns the ID of the project's network, creating it with
// compose's labels when it does not exist.
func (e *Engine) EnsureNetwork(ctx context.Context, projectName string) (string, error) {
	name := ProjectNetworkName(projectName)
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
	name := ProjectVolumeName(projectName, volumeKey)
	created, err := e.API.VolumeCreate(ctx, client.VolumeCreateOptions{
		Name: name, Labels: map[string]string{LabelProject: projectName, LabelVolume: volumeKey},
	})
	if err != nil {
		return "", fmt.Errorf("create volume %s: %w", name, err)
	}
	return created.Volume.Name, nil
}

// Create creates (without starting) replica number of spec, named
// <project>-<service>-<number>, or the next free number when an old
// container holds that name, and delivers spec.Files into it.
func (e *Engine) Create(ctx context.Context, spec ServiceSpec, number int, release string) (Container, error) {
	number = max(number, 1)
	for range engineMaxNameAttempts {
		created, err := e.create(ctx, spec, ServiceContainerName(spec.Project, spec.Name, number), number, release)
		if !cerrdefs.IsConflict(err) {
			return created, err
		}
		number++
	}
	return Container{}, fmt.Errorf("create a container for service %s: no free name up to %s",
		spec.Name, ServiceContainerName(spec.Project, spec.Name, number-1))
}

// create is one ContainerCreate and, when the service has files, one
// CopyToContainer; a container whose files could not be delivered is
// removed. A name conflict is returned as the engine's error.
func (e *Engine) create(ctx context.Context, spec ServiceSpec, name string, number int, release string) (Container, error) {
	files, err := engineFilesTar(spec.Files, spec.User)
	if err != nil {
		return Container{}, fmt.Errorf("container %s: %w", name, err)
	}
	options, err := engineCreateOptions(spec, name, number, release)
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
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineCleanupTimeout)
	defer cancel()
	if _, err := e.API.ContainerRemove(cleanupCtx, containerID, client.ContainerRemoveOptions{Force: true}); err != nil {
		return fmt.Errorf("remove failed container %s: %w", name, err)
	}
	return nil
}

func engineLabels(spec ServiceSpec, number int, release string) map[string]string {
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

func engineCreateOptions(spec ServiceSpec, name string, number int, release string) (client.ContainerCreateOptions, error) {
	exposed, bindings, err := enginePorts(spec.Ports)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	restart, err := engineRestartPolicy(spec)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	networkName := ProjectNetworkName(spec.Project)
	endpoint := &network.EndpointSettings{}
	// A one-off must never answer for the service's name, and a
	// start-first replica only once it is healthy (see Publish).
	if !spec.OneOff && !spec.StartFirst {
		endpoint.Aliases = []string{spec.Name}
	}
	return client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image: spec.Image, Labels: engineLabels(spec, number, release), Env: engineEnv(spec.Env),
			Cmd: spec.Command, Entrypoint: spec.Entrypoint, User: spec.User, ExposedPorts: exposed,
			Healthcheck: engineHealthConfig(spec.Health), StopTimeout: engineStopTimeout(spec.StopGrace),
		},
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode(networkName), PortBindings: bindings, Mounts: engineMounts(spec),
			RestartPolicy: restart, Resources: container.Resources{Memory: spec.Memory, NanoCPUs: spec.NanoCPUs},
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{networkName: endpoint}},
	}, nil
}

func engineEnv(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for key, value := range env {
		list = append(list, key+"="+value)
	}
	sort.Strings(list)
	return list
}

func enginePorts(ports []PortSpec) (network.PortSet, network.PortMap, error) {
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

func engineMounts(spec ServiceSpec) []mount.Mount {
	var mounts []mount.Mount
	for _, m := range spec.Mounts {
		if m.Bind != "" {
			mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: m.Bind, Target: m.Target, ReadOnly: m.ReadOnly})
			continue
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeVolume, Source: ProjectVolumeName(spec.Project, m.Volume), Target: m.Target, ReadOnly: m.ReadOnly})
	}
	return mounts
}

// engineHealthConfig passes a compose test ("CMD", "CMD-SHELL", "NONE")
// as it is, and takes a bare argv as CMD.
func engineHealthConfig(health *HealthSpec) *container.HealthConfig {
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

func engineStopTimeout(grace time.Duration) *int {
	if grace <= 0 {
		return nil
	}
	seconds := int((grace + time.Second - 1) / time.Second)
	return &seconds
}

// engineRestartPolicy is unless-stopped by default and always "no" for a
// one-off, which must run once.
func engineRestartPolicy(spec ServiceSpec) (container.RestartPolicy, error) {
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

// engineFilesTar is a tar, to extract at /, holding the files with their
// modes and their parent directories (0755, root). Files belong to root,
// or to the container's user when it is numeric ("uid" or "uid:gid"), so
// that a 0600 secret stays readable by it. nil when there are no files.
func engineFilesTar(files []FileSpec, user string) (io.Reader, error) {
	if len(files) == 0 {
		return nil, nil
	}
	uid, gid := engineNumericUser(user)
	sorted := append([]FileSpec(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Target < sorted[j].Target })
	var buf bytes.Buffer
	archive := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	now := time.Now()
	for _, file := range sorted {
		if !path.IsAbs(file.Target) || path.Clean(file.Target) == "/" {
			return nil, fmt.Errorf("file target %q must be an absolute file path", file.Target)
		}
		name := strings.TrimPrefix(path.Clean(file.Target), "/")
		if err := engineTarDirs(archive, path.Dir(name), dirs, now); err != nil {
			return nil, err
		}
		mode := int64(file.Mode.Perm())
		if mode == 0 {
			mode = 0o644
		}
		header := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(file.Data)), Uid: uid, Gid: gid, ModTime: now}
		if err := archive.WriteHeader(header); err != nil {
			return nil, err
		}
		if _, err := archive.Write(file.Data); err != nil {
			return nil, err
		}
	}
	if err := archive.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// engineTarDirs writes dir and its parents, outermost first, once each.
func engineTarDirs(archive *tar.Writer, dir string, written map[string]bool, now time.Time) error {
	if dir == "." || dir == "/" || written[dir] {
		return nil
	}
	if err := engineTarDirs(archive, path.Dir(dir), written, now); err != nil {
		return err
	}
	written[dir] = true
	return archive.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: now})
}

func engineNumericUser(user string) (uid, gid int) {
	userPart, groupPart, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.Atoi(userPart)
	if err != nil || uid < 0 {
		return 0, 0
	}
	if !hasGroup {
		return uid, uid
	}
	if gid, err = strconv.Atoi(groupPart); err != nil || gid < 0 {
		return uid, 0
	}
	return uid, gid
}

// Start starts a created container.
func (e *Engine) Start(ctx context.Context, containerID string) error {
	if _, err := e.API.ContainerStart(ctx, containerID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", containerID, err)
	}
	return nil
}

// WaitHealthy inspects the container every 200ms until it is running and
// healthy, or, without a healthcheck, has stayed running for a second. It
// fails at once, with a *ContainerError, when the container exits or
// restarts (with its last log lines) or turns unhealthy (with the last
// healthcheck's output), and when ctx ends.
func (e *Engine) WaitHealthy(ctx context.Context, containerID string) error {
	ticker := time.NewTicker(engineOr(e.pollInterval, engineDefaultPoll))
	defer ticker.Stop()
	wait := engineHealthWait{containerID: containerID, name: containerID, settle: engineOr(e.settleRunning, engineDefaultSettle)}
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

func engineOr(value, fallback time.Duration) time.Duration {
	if value > 0 {
		return value
	}
	return fallback
}

// engineHealthWait is what WaitHealthy remembers between inspections.
type engineHealthWait struct {
	containerID, name string
	settle            time.Duration
	runningSince      time.Time // when it was first seen running, by our clock
	state, health     string
	lastHealthOutput  string
	lastErr           error
}

// decide is WaitHealthy's three-way verdict on one inspection: healthy,
// failed, or neither (keep waiting).
func (w *engineHealthWait) decide(inspected container.InspectResponse, now time.Time) (bool, *ContainerError) {
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
		w.lastHealthOutput = engineLastHealthOutput(state.Health)
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

func engineLastHealthOutput(health *container.Health) string {
	if len(health.Log) == 0 || health.Log[len(health.Log)-1] == nil {
		return ""
	}
	last := health.Log[len(health.Log)-1]
	return fmt.Sprintf("last healthcheck exited %d: %s", last.ExitCode, strings.TrimSpace(last.Output))
}

func (w *engineHealthWait) timeout(ctxErr error) *ContainerError {
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
	logCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineCleanupTimeout)
	defer cancel()
	logs, err := e.Logs(logCtx, containerID, engineFailureLogLines)
	switch {
	case err != nil:
		failure.Detail = fmt.Sprintf("(logs unavailable: %v)", err)
	case strings.TrimSpace(logs) == "":
		failure.Detail = "(no log output)"
	default:
		failure.Detail = fmt.Sprintf("last %d log lines:\n%s", engineFailureLogLines, logs)
	}
	return failure
}

// Publish puts a healthy start-first replica into the rotation: it
// rejoins the project network with the service's alias, so DNS starts
// returning it only now. (Docker cannot add an alias to a live endpoint.)
func (e *Engine) Publish(ctx context.Context, containerID string, spec ServiceSpec) error {
	networkName := ProjectNetworkName(spec.Project)
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
	name := engineOrString(strings.TrimPrefix(inspected.Container.Name, "/"), containerID)
	if _, err := e.API.ContainerStop(ctx, containerID, client.ContainerStopOptions{}); err != nil {
		return fmt.Errorf("stop container %s: %w", name, err)
	}
	if _, err := e.API.ContainerRemove(ctx, containerID, client.ContainerRemoveOptions{}); err != nil {
		return fmt.Errorf("remove container %s: %w", name, err)
	}
	return nil
}

func engineOrString(value, fallback string) string {
	if value != "" {
		return value
	}
	return fallback
}

var engineNameUnsafe = regexp.MustCompile(`[^a-z0-9_.-]+`)

// engineShortRelease is a release ID fit for a container name.
func engineShortRelease(release string) string {
	short := engineNameUnsafe.ReplaceAllString(strings.ToLower(release), "")
	if len(short) > 16 {
		short = short[:16]
	}
	if short == "" {
		short = "norelease"
	}
	return short
}

// RunOneOff runs spec once to completion (a migration): it creates the
// container <project>-<service>-run-<release> (oneoff True, never
// restarted), starts it, waits for it to exit, and returns its exit code
// and last 50 log lines, then removes it. A non-zero exit is not an
// error: the caller decides. When ctx ends first, the container is left
// running (a migration is not killed half-way) and the error names it.
func (e *Engine) RunOneOff(ctx context.Context, spec ServiceSpec, release string) (int, string, error) {
	spec.OneOff = true
	oneOff, err := e.createOneOff(ctx, spec, release)
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
	exitCode, err := engineAwaitExit(wait, oneOff.Name)
	if err != nil {
		return -1, "", err
	}
	logs, logErr := e.Logs(ctx, oneOff.ID, engineOneOffLogLines)
	if _, err := e.API.ContainerRemove(ctx, oneOff.ID, client.ContainerRemoveOptions{}); err != nil {
		return exitCode, logs, errors.Join(logErr, fmt.Errorf("remove one-off container %s: %w", oneOff.Name, err))
	}
	return exitCode, logs, logErr
}

// createOneOff names the one-off after the release, with a suffix when an
// earlier run of the same release is still there.
func (e *Engine) createOneOff(ctx context.Context, spec ServiceSpec, release string) (Container, error) {
	base := fmt.Sprintf("%s-%s-run-%s", spec.Project, spec.Name, engineShortRelease(release))
	name := base
	for attempt := 2; attempt <= engineMaxNameAttempts; attempt++ {
		created, err := e.create(ctx, spec, name, 1, release)
		if !cerrdefs.IsConflict(err) {
			return created, err
		}
		name = fmt.Sprintf("%s-%d", base, attempt)
	}
	return Container{}, fmt.Errorf("create one-off container %s: no free name", base)
}

func engineAwaitExit(wait client.ContainerWaitResult, name string) (int, error) {
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

// ImagePresent says whether the engine has the image, and its ID.
func (e *Engine) ImagePresent(ctx context.Context, ref string) (string, bool, error) {
	inspected, err := e.API.ImageInspect(ctx, ref)
	switch {
	case cerrdefs.IsNotFound(err):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return inspected.ID, true, nil
}

// TagImage gives the image src the reference dst.
func (e *Engine) TagImage(ctx context.Context, src, dst string) error {
	if _, err := e.API.ImageTag(ctx, client.ImageTagOptions{Source: src, Target: dst}); err != nil {
		return fmt.Errorf("tag image %s as %s: %w", src, dst, err)
	}
	return nil
}

// BuildImage builds a tar build context with the classic builder and tags
// the result. The build's own error, with the output before it, is the
// error.
func (e *Engine) BuildImage(ctx context.Context, contextTar io.Reader, tag string, buildArgs map[string]*string) error {
	built, err := e.API.ImageBuild(ctx, contextTar, client.ImageBuildOptions{
		Tags: []string{tag}, BuildArgs: buildArgs, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	defer built.Body.Close()
	if err := engineReadBuildOutput(built.Body); err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	return nil
}

// engineBuildOutputLines is how much of the build's output an error keeps.
const engineBuildOutputLines = 20

// engineReadBuildOutput reads the builder's JSON message stream to its end
// and returns the error message in it, with the output lines before it.
func engineReadBuildOutput(body io.Reader) error {
	decoder := json.NewDecoder(body)
	var output []string
	for {
		var message struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := decoder.Decode(&message); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the build output: %w", err)
		}
		if line := strings.TrimRight(message.Stream, "\n"); line != "" {
			output = append(output, strings.Split(line, "\n")...)
			output = output[max(0, len(output)-engineBuildOutputLines):]
		}
		errorMessage := message.Error
		if message.ErrorDetail != nil && message.ErrorDetail.Message != "" {
			errorMessage = message.ErrorDetail.Message
		}
		if errorMessage != "" {
			if len(output) == 0 {
				return errors.New(errorMessage)
			}
			return fmt.Errorf("%s\n  %s", errorMessage, strings.Join(output, "\n  "))
		}
	}
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
	networkName := ProjectNetworkName(projectName)
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
