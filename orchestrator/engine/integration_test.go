package engine_test

// Engine primitives against the real Docker engine on this machine, with
// test app images built FROM scratch. Each run uses its own project name
// and removes its containers, network, volumes and images.

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obcd/obcd/orchestrator/engine"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/obcd/obcd/internal/testsvc"
)

// engineRealDocker dials the local engine's socket; the test is skipped
// only when there is no engine on this machine.
func engineRealDocker(t *testing.T) *client.Client {
	t.Helper()
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		t.Skipf("no Docker engine here: %v", err)
	}
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

// engineHostPort is the host port published for a container port.
func engineHostPort(ctx context.Context, t *testing.T, docker *client.Client, containerID, port string) string {
	t.Helper()
	inspected, err := docker.ContainerInspect(ctx, containerID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bindings := inspected.Container.NetworkSettings.Ports[network.MustParsePort(port)]
	if len(bindings) == 0 || bindings[0].HostPort == "" {
		t.Fatalf("container %s publishes no host port for %s: %v", containerID, port, inspected.Container.NetworkSettings.Ports)
	}
	return bindings[0].HostPort
}

func engineHTTPGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// engineReadContainerFile reads one file back out of a container with its
// tar header.
func engineReadContainerFile(ctx context.Context, t *testing.T, docker *client.Client, containerID, path string) (*tar.Header, string) {
	t.Helper()
	copied, err := docker.CopyFromContainer(ctx, containerID, client.CopyFromContainerOptions{SourcePath: path})
	if err != nil {
		t.Fatalf("copy %s out of %s: %v", path, containerID, err)
	}
	defer copied.Content.Close()
	reader := tar.NewReader(copied.Content)
	header, err := reader.Next()
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(reader)
	if err != nil {
		t.Fatal(err)
	}
	return header, string(data)
}

func TestEngine_RealEngineLifecycle(t *testing.T) {
	docker := engineRealDocker(t)
	eng := &engine.Engine{API: docker}
	projectName := "obcdeng" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	v1Tag, brokenTag, crashTag := projectName+"-app:v1", projectName+"-app:broken", projectName+"-app:crash"
	v1ImageID := testsvc.BuildAppImage(t, docker, v1Tag, testsvc.AppImageOptions{Version: "v1"})
	testsvc.BuildAppImage(t, docker, brokenTag, testsvc.AppImageOptions{Version: "v2-broken", ReadyFails: true})
	testsvc.BuildAppImage(t, docker, crashTag, testsvc.AppImageOptions{Version: "v3-crash", CrashAtStart: true})
	// Registered after the images, so it runs before they are removed.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := eng.RemoveProject(ctx, projectName, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	var networkID string
	t.Run("NetworkAndVolumeAreIdempotent", func(t *testing.T) {
		var err error
		if networkID, err = eng.EnsureNetwork(ctx, projectName); err != nil {
			t.Fatal(err)
		}
		if again, err := eng.EnsureNetwork(ctx, projectName); err != nil || again != networkID {
			t.Fatalf("second EnsureNetwork = %q, %v; want the same network %s", again, err, networkID)
		}
		inspected, err := docker.NetworkInspect(ctx, projectName+"_default", client.NetworkInspectOptions{})
		if err != nil || inspected.Network.Labels[engine.LabelProject] != projectName || inspected.Network.Labels[engine.LabelNetwork] != "default" {
			t.Fatalf("network labels %v (%v), want the project and network=default", inspected.Network.Labels, err)
		}
		for range 2 {
			if name, err := eng.EnsureVolume(ctx, projectName, "data"); err != nil || name != projectName+"_data" {
				t.Fatalf("EnsureVolume = %q, %v", name, err)
			}
		}
		vol, err := docker.VolumeInspect(ctx, projectName+"_data", client.VolumeInspectOptions{})
		if err != nil || vol.Volume.Labels[engine.LabelProject] != projectName || vol.Volume.Labels[engine.LabelVolume] != "data" {
			t.Fatalf("volume labels %v (%v), want the project and volume=data", vol.Volume.Labels, err)
		}
	})

	web := engine.ServiceSpec{
		Project: projectName, Name: "web", Image: v1Tag, Replicas: 1,
		Env:    map[string]string{"APP_ENV": "test"},
		Ports:  []engine.PortSpec{{HostIP: "127.0.0.1", ContainerPort: "8000", Protocol: "tcp"}},
		Mounts: []engine.MountSpec{{Volume: "data", Target: "/data"}},
		Files: []engine.FileSpec{
			{Target: "/etc/obcd/secret.env", Mode: 0o600, Data: []byte("SECRET_KEY=s3cret\n")},
			{Target: "/etc/obcd/app.ini", Mode: 0o644, Data: []byte("[app]\nname=shop\n")},
		},
		StopGrace: 2 * time.Second,
	}
	var web1 engine.Container
	t.Run("CreateDeliversFilesThenStartWaitHealthy", func(t *testing.T) {
		var err error
		if web1, err = eng.Create(ctx, web, engine.ContainerName(projectName, "web", 1), 1, "r1"); err != nil {
			t.Fatal(err)
		}
		if web1.Name != projectName+"-web-1" || web1.Number != 1 {
			t.Fatalf("created %s #%d, want %s-web-1", web1.Name, web1.Number, projectName)
		}
		header, content := engineReadContainerFile(ctx, t, docker, web1.ID, "/etc/obcd/secret.env")
		if header.Mode&0o7777 != 0o600 || header.Uid != 0 || content != "SECRET_KEY=s3cret\n" {
			t.Errorf("secret.env in the created container: mode %o uid %d %q, want 0600 root with its content", header.Mode, header.Uid, content)
		}
		dir, err := docker.ContainerStatPath(ctx, web1.ID, client.ContainerStatPathOptions{Path: "/etc/obcd"})
		if err != nil || !dir.Stat.Mode.IsDir() || dir.Stat.Mode.Perm() != 0o755 {
			t.Errorf("/etc/obcd: %v (%v), want a 0755 directory", dir.Stat.Mode, err)
		}
		if err := eng.Start(ctx, web1.ID); err != nil {
			t.Fatal(err)
		}
		waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := eng.WaitHealthy(waitCtx, web1.ID); err != nil {
			t.Fatal(err)
		}
		base := "http://127.0.0.1:" + engineHostPort(ctx, t, docker, web1.ID, "8000/tcp")
		for path, want := range map[string]string{"/version": "v1\n", "/env/APP_ENV": "test", "/file/etc/obcd/app.ini": "[app]\nname=shop\n"} {
			if status, body := engineHTTPGet(t, base+path); status != 200 || body != want {
				t.Errorf("GET %s = %d %q, want %q", path, status, body, want)
			}
		}
	})

	t.Run("ReloadFileInPlace", func(t *testing.T) {
		original := []byte("[app]\nname=shop\n")
		digests, err := eng.ReadFileDigests(ctx, web1.ID, []string{"/etc/obcd/app.ini", "/etc/obcd/missing"})
		if err != nil || digests["/etc/obcd/app.ini"] != engine.FileDigest(original) || digests["/etc/obcd/missing"] != "" {
			t.Fatalf("ReadFileDigests = %v, %v; want app.ini's digest and \"\" for a missing file", digests, err)
		}
		base := "http://127.0.0.1:" + engineHostPort(ctx, t, docker, web1.ID, "8000/tcp")
		next := engine.FileSpec{Target: "/etc/obcd/app.ini", Mode: 0o644, Data: []byte("[app]\nname=rotated\n"),
			Reload: &engine.Reload{Exec: []string{"/app", "-exit", "3", engine.FilePlaceholder}, Stage: "/staged.ini"}}
		// An apply that fails leaves the old version in place, and says why.
		if err := eng.ReloadFile(ctx, web1.ID, next, ""); err == nil || !strings.Contains(err.Error(), "exited 3") {
			t.Fatalf("a failing apply: %v, want an error saying it exited 3", err)
		}
		if _, body := engineHTTPGet(t, base+"/file/etc/obcd/app.ini"); body != string(original) {
			t.Errorf("after a failed apply the file is %q, want the old version", body)
		}
		next.Reload.Exec = []string{"/app", "-exit", "0", engine.FilePlaceholder}
		if err := eng.ReloadFile(ctx, web1.ID, next, ""); err != nil {
			t.Fatal(err)
		}
		if _, body := engineHTTPGet(t, base+"/file/etc/obcd/app.ini"); body != string(next.Data) {
			t.Errorf("after the apply the file is %q, want the new version", body)
		}
		if digests, err := eng.ReadFileDigests(ctx, web1.ID, []string{"/etc/obcd/app.ini"}); err != nil || digests["/etc/obcd/app.ini"] != engine.FileDigest(next.Data) {
			t.Errorf("digest after the reload: %v, %v", digests, err)
		}
		if err := eng.ApplyFile(ctx, web1.ID, next); err != nil {
			t.Errorf("ApplyFile on a new container's file: %v", err)
		}
		// A signal reload: WINCH, which the app ignores, so it keeps running.
		signalled := engine.FileSpec{Target: "/etc/obcd/app.ini", Mode: 0o644, Data: original, Reload: &engine.Reload{Signal: "WINCH"}}
		if err := eng.ReloadFile(ctx, web1.ID, signalled, ""); err != nil {
			t.Fatal(err)
		}
		if status, body := engineHTTPGet(t, base+"/file/etc/obcd/app.ini"); status != 200 || body != string(original) {
			t.Errorf("after a signalled reload: %d %q", status, body)
		}
		// Only the file changed: the directory above it keeps its mode.
		dir, err := docker.ContainerStatPath(ctx, web1.ID, client.ContainerStatPathOptions{Path: "/etc/obcd"})
		if err != nil || dir.Stat.Mode.Perm() != 0o755 {
			t.Errorf("/etc/obcd after reloads: %v (%v), want 0755", dir.Stat.Mode, err)
		}
	})

	t.Run("ObserveShowsItWithAllLabels", func(t *testing.T) {
		containers, err := eng.Observe(ctx, projectName)
		if err != nil {
			t.Fatal(err)
		}
		if len(containers) != 1 {
			t.Fatalf("observed %+v, want web-1 only", containers)
		}
		got := containers[0]
		if got.ID != web1.ID || got.Name != web1.Name || got.Service != "web" || got.Number != 1 || got.Hash != web.Hash() ||
			got.Release != "r1" || got.Image != v1Tag || got.ImageID != v1ImageID || got.State != "running" || got.Health != "healthy" || got.OneOff {
			t.Errorf("observed %+v", got)
		}
		inspected, err := docker.ContainerInspect(ctx, web1.ID, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for label, want := range map[string]string{engine.LabelProject: projectName, engine.LabelService: "web", engine.LabelContainerNumber: "1", engine.LabelOneOff: "False",
			engine.LabelComposeConfigHash: web.Hash(), engine.LabelHash: web.Hash(), engine.LabelRelease: "r1"} {
			if got := inspected.Container.Config.Labels[label]; got != want {
				t.Errorf("label %s = %q, want %q", label, got, want)
			}
		}
		if endpoint := inspected.Container.NetworkSettings.Networks[projectName+"_default"]; endpoint == nil || !strings.Contains(strings.Join(endpoint.Aliases, " "), "web") {
			t.Errorf("networks %v, want %s_default with the alias web", inspected.Container.NetworkSettings.Networks, projectName)
		}
	})

	t.Run("DockerComposePsListsTheContainer", func(t *testing.T) {
		composeBin, err := exec.LookPath("docker-compose")
		if err != nil {
			t.Skipf("docker-compose is not installed: %v", err)
		}
		// Compose v1 lists only the services its file names.
		file := filepath.Join(t.TempDir(), "docker-compose.yml")
		if err := os.WriteFile(file, fmt.Appendf(nil, "services:\n  web:\n    image: %s\n", v1Tag), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(ctx, composeBin, "-p", projectName, "-f", file, "ps").CombinedOutput()
		if err != nil || !strings.Contains(string(out), projectName+"-web-1") || !strings.Contains(string(out), "Up") {
			t.Fatalf("docker-compose ps: %v\n%s\nwant %s-web-1 up", err, out, projectName)
		}
	})

	var edge engine.Container
	t.Run("AProxyReachesTheServiceByItsAlias", func(t *testing.T) {
		edgeSpec := engine.ServiceSpec{Project: projectName, Name: "edge", Image: v1Tag, Command: []string{"-proxy", "http://web:8000"},
			Env:   map[string]string{"HEALTH_URL": "http://127.0.0.1:8080/health/"},
			Ports: []engine.PortSpec{{HostIP: "127.0.0.1", ContainerPort: "8080"}}}
		var err error
		if edge, err = eng.Create(ctx, edgeSpec, engine.ContainerName(projectName, edgeSpec.Name, 1), 1, "r1"); err != nil {
			t.Fatal(err)
		}
		if err := eng.Start(ctx, edge.ID); err != nil {
			t.Fatal(err)
		}
		waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := eng.WaitHealthy(waitCtx, edge.ID); err != nil {
			t.Fatal(err)
		}
		if status, body := engineHTTPGet(t, "http://127.0.0.1:"+engineHostPort(ctx, t, docker, edge.ID, "8080/tcp")+"/version"); status != 200 || body != "v1\n" {
			t.Fatalf("through the proxy: %d %q, want v1", status, body)
		}
	})

	t.Run("ATakenNameIsRefusedAndReadyFailsIsStillHealthy", func(t *testing.T) {
		broken := web
		broken.Image = brokenTag
		if _, err := eng.Create(ctx, broken, engine.ContainerName(projectName, "web", 1), 1, "r2"); !errors.Is(err, engine.ErrNameTaken) {
			t.Fatalf("create under web-1's name: %v, want engine.ErrNameTaken", err)
		}
		web2, err := eng.Create(ctx, broken, engine.ContainerName(projectName, "web", 2), 2, "r2")
		if err != nil {
			t.Fatal(err)
		}
		if web2.Name != projectName+"-web-2" || web2.Number != 2 {
			t.Fatalf("created %s #%d while web-1 holds its name, want web-2", web2.Name, web2.Number)
		}
		if err := eng.Start(ctx, web2.ID); err != nil {
			t.Fatal(err)
		}
		waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := eng.WaitHealthy(waitCtx, web2.ID); err != nil {
			t.Fatalf("a container whose readiness fails is still healthy: %v", err)
		}
		status, body := engineHTTPGet(t, "http://127.0.0.1:"+engineHostPort(ctx, t, docker, web2.ID, "8000/tcp")+"/ready/")
		if status != http.StatusServiceUnavailable || !strings.Contains(body, `"database":false`) {
			t.Errorf("/ready/ = %d %s, want 503 with database false", status, body)
		}
		if err := eng.Retire(ctx, web2.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ACrashingContainerFailsWaitHealthyWithItsLogs", func(t *testing.T) {
		worker := engine.ServiceSpec{Project: projectName, Name: "worker", Image: crashTag}
		crashing, err := eng.Create(ctx, worker, engine.ContainerName(projectName, worker.Name, 1), 1, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Start(ctx, crashing.ID); err != nil {
			t.Fatal(err)
		}
		waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err = eng.WaitHealthy(waitCtx, crashing.ID)
		var containerErr *engine.ContainerError
		if !errors.As(err, &containerErr) || containerErr.Container != projectName+"-worker-1" ||
			!strings.Contains(err.Error(), "crashing at start as configured") || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitHealthy = %v, want an immediate failure naming %s-worker-1 with its logs", err, projectName)
		}
		t.Logf("the failure reads:\n%v", err)
		if err := eng.Retire(ctx, crashing.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("RunOneOffReturnsTheExitCodeAndLogsAndRemovesIt", func(t *testing.T) {
		migrate := engine.ServiceSpec{Project: projectName, Name: "migrate", Image: v1Tag, Command: []string{"-exit", "3"}}
		code, logs, err := eng.RunOneOff(ctx, migrate, engine.OneOffName(projectName, "migrate", "20260514T101500Z"), "20260514T101500Z")
		if err != nil || code != 3 || !strings.Contains(logs, "one-off ran, exiting 3") || !strings.Contains(logs, "stderr of the one-off") {
			t.Fatalf("RunOneOff = %d, %q, %v; want exit 3 with both log streams", code, logs, err)
		}
		containers, err := eng.Observe(ctx, projectName)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range containers {
			if c.OneOff || c.Service == "migrate" {
				t.Errorf("one-off %s left behind", c.Name)
			}
		}
	})

	t.Run("RetireStopsAndRemovesItAndTheProxyMovesOnAndKeepsTheVolume", func(t *testing.T) {
		proxied := "http://127.0.0.1:" + engineHostPort(ctx, t, docker, edge.ID, "8080/tcp") + "/version"
		if err := eng.Retire(ctx, web1.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := docker.ContainerInspect(ctx, web1.ID, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
			t.Errorf("web-1 after Retire: %v, want it removed", err)
		}
		// Out of DNS once stopped: the re-resolving proxy finds no web now.
		if status, _ := engineHTTPGet(t, proxied); status != http.StatusBadGateway {
			t.Errorf("the proxy after the retire: %d, want 502 (no web replica left in DNS)", status)
		}
		if _, err := docker.VolumeInspect(ctx, projectName+"_data", client.VolumeInspectOptions{}); err != nil {
			t.Errorf("the volume after Retire: %v, want it kept", err)
		}
	})

	t.Run("RemoveProjectKeepsVolumesUnlessAsked", func(t *testing.T) {
		if _, err := eng.Create(ctx, web, engine.ContainerName(projectName, "web", 3), 3, "r3"); err != nil { // a created, never started container
			t.Fatal(err)
		}
		if err := eng.RemoveProject(ctx, projectName, false); err != nil {
			t.Fatal(err)
		}
		if containers, err := eng.Observe(ctx, projectName); err != nil || len(containers) != 0 {
			t.Errorf("after RemoveProject: %+v (%v), want no containers", containers, err)
		}
		if _, err := docker.NetworkInspect(ctx, projectName+"_default", client.NetworkInspectOptions{}); !cerrdefs.IsNotFound(err) {
			t.Errorf("the network after RemoveProject: %v, want it removed", err)
		}
		if _, err := docker.VolumeInspect(ctx, projectName+"_data", client.VolumeInspectOptions{}); err != nil {
			t.Errorf("the volume after RemoveProject without volumes: %v, want it kept", err)
		}
		if err := eng.RemoveProject(ctx, projectName, true); err != nil {
			t.Fatal(err)
		}
		if _, err := docker.VolumeInspect(ctx, projectName+"_data", client.VolumeInspectOptions{}); !cerrdefs.IsNotFound(err) {
			t.Errorf("the volume after RemoveProject with volumes: %v, want it removed", err)
		}
	})
}
