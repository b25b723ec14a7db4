package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/probe"
)

// API is the narrow Docker interface the agent uses; *client.Client
// satisfies it, locally, over TLS and over ssh:// alike.
type API interface {
	ServerVersion(ctx context.Context, options client.ServerVersionOptions) (client.ServerVersionResult, error)
	NetworkInspect(ctx context.Context, networkID string, options client.NetworkInspectOptions) (client.NetworkInspectResult, error)
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImageBuild(ctx context.Context, buildContext io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error)
	ImageList(ctx context.Context, options client.ImageListOptions) (client.ImageListResult, error)
	ImageRemove(ctx context.Context, imageID string, options client.ImageRemoveOptions) (client.ImageRemoveResult, error)
	ContainerCreate(ctx context.Context, options client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerAttach(ctx context.Context, containerID string, options client.ContainerAttachOptions) (client.ContainerAttachResult, error)
	ContainerStart(ctx context.Context, containerID string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerRemove(ctx context.Context, containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
}

var _ API = (*client.Client)(nil)

// LabelAgent marks an agent container with its project: obcd down finds
// it by that, and the project's own listings (which go by the compose
// project label) never see it.
const LabelAgent = "dev.obcd.agent"

// Defaults of an Agent.
const (
	// DefaultLifetime bounds a round of probes with no deadline of its own.
	DefaultLifetime = 10 * time.Minute
	// lifetimeGrace is how long the container outlives the round it was
	// started for: its own deadline is the round's plus this.
	lifetimeGrace = 20 * time.Second
	// DefaultMemory is its memory limit.
	DefaultMemory = 128 << 20
)

// Agent runs probes from inside one environment's network. It starts its
// container on the first Run and keeps it for the rounds after (a
// deploy's verification, its watch window, serve); Close removes it.
// One Run at a time.
type Agent struct {
	API     API
	Project string // the compose project: its network is <project>_default
	// Binary is obcd's own static executable; "" means os.Executable().
	Binary  string
	Version string // obcd's version, for the image tag
	// Lifetime is the container's own deadline, at which it exits whatever
	// happens to obcd: at least the first round's deadline plus a grace.
	// A long command (serve) sets it to keep one container for many
	// rounds; a round past it starts a new one.
	Lifetime time.Duration
	Memory   int64 // bytes; 0: DefaultMemory
	// Notes, when set, hears what the agent does (an image build) and
	// what it could not clean up.
	Notes func(string)

	mu      sync.Mutex
	checked bool
	bin     binary
	unavail error
	session *session
	nextID  int
}

// Available says whether the agent can run on this engine: a Linux
// engine of the binary's architecture, and a static binary. The error,
// wrapping ErrUnavailable, says why not; it is checked once.
func (a *Agent) Available(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.available(ctx)
}

func (a *Agent) available(ctx context.Context) error {
	if a.checked {
		return a.unavail
	}
	path := a.Binary
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("%w: cannot find obcd's own binary: %v", ErrUnavailable, err)
		}
		path = exe
	}
	bin, err := readBinary(path)
	if err == nil {
		var v client.ServerVersionResult
		if v, err = a.API.ServerVersion(ctx, client.ServerVersionOptions{}); err != nil {
			return fmt.Errorf("the Docker engine's version: %w", err) // not cached: the engine may answer later
		}
		if v.Os != "linux" || v.Arch != bin.arch {
			err = fmt.Errorf("%w: the Docker engine runs %s/%s and this obcd is built for linux/%s; run an obcd built for %s/%s, or declare address on each service to probe it from outside",
				ErrUnavailable, v.Os, v.Arch, bin.arch, v.Os, v.Arch)
		}
	}
	a.checked, a.bin, a.unavail = true, bin, err
	return err
}

// Run implements probe.Vantage: it sends specs to the agent and returns
// its verdicts. When the agent cannot start, or ends before a verdict,
// the probes left fail with why.
func (a *Agent) Run(ctx context.Context, specs []probe.Spec, onDemand bool, notify func(probe.Result)) []probe.Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	results := make([]probe.Result, len(specs))
	have := make([]bool, len(specs))
	failRest := func(format string, args ...any) []probe.Result {
		for i, s := range specs {
			if !have[i] {
				results[i] = probe.Unrun(s, format, args...)
				if notify != nil {
					notify(results[i])
				}
			}
		}
		return results
	}
	// The agent's round ends a little before ctx, so that its last
	// verdicts arrive in time.
	timeout := a.lifetime()
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		timeout = left - min(time.Second, left/10)
	}
	s, err := a.ensureSession(ctx, timeout)
	if err != nil {
		return failRest("the in-network agent did not start: %v", err)
	}
	a.nextID++
	id := a.nextID
	if err := s.send(request{ID: id, OnDemand: onDemand, Timeout: timeout, Specs: specs}); err != nil {
		a.endSession()
		return failRest("the in-network agent did not take the probes: %v", err)
	}
	for {
		select {
		case <-ctx.Done():
			// The agent ends the round itself at the same deadline; its
			// late replies carry this round's id and are skipped.
			return failRest("no result before the deadline")
		case r, ok := <-s.replies:
			switch {
			case !ok:
				why := s.stderr.String()
				a.endSession()
				if why != "" {
					return failRest("the in-network agent ended before its verdict: %s", why)
				}
				return failRest("the in-network agent ended before its verdict")
			case r.ID != id:
			case r.Error != "":
				return failRest("the in-network agent refused the probes: %s", r.Error)
			case r.Done:
				return failRest("the in-network agent gave no verdict")
			case r.Result != nil && r.Index >= 0 && r.Index < len(specs) && !have[r.Index]:
				results[r.Index], have[r.Index] = *r.Result, true
				if notify != nil {
					notify(*r.Result)
				}
			}
		}
	}
}

// Close ends the agent: its standard input closes, so it exits, and its
// container is removed.
func (a *Agent) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.endSession()
}

func (a *Agent) lifetime() time.Duration {
	if a.Lifetime > 0 {
		return a.Lifetime
	}
	return DefaultLifetime
}

func (a *Agent) note(format string, args ...any) {
	if a.Notes != nil {
		a.Notes(fmt.Sprintf(format, args...))
	}
}

// session is one running agent container, attached.
type session struct {
	id, name string
	conn     client.HijackedResponse
	replies  chan reply
	done     chan struct{} // closed when the session ends
	stderr   *tail
	expires  time.Time
}

func (s *session) send(req request) error {
	line, err := json.Marshal(req)
	if err != nil {
		return err
	}
	_, err = s.conn.Conn.Write(append(line, '\n'))
	return err
}

// ensureSession returns the running agent, or starts one that lives at
// least need longer.
func (a *Agent) ensureSession(ctx context.Context, need time.Duration) (*session, error) {
	if a.session != nil && time.Now().Add(need).Before(a.session.expires) {
		return a.session, nil
	}
	a.endSession()
	if err := a.available(ctx); err != nil {
		return nil, err
	}
	network := engine.NetworkName(a.Project)
	if _, err := a.API.NetworkInspect(ctx, network, client.NetworkInspectOptions{}); cerrdefs.IsNotFound(err) {
		return nil, fmt.Errorf("the environment's network %s does not exist: is the environment deployed?", network)
	} else if err != nil {
		return nil, fmt.Errorf("inspect network %s: %w", network, err)
	}
	tag, err := a.ensureImage(ctx, a.bin)
	if err != nil {
		return nil, err
	}
	lifetime := max(a.Lifetime, need+lifetimeGrace)
	s, err := a.start(ctx, tag, network, lifetime)
	if err != nil {
		return nil, err
	}
	a.session = s
	return s, nil
}

// start creates, attaches and starts an agent container.
func (a *Agent) start(ctx context.Context, tag, network string, lifetime time.Duration) (*session, error) {
	memory := a.Memory
	if memory <= 0 {
		memory = DefaultMemory
	}
	pids := int64(256)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := a.Project + "-obcd-agent-" + hex.EncodeToString(suffix)
	created, err := a.API.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image: tag, Cmd: []string{"--deadline", lifetime.String()},
			OpenStdin: true, StdinOnce: true, AttachStdin: true, AttachStdout: true, AttachStderr: true,
			Labels: map[string]string{LabelAgent: a.Project, LabelAgent + ".version": a.Version},
		},
		HostConfig: &container.HostConfig{
			AutoRemove: true, NetworkMode: container.NetworkMode(network),
			ReadonlyRootfs: true, CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"},
			Resources: container.Resources{Memory: memory, MemorySwap: memory, PidsLimit: &pids},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create the agent container: %w", err)
	}
	s := &session{id: created.ID, name: name, replies: make(chan reply, 64), done: make(chan struct{}), stderr: &tail{max: 2048},
		expires: time.Now().Add(lifetime - 5*time.Second)}
	attached, err := a.API.ContainerAttach(ctx, created.ID, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		a.remove(s)
		return nil, fmt.Errorf("attach to the agent container %s: %w", name, err)
	}
	s.conn = attached.HijackedResponse
	if _, err := a.API.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		s.conn.Close()
		a.remove(s)
		return nil, fmt.Errorf("start the agent container %s: %w", name, err)
	}
	stdout, feed := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(feed, s.stderr, s.conn.Reader)
		feed.CloseWithError(err)
	}()
	go func() {
		defer close(s.replies)
		scanner := bufio.NewScanner(stdout)
		scanner.Buffer(make([]byte, 64<<10), maxRequest)
		for scanner.Scan() {
			var r reply
			if json.Unmarshal(scanner.Bytes(), &r) != nil {
				continue
			}
			select {
			case s.replies <- r:
			case <-s.done:
				return
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	return s, nil
}

// endSession closes the agent's input, so it exits, and removes it.
func (a *Agent) endSession() {
	if a.session == nil {
		return
	}
	s := a.session
	a.session = nil
	close(s.done)
	_ = s.conn.CloseWrite()
	s.conn.Close()
	a.remove(s)
}

// remove force-removes the container, on a context of its own: the
// command's may have ended. One already gone (AutoRemove) is fine.
func (a *Agent) remove(s *session) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.API.ContainerRemove(ctx, s.id, client.ContainerRemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		a.note("could not remove the agent container %s: %v (it exits by itself at its deadline)", s.name, err)
	}
}

// RemoveAll removes every agent container of project (obcd down), and
// returns their names.
func RemoveAll(ctx context.Context, api API, project string) ([]string, error) {
	list, err := api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelAgent+"="+project)})
	if err != nil {
		return nil, fmt.Errorf("list the agent containers: %w", err)
	}
	var removed []string
	var errs []error
	for _, c := range list.Items {
		name := strings.TrimPrefix(strings.Join(c.Names, ","), "/")
		_, err := api.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		switch {
		case err == nil || cerrdefs.IsNotFound(err):
			removed = append(removed, name)
		case cerrdefs.IsConflict(err): // already being removed
			removed = append(removed, name)
		default:
			errs = append(errs, fmt.Errorf("remove agent container %s: %w", name, err))
		}
	}
	return removed, errors.Join(errs...)
}

// tail keeps the last max bytes written to it: the agent's stderr, for
// the error when it ends early.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
