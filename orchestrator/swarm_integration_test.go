package orchestrator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/secrets"
	"github.com/obcd/obcd/orchestrator/state"
)

// swarmStack is the test app on a swarm: two web replicas rolled
// start-first, migrate as a job before them, and the proxy pinned to the
// manager, whose host-mode port the test reaches on loopback. web
// declares no address: its probes run from inside the overlay through
// the agent. The Django secret key is a secret, which must never be in
// a service's or a container's spec.
const swarmStack = `
stack "%[1]s" {
  app_image = "%[2]s"
  version   = var.version
}

variable "version" {
  default = "v1"
}

secret "django_secret_key" {
  length = 64
}

django {
  migrate_command = ["/app", "-exit", "0"]
  secret_key      = secret.django_secret_key
}

service "web" "web" {
  replicas = 2
  command  = ["serve"]
  env = {
    HEALTH_URL = "http://127.0.0.1:8000/ready/"
  }
  healthcheck {
    test         = ["CMD", "/app", "-health"]
    interval     = "1s"
    timeout      = "1s"
    retries      = 2
    start_period = "1s"
  }
}

service "nginx" "proxy" {
  image     = "%[2]s:v1"
  command   = ["-proxy", "http://web:8000"]
  ports     = ["%[3]d:8080"]
  placement = ["node.role == manager"]
  env = {
    HEALTH_URL = "http://127.0.0.1:8080/health/"
  }
  healthcheck {
    test     = ["CMD", "/app", "-health"]
    interval = "1s"
  }
}

probe "site-https" {
  enabled = false
}

probe "site-bad-host" {
  enabled = false
}

environment "staging" {
  domain     = "staging.swarm.test"
  public_url = "http://127.0.0.1:%[3]d"
  engine     = "swarm"
}
`

// TestSwarm_TheScenarioThroughTheCLI runs obcd's daily work on a swarm
// of the machine's engine and two workers, pulling from a registry with
// a login, under load through the proxy: the first deploy, verify
// through the agent, an upgrade with no failed request, two broken
// releases rolled back at release level, rollback --to the first
// release, history, and a worker's engine stopped: Swarm reschedules
// its tasks, and status says degraded until the node is back, then
// healthy. docker stack ps lists obcd's services, and no secret value is
// in any docker service inspect or docker inspect.
func TestSwarm_TheScenarioThroughTheCLI(t *testing.T) {
	docker, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	reg := testsvc.StartRegistry(t, "swarm-ci", "pull: pass")
	regPort, _ := strconv.Atoi(reg.Addr[strings.LastIndex(reg.Addr, ":")+1:])
	nodes := testsvc.StartSwarm(t, 2, regPort)
	authJSON, _ := json.Marshal(registry.AuthConfig{Username: reg.User, Password: reg.Password, ServerAddress: reg.Addr})
	auth := base64.URLEncoding.EncodeToString(authJSON)

	name := "sw" + strings.ToLower(strconv.FormatInt(time.Now().UnixNano()%(1<<30), 36))
	repo := reg.Addr + "/obcd-test-" + name + "/app"
	for version, opts := range map[string]testsvc.AppImageOptions{
		"v1": {Version: "v1"}, "v2": {Version: "v2"},
		"v3": {Version: "v3", ReadyFails: true}, "v4": {Version: "v4", CrashAtStart: true},
	} {
		ref := repo + ":" + version
		testsvc.BuildAppImage(t, docker, ref, opts)
		pushed, err := docker.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: auth})
		if err == nil {
			err = pushed.Wait(ctx)
		}
		if err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
	}

	// obcd finds the login where the docker CLI keeps it.
	dir := t.TempDir()
	configDir := filepath.Join(dir, "docker-config")
	login := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Password))
	if err := os.MkdirAll(configDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(configDir, "config.json"), fmt.Appendf(nil, `{"auths": {%q: {"auth": %q}}}`, reg.Addr, login), 0o600); err != nil {
		t.Fatal(err)
	}
	sitePort := testsvc.FreePort(t)
	file := filepath.Join(dir, "obcd.hcl")
	if err := os.WriteFile(file, fmt.Appendf(nil, swarmStack, name, repo, sitePort), 0o644); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, ".obcd")
	project := name + "-staging"
	obcd := func(version string, args ...string) *exec.Cmd {
		cmd := exec.Command(obcdBinary(t), append([]string{"-f", file, "--state-dir", stateDir, "--no-color"}, args...)...)
		cmd.Env = append(os.Environ(), "OBCD_VAR_VERSION="+version, "DOCKER_CONFIG="+configDir)
		return cmd
	}
	run := func(want int, version string, args ...string) string {
		t.Helper()
		out, err := obcd(version, args...).CombinedOutput()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatalf("obcd %s: %v", strings.Join(args, " "), err)
		}
		if code != want {
			t.Fatalf("obcd %s (version %s) exited %d, want %d:\n%s", strings.Join(args, " "), version, code, want, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		if out, err := obcd("v1", "down", "staging").CombinedOutput(); err != nil {
			t.Errorf("obcd down: %v\n%s", err, out)
		}
	})
	run(0, "v1", "secrets", "init", "staging")
	store, err := secrets.Load(secrets.Path(stateDir, "staging"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	secretKey, err := store.Value("django_secret_key")
	if err != nil || len(secretKey) < 32 {
		t.Fatalf("the generated secret key: %q, %v", secretKey, err)
	}
	e := &deployEnv{t: t, port: sitePort}
	deploy := func(want int, version string) string {
		t.Helper()
		return run(want, version, "deploy", "staging", "--skip-checks", "--watch", "5s")
	}

	// 1. The first deploy: every node pulls with the login.
	out := deploy(0, "v1")
	for _, want := range []string{"on the swarm", "create", project + "_web", project + "_migrate", "live and stable"} {
		if !strings.Contains(out, want) {
			t.Errorf("the first deploy's output lacks %q:\n%s", want, out)
		}
	}
	if got := e.served(); got != "v1" {
		t.Fatalf("after the first deploy the proxy serves %q, want v1\n%s", got, out)
	}
	stackPS, err := exec.Command("docker", "stack", "ps", project, "--format", "{{.Name}} {{.CurrentState}}").CombinedOutput()
	if err != nil || !strings.Contains(string(stackPS), project+"_web.1") || !strings.Contains(string(stackPS), project+"_proxy.1") {
		t.Errorf("docker stack ps %s does not list obcd's services: %v\n%s", project, err, stackPS)
	}
	// A no-op deploy has nothing to do.
	if out := deploy(0, "v1"); !strings.Contains(out, "nothing to change") {
		t.Errorf("a second deploy of v1 did something:\n%s", out)
	}
	planOut := run(0, "v1", "plan", "staging")
	if !strings.Contains(planOut, "0 services to create, 0 to update") {
		t.Errorf("plan after the no-op deploy:\n%s", planOut)
	}

	// 2. verify: every probe, web's from inside the overlay.
	out = run(0, "v1", "verify", "staging")
	if strings.Contains(out, "declares no address") || !strings.Contains(out, "from inside the network, through the agent") {
		t.Errorf("verify did not run web's probes through the agent:\n%s", out)
	}

	// 3. The upgrade, under load: no request fails.
	if out := run(2, "v2", "plan", "staging"); !strings.Contains(out, "update") || !strings.Contains(out, "image") {
		t.Errorf("the plan of v2 does not show web's update with its cause:\n%s", out)
	}
	if out := run(0, "v2", "deploy", "staging", "--dry-run"); !strings.Contains(out, "on the swarm") || !strings.Contains(out, "1 to update") && !strings.Contains(out, "2 to update") {
		t.Errorf("deploy --dry-run of v2 does not print the swarm's plan:\n%s", out)
	}
	stop := e.load()
	out = deploy(0, "v2")
	ok, failed := stop()
	t.Logf("upgrade to v2: %d of %d requests failed", failed, ok+failed)
	if failed != 0 || ok < 10 {
		t.Errorf("the upgrade to v2 failed %d of %d requests through the proxy\n%s", failed, ok+failed, out)
	}
	if got := e.served(); got != "v2" {
		t.Fatalf("after the upgrade the proxy serves %q, want v2", got)
	}

	// 4. Broken releases: v3 converges but its probes fail; v4 cannot
	// start, and Swarm pauses its update. Both return to v2 at release
	// level, with exit 3.
	for _, broken := range []string{"v3", "v4"} {
		stop := e.load()
		out := deploy(ExitCodeRolledBack, broken)
		ok, failed := stop()
		t.Logf("%s rolled back: %d of %d requests failed", broken, failed, ok+failed)
		if !strings.Contains(out, "rolling back to stable release") || !strings.Contains(out, "rolled-back") {
			t.Errorf("%s: the output does not say it rolled back:\n%s", broken, out)
		}
		if got := e.served(); got != "v2" {
			t.Errorf("after %s the proxy serves %q, want v2", broken, got)
		}
		if failed != 0 {
			t.Errorf("%s and its rollback failed %d of %d requests", broken, failed, ok+failed)
		}
	}

	// 5. rollback --to the first release.
	releases, err := state.OpenLocalStore(filepath.Join(stateDir, "staging")).List(ctx)
	if err != nil || len(releases) == 0 {
		t.Fatalf("releases: %v", err)
	}
	first := releases[0].ID
	run(0, "v2", "rollback", "staging", "--to", first)
	if got := e.served(); got != "v1" {
		t.Errorf("after rollback --to %s the proxy serves %q, want v1", first, got)
	}

	// 6. History.
	var history []struct {
		Version string `json:"version"`
		Outcome string `json:"outcome"`
	}
	if err := json.Unmarshal([]byte(run(0, "v1", "history", "staging", "--json")), &history); err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, r := range history {
		outcomes = append(outcomes, r.Version+":"+r.Outcome)
	}
	if got := strings.Join(outcomes, " "); got != "v1:succeeded v2:succeeded v3:rolled-back v4:rolled-back v1:succeeded" {
		t.Errorf("history = %s", got)
	}

	// What Swarm shows holds no secret value.
	for _, args := range [][]string{
		{"service", "inspect", project + "_web", project + "_migrate", project + "_proxy"},
		append([]string{"inspect"}, containersOf(t, project)...),
	} {
		inspected, err := exec.Command("docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, inspected)
		}
		if strings.Contains(string(inspected), secretKey) {
			t.Errorf("docker %s shows the Django secret key", args[0])
		}
		if args[0] == "service" && !strings.Contains(string(inspected), "SECRET_KEY_FILE=") {
			t.Errorf("web does not get its secret key as a file:\n%.2000s", inspected)
		}
	}

	// 7. A worker's engine dies: the swarm component is down while its
	// node is, Swarm runs its tasks on the others, and it is healthy once
	// the node is back. (The test stack has no database, Redis or logging,
	// critical components, so the overall status is unhealthy throughout:
	// the component is what this part proves.)
	swarmStatus := func() (bool, string, string) {
		out, _ := obcd("v1", "status", "staging", "--json").Output()
		var report struct {
			Overall    string `json:"overall_status"`
			Components map[string]struct {
				Healthy bool   `json:"healthy"`
				Message string `json:"message"`
			} `json:"components"`
		}
		if err := json.Unmarshal(out, &report); err != nil {
			return false, "", fmt.Sprintf("status --json: %v\n%s", err, out)
		}
		c, ok := report.Components["swarm"]
		if !ok {
			return false, report.Overall, fmt.Sprintf("no swarm component:\n%s", out)
		}
		return c.Healthy, report.Overall, c.Message
	}
	if healthy, _, message := swarmStatus(); !healthy {
		t.Fatalf("the swarm component before the worker stops: %s", message)
	}
	nodes.StopWorker(t, 1)
	_, message := waitFor(t, ctx, 90*time.Second, "a swarm component that names a node down", func() (bool, int, string) {
		healthy, overall, message := swarmStatus()
		return !healthy && overall != "healthy" && strings.Contains(message, "is down"), 0, overall + ": " + message
	})
	t.Logf("with worker 1 stopped: %s", message)
	waitFor(t, ctx, 2*time.Minute, "every replica running on the nodes left", func() (bool, int, string) {
		listed, err := docker.ServiceList(ctx, client.ServiceListOptions{Status: true})
		if err != nil {
			return false, 0, err.Error()
		}
		var short []string
		for _, s := range listed.Items {
			if s.Spec.Mode.Replicated != nil && s.ServiceStatus != nil && s.ServiceStatus.RunningTasks < s.ServiceStatus.DesiredTasks {
				short = append(short, fmt.Sprintf("%s %d/%d", s.Spec.Name, s.ServiceStatus.RunningTasks, s.ServiceStatus.DesiredTasks))
			}
		}
		return len(short) == 0, 0, strings.Join(short, ", ")
	})
	if got := e.served(); got != "v1" {
		t.Errorf("with worker 1 down the proxy serves %q, want v1", got)
	}
	if healthy, _, message := swarmStatus(); healthy || !strings.Contains(message, "is down") {
		t.Errorf("with every replica rescheduled and worker 1 still down, the swarm component says healthy=%v: %s", healthy, message)
	}
	nodes.StartWorker(t, 1)
	_, message = waitFor(t, ctx, 2*time.Minute, "a healthy swarm component with the node back", func() (bool, int, string) {
		healthy, overall, message := swarmStatus()
		return healthy, 0, overall + ": " + message
	})
	t.Logf("with worker 1 back: %s", message)
}

// ExitCodeRolledBack is the exit code of a deploy rolled back, as
// cmd/obcd defines it.
const ExitCodeRolledBack = 3

// waitFor polls check until it says done or the limit passes; it fails
// the test with check's last word.
func waitFor(t *testing.T, ctx context.Context, limit time.Duration, what string, check func() (bool, int, string)) (int, string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		done, code, last := check()
		if done {
			return code, last
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("no %s within %s; last: exit %d\n%s", what, limit, code, last)
		}
		time.Sleep(time.Second)
	}
}

// containersOf lists the project's task containers on this machine's
// engine (the manager's node).
func containersOf(t *testing.T, project string) []string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-q", "--filter", "label=com.docker.stack.namespace="+project).CombinedOutput()
	if err != nil {
		t.Fatalf("docker ps: %v\n%s", err, out)
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		t.Fatal("no task container of the project runs on the manager")
	}
	return ids
}
