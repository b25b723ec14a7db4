package probe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/obcd/obcd/orchestrator/engine"
)

// containerFakeAPI fakes the engine with function fields.
type containerFakeAPI struct {
	list    func(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	inspect func(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
}

func (f containerFakeAPI) ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error) {
	return f.list(ctx, options)
}

func (f containerFakeAPI) ContainerInspect(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	return f.inspect(ctx, containerID, options)
}

// containerFake is one container of the fake engine.
type containerFake struct {
	name     string // e.g. shop-web-1; its ID is "id-" + name
	service  string
	oneoff   bool
	state    container.ContainerState
	exitCode int
	health   container.HealthStatus // "" = no healthcheck
	lastLog  string                 // output of the last healthcheck
	restarts int
}

// containerFakeEngine serves containers as the engine would for project "shop",
// and fails the test when the probe lists without the project filter.
func containerFakeEngine(t *testing.T, containers ...containerFake) containerFakeAPI {
	byID := map[string]containerFake{}
	return containerFakeAPI{
		list: func(_ context.Context, options client.ContainerListOptions) (client.ContainerListResult, error) {
			if !options.All || !options.Filters["label"][engine.LabelProject+"=shop"] {
				t.Errorf("ContainerList options %+v, want all containers with label %s=shop", options, engine.LabelProject)
			}
			var items []container.Summary
			for _, fake := range containers {
				labels := map[string]string{engine.LabelProject: "shop", engine.LabelService: fake.service, engine.LabelOneOff: "False"}
				if fake.oneoff {
					labels[engine.LabelOneOff] = "True"
				}
				byID["id-"+fake.name] = fake
				items = append(items, container.Summary{ID: "id-" + fake.name, Names: []string{"/" + fake.name}, Labels: labels, State: fake.state})
			}
			return client.ContainerListResult{Items: items}, nil
		},
		inspect: func(_ context.Context, containerID string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
			fake, ok := byID[containerID]
			if !ok {
				return client.ContainerInspectResult{}, fmt.Errorf("no such container: %s", containerID)
			}
			state := &container.State{Status: fake.state, Running: fake.state == container.StateRunning || fake.state == container.StateRestarting,
				Restarting: fake.state == container.StateRestarting, ExitCode: fake.exitCode}
			if fake.health != "" {
				state.Health = &container.Health{Status: fake.health, FailingStreak: 3, Log: []*container.HealthcheckResult{
					{ExitCode: 0, Output: "ok"},
					{ExitCode: 1, Output: fake.lastLog},
				}}
			}
			return client.ContainerInspectResult{Container: container.InspectResponse{
				ID: containerID, Name: "/" + fake.name, State: state, RestartCount: fake.restarts,
			}}, nil
		},
	}
}

func containerRunning(name, service string) containerFake {
	return containerFake{name: name, service: service, state: container.StateRunning}
}

func TestContainer_Decisions(t *testing.T) {
	healthyWeb := containerRunning("shop-web-1", "web")
	healthyWeb.health = container.Healthy
	tests := []struct {
		name        string
		containers  []containerFake
		services    []string
		maxRestarts int
		wantOutcome Outcome
		wantMessage []string
	}{
		{name: "RunningAndHealthyPass", containers: []containerFake{healthyWeb, containerRunning("shop-worker-1", "worker")},
			services: []string{"web", "worker"}, wantOutcome: Pass, wantMessage: []string{`project "shop": 2 containers running and healthy`}},
		{name: "MissingServiceFails", containers: []containerFake{healthyWeb},
			services: []string{"web", "worker"}, wantOutcome: Fail, wantMessage: []string{`service "worker" has no running container`}},
		{name: "NoContainersFails", containers: nil, wantOutcome: Fail, wantMessage: []string{`project "shop": no containers`}},
		{name: "ExitedFailsNamingItsExitCode", containers: []containerFake{healthyWeb,
			{name: "shop-worker-1", service: "worker", state: container.StateExited, exitCode: 137}},
			services: []string{"web", "worker"}, wantOutcome: Fail,
			wantMessage: []string{"container shop-worker-1 is exited, expected running (exit code 137)", `service "worker" has no running container`}},
		{name: "RestartingFails", containers: []containerFake{{name: "shop-web-1", service: "web", state: container.StateRestarting, restarts: 2}},
			wantOutcome: Fail, wantMessage: []string{"container shop-web-1 is restarting, expected running, restarted 2 times"}},
		{name: "StartingFailsSoTheRunnerWaits", containers: []containerFake{{name: "shop-web-1", service: "web", state: container.StateRunning, health: container.Starting}},
			services: []string{"web"}, wantOutcome: Fail, wantMessage: []string{"container shop-web-1 health is starting"}},
		{name: "UnhealthyFailsWithTheLastHealthOutput", containers: []containerFake{{name: "shop-web-1", service: "web", state: container.StateRunning,
			health: container.Unhealthy, lastLog: "Get \"http://127.0.0.1:8000/healthz\": connection refused\n"}},
			services: []string{"web"}, wantOutcome: Fail,
			wantMessage: []string{"container shop-web-1 is unhealthy after 3 failed healthchecks; last check exited 1: Get \"http://127.0.0.1:8000/healthz\": connection refused"}},
		{name: "TooManyRestartsFail", containers: []containerFake{{name: "shop-web-1", service: "web", state: container.StateRunning, restarts: 4}},
			services: []string{"web"}, wantOutcome: Fail, wantMessage: []string{"container shop-web-1 restarted 4 times, more than the 3 allowed"}},
		{name: "RestartsWithinMaxPass", containers: []containerFake{{name: "shop-web-1", service: "web", state: container.StateRunning, restarts: 4}},
			services: []string{"web"}, maxRestarts: 5, wantOutcome: Pass},
		{name: "OneoffContainersAreLeftOut", containers: []containerFake{healthyWeb,
			{name: "shop-web-run-1a2b", service: "web", oneoff: true, state: container.StateExited, exitCode: 1}},
			services: []string{"web"}, wantOutcome: Pass, wantMessage: []string{"1 containers"}},
		{name: "EveryProblemIsReported", containers: []containerFake{
			{name: "shop-web-1", service: "web", state: container.StateRunning, health: container.Unhealthy, lastLog: "HTTP 500"},
			{name: "shop-web-2", service: "web", state: container.StateRunning, health: container.Starting}},
			services: []string{"web"}, wantOutcome: Fail,
			wantMessage: []string{"shop-web-1 is unhealthy", "HTTP 500", "shop-web-2 health is starting"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := Container(ContainerConfig{Docker: containerFakeEngine(t, tt.containers...), Project: "shop", Services: tt.services, MaxRestarts: tt.maxRestarts})
			attempt := check.Check(context.Background())
			if attempt.Outcome != tt.wantOutcome {
				t.Fatalf("outcome %v, want %v: %s", attempt.Outcome, tt.wantOutcome, attempt.Message)
			}
			for _, want := range tt.wantMessage {
				if !strings.Contains(attempt.Message, want) {
					t.Errorf("message %q does not contain %q", attempt.Message, want)
				}
			}
		})
	}
}

func TestContainer_ListErrorFails(t *testing.T) {
	engine := containerFakeAPI{list: func(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
		return client.ContainerListResult{}, errors.New("Cannot connect to the Docker daemon")
	}}
	attempt := Container(ContainerConfig{Docker: engine, Project: "shop"}).Check(context.Background())
	if attempt.Outcome != Fail || !strings.Contains(attempt.Message, `project "shop": Cannot connect`) {
		t.Fatalf("attempt %+v, want a failure with the engine's error", attempt)
	}
}

func TestContainer_WithoutClientOrProjectIsFatal(t *testing.T) {
	attempt := Container(ContainerConfig{Project: "shop"}).Check(context.Background())
	if attempt.Outcome != Fatal {
		t.Fatalf("attempt %+v, want fatal", attempt)
	}
}

// containerHealthServerSource is the container's program: an HTTP server on :8080,
// or with -health a check of it that exits 1 when it does not answer 200.
const containerHealthServerSource = `package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	health := flag.Bool("health", false, "check the server and exit")
	flag.Parse()
	if *health {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://127.0.0.1:8080/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			fmt.Println("unhealthy:", err)
			os.Exit(1)
		}
		fmt.Println("healthy")
		return
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	panic(http.ListenAndServe(":8080", nil))
}
`

const containerHealthServerDockerfile = `FROM scratch
COPY app /app
HEALTHCHECK --interval=2s --timeout=2s --retries=3 CMD ["/app", "-health"]
ENTRYPOINT ["/app"]
`

func TestContainer_RealEngineHealthyComposeServicePasses(t *testing.T) {
	t.Parallel()
	docker := containerDialDocker(t)
	projectName := "obcd-probe-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	imageTag := projectName + ":test"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	containerBuildImage(ctx, t, docker, imageTag)
	created, err := docker.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: projectName + "-web-1",
		Config: &container.Config{Image: imageTag, Labels: map[string]string{
			engine.LabelProject:         projectName,
			engine.LabelService:         "web",
			engine.LabelContainerNumber: "1",
			engine.LabelOneOff:          "False",
		}},
	})
	if err != nil {
		t.Fatalf("ContainerCreate: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := docker.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			t.Errorf("removing container %s: %v", created.ID, err)
		}
	})
	if _, err := docker.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("ContainerStart: %v", err)
	}

	check := Container(ContainerConfig{Docker: docker, Project: projectName, Services: []string{"web"}})
	// The first healthcheck runs 2s after the start: until then, the
	// container is starting, which must not pass.
	if first := check.Check(ctx); first.Outcome == Pass {
		t.Logf("passed before the first healthcheck was expected: %s", first.Message)
	} else if !strings.Contains(first.Message, projectName+"-web-1 health is starting") {
		t.Errorf("first attempt %+v, want a failure saying the container is starting", first)
	}
	result := runMonitorProbe(t, "container", check, time.Minute)
	monitorWantPass(t, result)

	withWorker := Container(ContainerConfig{Docker: docker, Project: projectName, Services: []string{"web", "worker"}})
	if attempt := withWorker.Check(ctx); attempt.Outcome != Fail || !strings.Contains(attempt.Message, `service "worker" has no running container`) {
		t.Fatalf("with a missing worker service: %+v, want a failure naming it", attempt)
	}
}

// containerDialDocker connects to the local engine; the test is skipped only
// when no engine is configured on this machine.
func containerDialDocker(t *testing.T) *client.Client {
	t.Helper()
	if os.Getenv(client.EnvOverrideHost) == "" {
		if _, err := os.Stat("/var/run/docker.sock"); err != nil {
			t.Skipf("no Docker engine here (DOCKER_HOST unset, %v)", err)
		}
	}
	docker, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { docker.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Fatalf("Docker engine unreachable: %v", err)
	}
	return docker
}

// containerBuildImage builds containerHealthServerSource into a static binary and an
// image FROM scratch tagged imageTag, removed when the test ends.
func containerBuildImage(ctx context.Context, t *testing.T, docker *client.Client, imageTag string) {
	t.Helper()
	binary := containerBuildHealthServer(t)
	buildContext, err := engine.TarFiles([]engine.FileSpec{
		{Target: "/Dockerfile", Mode: 0o644, Data: []byte(containerHealthServerDockerfile)},
		{Target: "/app", Mode: 0o755, Data: binary},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	built, err := docker.ImageBuild(ctx, buildContext, client.ImageBuildOptions{
		Tags: []string{imageTag}, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		t.Fatalf("ImageBuild: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := docker.ImageRemove(ctx, imageTag, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Errorf("removing image %s: %v", imageTag, err)
		}
	})
	defer built.Body.Close()
	if _, err := engine.ReadBuildOutput(built.Body); err != nil {
		t.Fatalf("building %s: %v", imageTag, err)
	}
}

// containerBuildHealthServer compiles containerHealthServerSource with CGO off, for the
// engine's architecture (this machine's).
func containerBuildHealthServer(t *testing.T) []byte {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build the test image: %v", err)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{"main.go": containerHealthServerSource, "go.mod": "module healthserver\n\ngo 1.22\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", "app", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the test server: %v\n%s", err, out)
	}
	binary, err := os.ReadFile(filepath.Join(dir, "app"))
	if err != nil {
		t.Fatal(err)
	}
	return binary
}
