package testsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// appRunLocal runs the app binary for opts on this machine (it is a static
// linux binary) with env and args, and stops it when the test ends.
func appRunLocal(t *testing.T, opts AppImageOptions, env map[string]string, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := appCommand(t, opts, env, args...)
	var output strings.Builder
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, &output
}

func appCommand(t *testing.T, opts AppImageOptions, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	binary, err := appBinary(opts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(path, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = []string{}
	for name, value := range env {
		cmd.Env = append(cmd.Env, name+"="+value)
	}
	return cmd
}

// appGet GETs url, retrying for a few seconds while the server starts.
func appGet(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, readErr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if readErr != nil {
				t.Fatal(readErr)
			}
			return resp.StatusCode, string(body), resp.Header
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAppBinary_ServesHealthReadyVersionFilesAndEnv(t *testing.T) {
	port := strconv.Itoa(FreePort(t))
	base := "http://127.0.0.1:" + port
	appRunLocal(t, AppImageOptions{Version: "v7"}, map[string]string{"PORT": port, "GREETING": "hello"})

	status, body, header := appGet(t, base+"/health/")
	var health map[string]any
	if err := json.Unmarshal([]byte(body), &health); err != nil || status != 200 || health["status"] != "ok" || health["version"] != "v7" {
		t.Errorf("/health/ = %d %s (%v), want 200 with status ok and version v7", status, body, err)
	}
	if header.Get("X-App-Version") != "v7" || header.Get("X-Served-By") == "" {
		t.Errorf("headers %v, want X-App-Version v7 and X-Served-By", header)
	}
	status, body, _ = appGet(t, base+"/ready/")
	var ready map[string]any
	if err := json.Unmarshal([]byte(body), &ready); err != nil || status != 200 || ready["database"] != true || ready["cache"] != true || ready["version"] != "v7" {
		t.Errorf("/ready/ = %d %s (%v), want 200 with database and cache true", status, body, err)
	}
	if status, body, _ = appGet(t, base+"/version"); status != 200 || strings.TrimSpace(body) != "v7" {
		t.Errorf("/version = %d %q, want v7", status, body)
	}
	if status, body, _ = appGet(t, base+"/env/GREETING"); status != 200 || body != "hello" {
		t.Errorf("/env/GREETING = %d %q, want hello", status, body)
	}
	file := filepath.Join(t.TempDir(), "config.txt")
	if err := os.WriteFile(file, []byte("delivered"), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, body, _ = appGet(t, base+"/file"+file); status != 200 || body != "delivered" {
		t.Errorf("/file%s = %d %q, want its content", file, status, body)
	}

	check := appCommand(t, AppImageOptions{Version: "v7"}, map[string]string{"PORT": port}, "-health")
	if out, err := check.CombinedOutput(); err != nil || !strings.Contains(string(out), "healthy") {
		t.Errorf("-health against a serving app: %v %s, want exit 0", err, out)
	}
	down := appCommand(t, AppImageOptions{Version: "v7"}, map[string]string{"PORT": strconv.Itoa(FreePort(t))}, "-health")
	if out, err := down.CombinedOutput(); appExitCode(err) != 1 {
		t.Errorf("-health with nothing listening: %v %s, want exit 1", err, out)
	}
}

func TestAppBinary_ReadyFailsAnswers503WithDatabaseFalse(t *testing.T) {
	port := strconv.Itoa(FreePort(t))
	appRunLocal(t, AppImageOptions{Version: "v2", ReadyFails: true}, map[string]string{"PORT": port})
	status, body, _ := appGet(t, "http://127.0.0.1:"+port+"/ready/")
	var ready map[string]any
	if err := json.Unmarshal([]byte(body), &ready); err != nil || status != 503 || ready["database"] != false {
		t.Errorf("/ready/ = %d %s (%v), want 503 with database false", status, body, err)
	}
	if status, _, _ := appGet(t, "http://127.0.0.1:"+port+"/health/"); status != 200 {
		t.Errorf("/health/ = %d, want 200: only readiness fails", status)
	}
}

func TestAppBinary_CrashAtStartExits1WithALogLine(t *testing.T) {
	out, err := appCommand(t, AppImageOptions{Version: "v3", CrashAtStart: true}, nil).CombinedOutput()
	if appExitCode(err) != 1 || !strings.Contains(string(out), "crashing at start") {
		t.Fatalf("crashing app: %v %q, want exit 1 and a log line", err, out)
	}
}

func TestAppBinary_ExitModeExitsWithTheCode(t *testing.T) {
	out, err := appCommand(t, AppImageOptions{Version: "v4"}, nil, "-exit", "3").CombinedOutput()
	if appExitCode(err) != 3 || !strings.Contains(string(out), "one-off ran, exiting 3") || !strings.Contains(string(out), "stderr of the one-off") {
		t.Fatalf("-exit 3: %v %q, want exit 3 and its stdout and stderr lines", err, out)
	}
}

func TestAppBinary_ACommandRepeatingTheEntrypointOrNamingServeMeansTheSame(t *testing.T) {
	out, err := appCommand(t, AppImageOptions{Version: "v4"}, nil, "/app", "-exit", "3").CombinedOutput()
	if appExitCode(err) != 3 || !strings.Contains(string(out), "one-off ran, exiting 3") {
		t.Errorf("/app -exit 3: %v %q, want exit 3", err, out)
	}
	port := strconv.Itoa(FreePort(t))
	appRunLocal(t, AppImageOptions{Version: "v4"}, map[string]string{"PORT": port}, "serve")
	if status, body, _ := appGet(t, "http://127.0.0.1:"+port+"/version"); status != 200 || strings.TrimSpace(body) != "v4" {
		t.Errorf("serve: /version = %d %q, want v4", status, body)
	}
}

func TestAppBinary_StopsAtOnceOnSIGTERM(t *testing.T) {
	port := strconv.Itoa(FreePort(t))
	cmd, output := appRunLocal(t, AppImageOptions{}, map[string]string{"PORT": port})
	appGet(t, "http://127.0.0.1:"+port+"/health/")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want 0\n%s", err, output)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("still running 5s after SIGTERM\n%s", output)
	}
}

func TestAppBinary_ProxyFollowsTheUpstreamAcrossRestarts(t *testing.T) {
	upstreamPort := strconv.Itoa(FreePort(t))
	proxyPort := strconv.Itoa(FreePort(t))
	appRunLocal(t, AppImageOptions{}, map[string]string{"PROXY_PORT": proxyPort}, "-proxy", "http://localhost:"+upstreamPort)
	proxied := "http://127.0.0.1:" + proxyPort + "/version"

	first, _ := appRunLocal(t, AppImageOptions{Version: "v1"}, map[string]string{"PORT": upstreamPort})
	appGet(t, "http://127.0.0.1:"+upstreamPort+"/health/")
	if status, body, _ := appGet(t, proxied); status != 200 || strings.TrimSpace(body) != "v1" {
		t.Fatalf("through the proxy: %d %q, want v1", status, body)
	}
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if status, body, _ := appGet(t, proxied); status != http.StatusBadGateway {
		t.Errorf("with the upstream down: %d %q, want 502", status, body)
	}
	appRunLocal(t, AppImageOptions{Version: "v2"}, map[string]string{"PORT": upstreamPort})
	appGet(t, "http://127.0.0.1:"+upstreamPort+"/health/")
	if status, body, _ := appGet(t, proxied); status != 200 || strings.TrimSpace(body) != "v2" {
		t.Fatalf("through the proxy after the upstream changed: %d %q, want v2", status, body)
	}
}

func appExitCode(err error) int {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestBuildAppImage_RealEngineImageHasTheHealthcheckAndVersion(t *testing.T) {
	if os.Getenv(client.EnvOverrideHost) == "" {
		if _, err := os.Stat("/var/run/docker.sock"); err != nil {
			t.Skipf("no Docker engine here (DOCKER_HOST unset, %v)", err)
		}
	}
	docker, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docker.Close() })
	tag := fmt.Sprintf("obcd-testsvc-app-%d:v5", time.Now().UnixNano())
	imageID := BuildAppImage(t, docker, tag, AppImageOptions{Version: "v5"})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inspected, err := docker.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if inspected.ID != imageID {
		t.Errorf("BuildAppImage returned %s, the tag is image %s", imageID, inspected.ID)
	}
	config := inspected.Config
	if config == nil || config.Healthcheck == nil || strings.Join(config.Healthcheck.Test, " ") != "CMD /app -health" {
		t.Fatalf("image config %+v, want the healthcheck CMD /app -health", config)
	}
	if strings.Join(config.Entrypoint, " ") != "/app" || config.Labels["dev.obcd.test-app.version"] != "v5" {
		t.Errorf("entrypoint %v, labels %v, want /app and the version label", config.Entrypoint, config.Labels)
	}
}
