package agent_test

// The agent on the real engine: its image is built once per obcd binary
// and then reused, it reaches a service on the project's network by name,
// it is gone when the command closes it, and a network that does not
// exist is reported at once.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/agent"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/probe"
)

func realDocker(t *testing.T) *client.Client {
	t.Helper()
	docker, err := engine.Dial("unix:///var/run/docker.sock", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docker.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Fatalf("Docker engine unreachable: %v", err)
	}
	return docker
}

// obcdBinary builds obcd, static, as make build does.
func obcdBinary(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "obcd")
	build := exec.Command("go", "build", "-o", out, "../../cmd/obcd")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build obcd: %v\n%s", err, msg)
	}
	return out
}

type notes struct {
	mu    sync.Mutex
	lines []string
}

func (n *notes) add(s string) { n.mu.Lock(); n.lines = append(n.lines, s); n.mu.Unlock() }
func (n *notes) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.lines, "\n")
}

func TestAgent_OnTheRealEngine(t *testing.T) {
	docker := realDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := obcdBinary(t)
	project := "obcdagent" + strconv.FormatInt(time.Now().UnixNano(), 36)
	netName := engine.NetworkName(project)
	if _, err := docker.NetworkCreate(ctx, netName, client.NetworkCreateOptions{Driver: "bridge"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		_, _ = agent.RemoveAll(cctx, docker, project)
		_, _ = docker.ContainerRemove(cctx, project+"-web", client.ContainerRemoveOptions{Force: true})
		_, _ = docker.NetworkRemove(cctx, netName, client.NetworkRemoveOptions{})
	})
	// A web service on the network only, published nowhere.
	appImage := testsvc.BuildAppImage(t, docker, "obcd-agent-test-app:"+project, testsvc.AppImageOptions{Version: "7.7.7"})
	web, err := docker.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       project + "-web",
		Config:     &container.Config{Image: appImage},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(netName)},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			netName: {Aliases: []string{"web"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := docker.ContainerStart(ctx, web.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}

	specs := []probe.Spec{
		{Name: "web-health", Kind: "http", Target: "http://web:8000/health/", Critical: true, InNetwork: true,
			Config: &probe.Config{HTTP: &probe.HTTPConfig{URL: "http://web:8000/health/", ExpectBody: "7.7.7"}}},
		{Name: "nobody", Kind: "redis", Target: "cache:6379", Critical: true, InNetwork: true,
			Config: &probe.Config{Redis: &probe.RedisConfig{Addr: "cache:6379"}}},
	}
	// Start with no agent image of this version: an earlier run built one
	// of the same binary.
	images, err := docker.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("reference", agent.ImageRepository+":test-*")})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range images.Items {
		if _, err := docker.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	first := &notes{}
	a := &agent.Agent{API: docker, Project: project, Binary: bin, Version: "test", Notes: first.add}
	if err := a.Available(ctx); err != nil {
		t.Fatalf("Available on this engine: %v", err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	started := time.Now()
	results := a.Run(rctx, specs, true, nil)
	rcancel()
	if r := results[0]; r.Status != probe.StatusPass || !r.InNetwork {
		t.Errorf("web-health through the agent: %+v\nnotes: %s", r, first)
	}
	if r := results[1]; r.Status != probe.StatusFail || !strings.Contains(r.Message, "cache") || time.Since(started) > 25*time.Second {
		t.Errorf("a name nobody answers on, on demand: %+v after %v; want a prompt failure", r, time.Since(started))
	}
	if !strings.Contains(first.String(), "building the in-network agent image obcd-agent:test-") {
		t.Errorf("the first run did not build the agent image; notes:\n%s", first)
	}
	ids := agentContainers(t, docker, project)
	if len(ids) != 1 {
		t.Fatalf("agent containers while the agent is open: %v, want one", ids)
	}
	// A second round, within the first one's container's deadline, reuses
	// it; Close removes it.
	rctx, rcancel = context.WithTimeout(ctx, 10*time.Second)
	results = a.Run(rctx, specs[:1], false, nil)
	rcancel()
	if results[0].Status != probe.StatusPass {
		t.Errorf("second round: %+v", results[0])
	}
	if again := agentContainers(t, docker, project); len(again) != 1 || again[0] != ids[0] {
		t.Errorf("second round ran in %v, want the same agent %v", again, ids)
	}
	a.Close()
	if left := agentContainers(t, docker, project); len(left) != 0 {
		t.Errorf("agent containers after Close: %v", left)
	}

	// Another agent of the same binary builds nothing.
	second := &notes{}
	b := &agent.Agent{API: docker, Project: project, Binary: bin, Version: "test", Notes: second.add}
	rctx, rcancel = context.WithTimeout(ctx, 30*time.Second)
	results = b.Run(rctx, specs[:1], true, nil)
	rcancel()
	b.Close()
	if results[0].Status != probe.StatusPass || strings.Contains(second.String(), "building") {
		t.Errorf("second agent: %+v; notes %q; want a pass with no build", results[0], second)
	}

	// A project that is not deployed has no network: reported at once.
	c := &agent.Agent{API: docker, Project: project + "-gone", Binary: bin, Version: "test"}
	started = time.Now()
	results = c.Run(ctx, specs[:1], true, nil)
	if r := results[0]; r.Status != probe.StatusFail || !strings.Contains(r.Message, "does not exist: is the environment deployed?") || time.Since(started) > 5*time.Second {
		t.Errorf("no network: %+v after %v", r, time.Since(started))
	}
}

func agentContainers(t *testing.T, docker *client.Client, project string) []string {
	t.Helper()
	list, err := docker.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", agent.LabelAgent+"="+project)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range list.Items {
		ids = append(ids, c.ID)
	}
	return ids
}
