//go:build e2e

package main

// e2e_agent_test.go is the OBCMS-shaped stack as production runs it: a
// variant of stacks/e2e.hcl that publishes only nginx's 80 and 443 and
// declares no address, with a streaming replica, deployed through an
// ssh:// docker_host (a real sshd on loopback). Every probe but the public
// site's must then run through the in-network agent, and bad targets,
// a stopped environment, a killed obcd and obcd down are each seen
// through it.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/agent"
)

const privateProject = "obcms-private-staging"

// inNetworkProbes are the probes the private variant must run through the
// agent: every kind but the public site's and the containers'.
var inNetworkProbes = []string{
	"web-health", "web-ready", "web-metrics",
	"pgbouncer-login-obcms_user", "pgbouncer-login-obcms_admin", "pgbouncer-login-obcms_stats",
	"db-migrations", "db-replication", "redis-roundtrip", "celery-workers",
	"prometheus-targets", "prometheus-rules", "prometheus-alertmanagers", "alertmanager-ready",
}

var (
	serviceBlockRE = regexp.MustCompile(`^service "(\w+)" "[\w-]+"`)
	addressLineRE  = regexp.MustCompile(`^\s+address\s+=`)
	portsLineRE    = regexp.MustCompile(`^\s+ports\s+=`)
)

// privateVariant is stacks/e2e.hcl with no address, no published port but
// nginx's, a streaming replica of the database, its own stack name, every
// image from registry, and dockerHost (with certDir for TLS, when set) as
// the environment's engine.
func privateVariant(t *testing.T, dockerHost, certDir, registry string) string {
	t.Helper()
	src, err := os.ReadFile("../../stacks/e2e.hcl")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	kind := ""
	for _, line := range strings.Split(string(src), "\n") {
		if m := serviceBlockRE.FindStringSubmatch(line); m != nil {
			kind = m[1]
		}
		if addressLineRE.MatchString(line) || (portsLineRE.MatchString(line) && kind != "nginx") {
			continue
		}
		out = append(out, line)
		if kind == "postgres" && strings.HasPrefix(strings.TrimSpace(line), "database ") {
			out = append(out, `  replicas = 1`)
		}
	}
	variant := strings.Join(out, "\n")
	host := fmt.Sprintf("docker_host = %q", dockerHost)
	if certDir != "" {
		host += fmt.Sprintf("\n  docker_cert_path = %q", certDir)
	}
	for old, repl := range map[string]string{
		`stack "obcms-e2e"`:                           `stack "obcms-private"`,
		`docker_host = "unix:///var/run/docker.sock"`: host,
		`app_image = "obcms/app"`:                     fmt.Sprintf("app_image = %q", registry+"/obcms/app"),
		`images    = "obcd-e2e"`:                      fmt.Sprintf("images    = %q", registry+"/obcd-e2e"),
	} {
		if !strings.Contains(variant, old) {
			t.Fatalf("stacks/e2e.hcl has no %s to change", old)
		}
		variant = strings.Replace(variant, old, repl, 1)
	}
	if n := strings.Count(variant, "ports "); n != 1 || !strings.Contains(variant, `"127.0.0.1:18080:80", "127.0.0.1:18443:443"`) {
		t.Fatalf("the variant publishes %d port lists, want only nginx's 80 and 443", n)
	}
	return variant
}

func TestE2E_PrivateNetworkThroughTheAgent(t *testing.T) {
	requireE2EImages(t)
	sshd := testsvc.StartSSHD(t)
	sshd.Use(t)
	tlsEngine := testsvc.StartTLSEngine(t, "/var/run/docker.sock")
	reg := testsvc.StartRegistry(t, "obcms-ci", "registry pass: w0rd")
	dockerConfig := pushToRegistry(t, reg, privateImages)
	e := &e2eEnv{t: t, dir: t.TempDir(), project: privateProject, env: []string{"HOME=" + sshd.Home, "DOCKER_CONFIG=" + dockerConfig}}
	e.stateDir = filepath.Join(e.dir, ".obcd")
	for name, src := range map[string]string{
		"obcd.hcl":     privateVariant(t, sshd.URL(), "", reg.Addr),
		"local.hcl":    privateVariant(t, "unix:///var/run/docker.sock", "", reg.Addr),
		"tls.hcl":      privateVariant(t, tlsEngine.Host, tlsEngine.CertDir, reg.Addr),
		"wrong-ca.hcl": privateVariant(t, tlsEngine.Host, tlsEngine.WrongCADir, reg.Addr),
	} {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.removeProject()
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpState()
		}
		e.removeAgents()
		e.removeProject()
	})

	t.Log("1. secrets init, validate --strict, and a deploy through ssh:// that pulls every image from the registry")
	e.mustRun(0, "secrets", "init", "staging")
	e.mustRun(0, "validate", "staging", "--strict")
	deploy := e.mustRun(0, "deploy", "staging", "--yes")
	if !strings.Contains(deploy.stdout+deploy.stderr, "from inside the network through the agent") {
		t.Errorf("the deploy's verification did not run probes through the agent:\n%s", deploy.stdout)
	}
	for _, image := range privateImages {
		if image == "obcms/app:1.1.0" {
			continue
		}
		pulled := reg.Addr + "/" + image
		if !strings.Contains(deploy.stderr, "pulling "+pulled) || !strings.Contains(deploy.stderr, pulled+": pulled in ") {
			t.Errorf("the deploy's progress on stderr shows no pull of %s:\n%s", pulled, deploy.stderr)
		}
	}
	if strings.Contains(deploy.stdout+deploy.stderr, reg.Password) {
		t.Errorf("the deploy's output shows the registry's password")
	}

	t.Log("2. verify through ssh://: every probe passes, all but the site's through the agent")
	e.verifyThroughAgent()
	t.Log("3. verify on the local socket: the same")
	e.verifyThroughAgent("--stack", "local.hcl")

	t.Log("4. bad targets, seen through the agent")
	e.badTargetsThroughTheAgent()

	t.Log("4b. tcp+TLS with client certificates: a wrong CA is refused, then an upgrade to a registry reference, pulled")
	wrong := e.run("deploy", "staging", "--yes", "--stack", "wrong-ca.hcl", "--image", reg.Addr+"/obcms/app:1.1.0")
	if wrong.code != 1 || !strings.Contains(wrong.stdout+wrong.stderr, "not signed by the CA in ca.pem") {
		t.Errorf("a deploy with a wrong CA exited %d, want 1 with a clear message:\n%s\n%s", wrong.code, wrong.stdout, wrong.stderr)
	}
	upgrade := e.mustRun(0, "deploy", "staging", "--yes", "--stack", "tls.hcl", "--image", reg.Addr+"/obcms/app:1.1.0")
	if !strings.Contains(upgrade.stderr, "pulling "+reg.Addr+"/obcms/app:1.1.0") || !deployedRE.MatchString(upgrade.stdout) || deployedRE.FindStringSubmatch(upgrade.stdout)[2] != "1.1.0" {
		t.Errorf("the upgrade over TLS did not pull %s/obcms/app:1.1.0 or deploy 1.1.0:\n%s\n%s", reg.Addr, upgrade.stdout, upgrade.stderr)
	}
	if history := e.mustRun(0, "history", "staging", "--stack", "tls.hcl"); strings.Count(history.stdout, "succeeded") < 2 {
		t.Errorf("history over TLS does not show both releases succeeded:\n%s", history.stdout)
	}

	t.Log("5. a stopped environment: verify exits 1 in under 5 s")
	e.stopProject()
	started := time.Now()
	r := e.run("verify", "staging", "--stack", "local.hcl")
	elapsed := time.Since(started)
	if r.code != 1 || elapsed >= 5*time.Second {
		t.Errorf("verify on a stopped environment exited %d after %v, want 1 in under 5s\n%s\n%s", r.code, elapsed.Round(time.Millisecond), r.stdout, r.stderr)
	}
	for _, name := range []string{"redis-roundtrip", "pgbouncer-login-obcms_user", "web-health"} {
		if !regexp.MustCompile(`(?m)^` + name + `\s.*FAIL`).MatchString(r.stdout) {
			t.Errorf("verify on a stopped environment does not report %s failed:\n%s", name, r.stdout)
		}
	}

	t.Log("6. obcd SIGKILLed during verify: its agent is gone by its deadline")
	e.agentOutlives(syscall.SIGKILL)
	t.Log("7. obcd frozen (SIGSTOP) during verify, its connection open: the agent exits at its deadline")
	e.agentOutlives(syscall.SIGSTOP)

	t.Log("8. obcd down removes a running agent with the environment")
	e.downRemovesTheAgent()
}

// privateImages are the images the private variant runs, pushed to the
// registry by their local names: the e2e images and the app's 1.0.0 and
// 1.1.0.
var privateImages = []string{
	"obcd-e2e/postgres:latest", "obcd-e2e/pgbouncer:latest", "obcd-e2e/redis:latest",
	"obcd-e2e/nginx:latest", "obcd-e2e/prometheus:latest", "obcd-e2e/alertmanager:latest",
	"obcd-e2e/postgres-exporter:latest", "obcd-e2e/redis-exporter:latest",
	"obcd-e2e/nginx-exporter:latest", "obcd-e2e/celery-exporter:latest",
	"obcms/app:1.0.0", "obcms/app:1.1.0",
}

// pushToRegistry pushes each local image to reg as reg.Addr/image, with
// the docker CLI and a docker config that logs in, then removes those
// registry tags from the engine, so that obcd finds them missing and
// pulls them. It returns the DOCKER_CONFIG directory, whose config.json
// has the login. The images stay on the engine by their local names,
// which the other e2e tests run, so a pull finds most layers present and
// fetches the manifests and the rest (orchestrator/engine's registry
// test pulls an image none of whose layers the engine has).
func pushToRegistry(t *testing.T, reg *testsvc.Registry, images []string) string {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Password))
	config := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, reg.Addr, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	docker := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("docker", append([]string{"--config", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("docker %s: %v\n%s\n%s", strings.Join(args, " "), err, out, reg.Log())
		}
	}
	untagAll := func() {
		out, _ := exec.Command("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}").Output()
		for _, ref := range strings.Fields(string(out)) {
			if strings.HasPrefix(ref, reg.Addr+"/") {
				_ = exec.Command("docker", "image", "rm", ref).Run()
			}
		}
	}
	started := time.Now()
	for _, image := range images {
		docker("tag", image, reg.Addr+"/"+image)
		docker("push", "--quiet", reg.Addr+"/"+image)
	}
	untagAll()
	t.Cleanup(untagAll)
	t.Logf("pushed %d images to the registry at %s in %v, and untagged them", len(images), reg.Addr, time.Since(started).Round(time.Second))
	return dir
}

// requireE2EImages fails the test when an e2e image is missing.
func requireE2EImages(t *testing.T) {
	t.Helper()
	for _, image := range e2eImages {
		if out, err := exec.Command("docker", "image", "inspect", "-f", "{{.Id}}", image).CombinedOutput(); err != nil {
			t.Fatalf("image %s is missing (%v: %s): run bash testdata/e2e/images/build.sh, or make e2e", image, err, strings.TrimSpace(string(out)))
		}
	}
}

type verifyReport struct {
	Passed  bool `json:"passed"`
	Results []struct {
		Name      string `json:"name"`
		Target    string `json:"target"`
		Status    string `json:"status"`
		Message   string `json:"message"`
		InNetwork bool   `json:"in_network"`
	} `json:"results"`
	Skipped []string `json:"skipped"`
}

// verifyThroughAgent wants every probe to pass, the in-network ones by
// service name through the agent, nothing skipped, and no agent left.
func (e *e2eEnv) verifyThroughAgent(flags ...string) {
	e.t.Helper()
	r := e.run(append([]string{"verify", "staging", "--json"}, flags...)...)
	var report verifyReport
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		e.t.Fatalf("verify --json: %v\nstdout:\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	through := map[string]bool{}
	for _, p := range report.Results {
		if p.Status != "pass" {
			e.t.Errorf("probe %s (%s): %s: %s", p.Name, p.Target, p.Status, p.Message)
		}
		if p.InNetwork {
			through[p.Name] = true
			if strings.Contains(p.Target, "127.0.0.1") || strings.Contains(p.Target, "localhost") {
				e.t.Errorf("probe %s ran through the agent against %s, not a service name", p.Name, p.Target)
			}
		}
	}
	for _, name := range inNetworkProbes {
		if !through[name] {
			e.t.Errorf("probe %s did not run through the agent", name)
		}
	}
	if len(report.Skipped) > 0 || strings.Contains(r.stdout+r.stderr, "declares no address") {
		e.t.Errorf("verify skipped probes: %q\n%s", report.Skipped, r.stderr)
	}
	if r.code != 0 || !report.Passed {
		e.t.Fatalf("verify exited %d (passed %v), want 0\n%s", r.code, report.Passed, r.stderr)
	}
	if left := e.agents(); len(left) > 0 {
		e.t.Errorf("agent containers left after verify ended: %v", left)
	}
}

// status runs obcd status --json on the local socket, with more of
// obcd's environment.
func (e *e2eEnv) status(env ...string) (int, map[string]any) {
	e.t.Helper()
	saved := e.env
	e.env = append(append([]string{}, e.env...), env...)
	r := e.run("status", "staging", "--json", "--stack", "local.hcl")
	e.env = saved
	var report map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		e.t.Fatalf("status --json: %v\nstdout:\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	return r.code, report
}

// component is a status report's component: healthy, and its message.
func component(report map[string]any, name string) (bool, string) {
	c, _ := report["components"].(map[string]any)[name].(map[string]any)
	healthy, _ := c["healthy"].(bool)
	message, _ := c["message"].(string)
	return healthy, message
}

// badTargetsThroughTheAgent: a wrong PgBouncer password, Redis stopped
// and a Prometheus target down, each reported with its component and the
// overall status.
func (e *e2eEnv) badTargetsThroughTheAgent() {
	e.t.Helper()
	code, report := e.status("OBCD_SECRET_OBCMS_STATS_PASSWORD=not-the-password")
	if healthy, msg := component(report, "database"); code != 1 || report["overall_status"] != "unhealthy" || healthy || !strings.Contains(msg, "obcms_stats") || !strings.Contains(msg, "pgbouncer:6432") {
		e.t.Errorf("a wrong PgBouncer password: exit %d, overall %v, database %v %q; want 1, unhealthy, a failure naming obcms_stats at pgbouncer:6432",
			code, report["overall_status"], healthy, msg)
	}
	if healthy, _ := component(report, "redis"); !healthy {
		e.t.Errorf("a wrong PgBouncer password made redis unhealthy too: %v", report)
	}

	redis := e.project + "-redis-1"
	e.docker("stop", redis)
	code, report = e.status()
	if healthy, msg := component(report, "redis"); code != 1 || report["overall_status"] != "unhealthy" || healthy || !strings.Contains(msg, "redis:6379") {
		e.t.Errorf("redis stopped: exit %d, overall %v, redis %v %q; want 1, unhealthy, a failure at redis:6379", code, report["overall_status"], healthy, msg)
	}
	if healthy, _ := component(report, "database"); !healthy {
		e.t.Errorf("redis stopped made the database unhealthy: %v", report)
	}
	e.docker("start", redis)
	e.awaitHealthy(redis)

	// Prometheus scrapes every 5 s: it sees the exporter gone within a
	// scrape or two, and the status follows.
	exporter := e.project + "-redis-exporter-1"
	e.docker("stop", exporter)
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, report = e.status()
		healthy, msg := component(report, "prometheus")
		if !healthy {
			if code != 1 || report["overall_status"] != "unhealthy" || !strings.Contains(msg, `"redis"`) {
				e.t.Errorf("redis-exporter down: exit %d, overall %v, prometheus %q; want 1, unhealthy, a failure naming job \"redis\"", code, report["overall_status"], msg)
			}
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("redis-exporter stopped 60s ago, and the prometheus component is still healthy: %v", report)
		}
	}
	e.docker("start", exporter)
	e.awaitHealthy(exporter)
}

// awaitHealthy waits, up to a minute, for a container's healthcheck.
func (e *e2eEnv) awaitHealthy(name string) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		state := strings.TrimSpace(e.docker("inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}", name))
		if state == "healthy" || state == "running" {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s is %s a minute after its start", name, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// stopProject stops every container of the project, keeping them.
func (e *e2eEnv) stopProject() {
	e.t.Helper()
	ids := strings.Fields(e.docker("ps", "-q", "--filter", "label=com.docker.compose.project="+e.project))
	if len(ids) > 0 {
		e.docker(append([]string{"stop", "-t", "5"}, ids...)...)
	}
}

// agents lists the project's agent containers, running or not.
func (e *e2eEnv) agents() []string {
	e.t.Helper()
	return strings.Fields(e.docker("ps", "-aq", "--filter", "label="+agent.LabelAgent+"="+e.project))
}

func (e *e2eEnv) removeAgents() {
	if out, err := exec.Command("docker", "ps", "-aq", "--filter", "label="+agent.LabelAgent+"="+e.project).Output(); err == nil {
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			_ = exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
		}
	}
}

// startVerify starts obcd verify --wait in the background, on the local
// socket, and returns it once its agent container exists, with that
// container's ID.
func (e *e2eEnv) startVerify(wait string) (*exec.Cmd, string) {
	e.t.Helper()
	cmd := exec.Command(obcdBinary, "verify", "staging", "--stack", "local.hcl", "--wait", wait, "--state-dir", e.stateDir)
	cmd.Dir = e.dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.dir, "NO_COLOR=1"}, e.env...)
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ids := e.agents(); len(ids) == 1 {
			return cmd, ids[0]
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			e.t.Fatalf("no agent container 30s after verify started: %v", e.agents())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// agentOutlives starts a verify that retries against the stopped
// environment, sends obcd sig while its agent runs, and wants the agent
// gone once its deadline (--deadline, from when it was created) has
// passed. The agent's command line and environment hold no secret.
func (e *e2eEnv) agentOutlives(sig syscall.Signal) {
	e.t.Helper()
	cmd, id := e.startVerify("15s")
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var inspected []struct {
		Created string
		Config  struct {
			Cmd []string
			Env []string
		}
	}
	if err := json.Unmarshal(e.dockerBytes("inspect", id), &inspected); err != nil || len(inspected) != 1 {
		e.t.Fatalf("docker inspect %s: %v", id, err)
	}
	seen := strings.Join(append(inspected[0].Config.Cmd, inspected[0].Config.Env...), " ")
	for _, name := range []string{"obcms_user_password", "obcms_stats_password", "postgres_password", "replication_password"} {
		if value := e.secret(name); strings.Contains(seen, value) {
			e.t.Errorf("the agent's command line or environment holds secret %s: %q", name, seen)
		}
	}
	lifetime := 0 * time.Second
	for i, arg := range inspected[0].Config.Cmd {
		if arg == "--deadline" && i+1 < len(inspected[0].Config.Cmd) {
			lifetime, _ = time.ParseDuration(inspected[0].Config.Cmd[i+1])
		}
	}
	created, err := time.Parse(time.RFC3339Nano, inspected[0].Created)
	if lifetime <= 0 || lifetime > 2*time.Minute || err != nil {
		e.t.Fatalf("the agent's deadline is %v (created %v, %v); want a deadline of at most the verify's wait plus a grace", lifetime, created, err)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		e.t.Fatal(err)
	}
	// The agent exits at its deadline at the latest (plus the grace for its
	// last verdicts), and the engine removes it then.
	gone := created.Add(lifetime + 10*time.Second)
	for len(e.agents()) > 0 {
		if time.Now().After(gone) {
			e.t.Fatalf("after %s (deadline %v), the agent container is still there: %s", sig, lifetime, e.docker("ps", "-a", "--filter", "label="+agent.LabelAgent+"="+e.project))
		}
		time.Sleep(500 * time.Millisecond)
	}
	e.t.Logf("after %s, the agent was gone %v after its creation (deadline %v)", sig, time.Since(created).Round(time.Second), lifetime)
}

// downRemovesTheAgent runs obcd down while a verify's agent runs: the
// agent goes with the environment's containers and network.
func (e *e2eEnv) downRemovesTheAgent() {
	e.t.Helper()
	cmd, _ := e.startVerify("30s")
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	e.mustRun(0, "down", "staging", "--stack", "local.hcl")
	if left := e.agents(); len(left) > 0 {
		e.t.Errorf("agent containers left after obcd down: %v", left)
	}
	if out, _ := exec.Command("docker", "network", "inspect", e.project+"_default").CombinedOutput(); !strings.Contains(string(out), "not found") {
		e.t.Errorf("the project's network is still there after obcd down: %s", out)
	}
}
