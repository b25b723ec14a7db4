package orchestrator

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/lock"
	"github.com/obcd/obcd/orchestrator/state"
	"github.com/obcd/obcd/templates"
)

// deployStack is a stack of the test app: two web replicas rolled
// start-first behind a proxy that re-resolves the web alias per request.
// Readiness (/ready/) is the web healthcheck, as the rendered stacks do.
const deployStack = `
stack "%[1]s" {
  app_image = "%[2]s"
  version   = var.version
}

variable "version" {
  default = "v1"
}

django {
  migrate_command = ["/app", "-exit", "0"]
}

service "web" "web" {
  replicas = 2
  address  = "127.0.0.1:%[3]d"
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
  image   = "%[2]s:v1"
  command = ["-proxy", "http://web:8000"]
  ports   = ["127.0.0.1:%[3]d:8080"]
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
  domain     = "staging.deploy.test"
  public_url = "http://127.0.0.1:%[3]d"
}
`

type deployEnv struct {
	t       testing.TB
	engine  *engine.Engine
	store   *state.LocalStore
	locker  lock.Locker
	file    string
	repo    string
	project string
	port    int
}

func newDeployEnv(t testing.TB) *deployEnv {
	t.Helper()
	api, err := engine.Dial("unix:///var/run/docker.sock", "")
	if err != nil {
		t.Skipf("no Docker engine: %v", err)
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := "dt" + hex.EncodeToString(suffix)
	e := &deployEnv{t: t, engine: &engine.Engine{API: api}, repo: "obcd-test-" + name + "/app", port: testsvc.FreePort(t)}
	e.project = name + "-staging"
	dir := t.TempDir()
	e.file = filepath.Join(dir, "obcd.hcl")
	if err := os.WriteFile(e.file, []byte(fmt.Sprintf(deployStack, name, e.repo, e.port)), 0o644); err != nil {
		t.Fatal(err)
	}
	e.store = state.OpenLocalStore(filepath.Join(dir, ".obcd", "staging"))
	e.locker = lock.NewFileLocker(filepath.Join(dir, ".obcd", "staging"))
	testsvc.BuildAppImage(t, api, e.repo+":v1", testsvc.AppImageOptions{Version: "v1"})
	testsvc.BuildAppImage(t, api, e.repo+":v2", testsvc.AppImageOptions{Version: "v2"})
	testsvc.BuildAppImage(t, api, e.repo+":v3", testsvc.AppImageOptions{Version: "v3", ReadyFails: true})
	testsvc.BuildAppImage(t, api, e.repo+":v4", testsvc.AppImageOptions{Version: "v4", CrashAtStart: true})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.engine.RemoveProject(ctx, e.project, true); err != nil {
			t.Logf("cleanup: %v", err)
		}
		tags := []string{":stable"}
		releases, _ := e.store.List(ctx)
		for _, r := range releases {
			tags = append(tags, ":stable-"+r.ID)
		}
		for _, tag := range tags {
			_, _ = api.ImageRemove(ctx, e.repo+tag, imageRemoveOptions())
		}
	})
	return e
}

func (e *deployEnv) deployer(version string) *Deployer {
	e.t.Helper()
	loader := stackhcl.NewLoader(stackhcl.Options{Environment: "staging", Vars: map[string]string{"version": version},
		LookupEnv: func(string) (string, bool) { return "", false }})
	stack, diags := loader.Load(e.file)
	if diags.HasErrors() {
		e.t.Fatal(diags)
	}
	return &Deployer{Engine: e.engine, Docker: e.engine.API, Store: e.store, Locker: e.locker, Stack: stack, Secrets: templates.MapSecrets{},
		Verify: 15 * time.Second, HealthTimeout: 10 * time.Second, Overlap: 500 * time.Millisecond,
		Events: func(ev Event) { e.t.Logf("[%s] %s %s", ev.Phase, ev.Container, ev.Message) }}
}

// served asks the proxy which version answers.
func (e *deployEnv) served() string {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/version", e.port))
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(body))
}

// load sends steady requests through the proxy until stopped and counts
// the ones that failed; it logs the first failures, with the time and
// why, to set beside the deploy's progress.
func (e *deployEnv) load() (stop func() (ok, failed int64)) {
	var okCount, failCount atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 3 * time.Second}
		for {
			select {
			case <-done:
				return
			default:
			}
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/health/", e.port))
			why := ""
			switch {
			case err != nil:
				why = err.Error()
			case resp.StatusCode != http.StatusOK:
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				why = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
			}
			if why == "" {
				okCount.Add(1)
			} else if failCount.Add(1) <= 5 {
				e.t.Logf("load: request failed at %s: %s", time.Now().Format("15:04:05.000"), why)
			}
			if resp != nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() (int64, int64) {
		close(done)
		wg.Wait()
		return okCount.Load(), failCount.Load()
	}
}

// obcdCommand is the obcd binary run on the env's stack and state, with
// the stack's version variable set to version.
func (e *deployEnv) obcdCommand(t testing.TB, version string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(obcdBinary(t), append([]string{"-f", e.file, "--state-dir", filepath.Join(filepath.Dir(e.file), ".obcd"), "--no-color"}, args...)...)
	cmd.Env = append(os.Environ(), "OBCD_VAR_VERSION="+version)
	return cmd
}

func (e *deployEnv) webIDs() []string {
	e.t.Helper()
	containers, err := e.engine.Observe(context.Background(), e.project)
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	for _, c := range containers {
		if c.Service == "web" && c.State == "running" {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// TestDeploy_UpgradeRollbackAndHistoryOnTheRealEngine walks the deploy
// engine through its life on this machine's Docker engine.
func TestDeploy_UpgradeRollbackAndHistoryOnTheRealEngine(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()

	first, err := e.deployer("v1").Deploy(ctx, DeployOptions{})
	if err != nil {
		t.Fatalf("first deploy: %v\n%s", err, first.Report)
	}
	if first.Plan.Count(ActionCreate) != 3 || !first.Release.Stable || e.served() != "v1" {
		t.Fatalf("first deploy: plan\n%s stable=%v served %q", first.Plan, first.Release.Stable, e.served())
	}

	began := time.Now()
	noop, err := e.deployer("v1").Deploy(ctx, DeployOptions{})
	if err != nil || noop.Plan.Changes() {
		t.Fatalf("no-op deploy changed something: %v\n%s", err, noop.Plan)
	}
	t.Logf("no-op deploy took %s", time.Since(began))

	stop := e.load()
	upgrade, err := e.deployer("v2").Deploy(ctx, DeployOptions{})
	ok, failed := stop()
	if err != nil {
		t.Fatalf("upgrade: %v\n%s", err, upgrade.Report)
	}
	if failed != 0 || ok == 0 {
		t.Errorf("upgrade dropped %d of %d requests through the proxy", failed, ok+failed)
	}
	if e.served() != "v2" || !upgrade.Release.Stable {
		t.Errorf("after upgrade: served %q, stable %v", e.served(), upgrade.Release.Stable)
	}
	if _, present, _ := e.engine.ImagePresent(ctx, e.repo+":stable"); !present {
		t.Error("the running v1 image was not tagged stable before the upgrade")
	}

	for _, broken := range []string{"v3", "v4"} {
		v2Containers := e.webIDs()
		stop := e.load()
		began := time.Now()
		result, err := e.deployer(broken).Deploy(ctx, DeployOptions{})
		elapsed := time.Since(began)
		ok, failed := stop()
		if err == nil || !errors.Is(err, ErrConverge) {
			t.Fatalf("%s deployed: %v", broken, err)
		}
		if !errors.Is(err, ErrRolledBack) || result.Release.Outcome != state.OutcomeRolledBack || result.Report == "" {
			t.Errorf("%s: rolled back %v, outcome %s, report %q", broken, errors.Is(err, ErrRolledBack), result.Release.Outcome, result.Report)
		}
		if got := e.webIDs(); strings.Join(got, ",") != strings.Join(v2Containers, ",") {
			t.Errorf("%s: v2 web containers changed: %v -> %v", broken, v2Containers, got)
		}
		if e.served() != "v2" || failed != 0 {
			t.Errorf("%s: served %q afterwards, %d of %d requests failed", broken, e.served(), failed, ok+failed)
		}
		if limit := 10*time.Second + 15*time.Second + 5*time.Second; elapsed > limit {
			t.Errorf("%s: rollback took %s, more than the health deadline and verify window plus 5s", broken, elapsed)
		}
		t.Logf("%s rolled back in %s: %s", broken, elapsed, firstLine(result.Report))
	}

	if _, err := e.deployer("v3").Deploy(ctx, DeployOptions{}); !errors.Is(err, ErrRefused) {
		t.Errorf("a configuration that failed before was not refused: %v", err)
	}

	rollback, err := e.deployer("v2").Rollback(ctx, RollbackOptions{To: first.Release.ID})
	if err != nil {
		t.Fatalf("rollback --to v1: %v", err)
	}
	if e.served() != "v1" {
		t.Errorf("after rollback to the first release, served %q", e.served())
	}

	history, err := e.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, r := range history {
		outcomes = append(outcomes, r.Version+":"+string(r.Outcome))
	}
	if got := strings.Join(outcomes, " "); got != "v1:succeeded v2:succeeded v3:rolled-back v4:rolled-back v1:succeeded" {
		t.Errorf("history = %s, want the rollback to v1 as a release of its own", got)
	}
	stable, _, _ := state.Stable(ctx, e.store)
	if stable.ID != rollback.Release.ID || stable.RollbackOf != first.Release.ID || stable.ConfigHash != first.Release.ConfigHash {
		t.Errorf("stable after rollback --to = %s (rollback of %q), want the rollback's record %s of %s",
			stable.ID, stable.RollbackOf, rollback.Release.ID, first.Release.ID)
	}
}

func imageRemoveOptions() client.ImageRemoveOptions { return client.ImageRemoveOptions{Force: true} }

// BenchmarkDeploy_NoOp measures a deploy that finds nothing to change:
// render, one observe, plan. Target: well under 1s.
func BenchmarkDeploy_NoOp(b *testing.B) {
	e := newDeployEnv(b)
	e.t = silent{b}
	if _, err := e.deployer("v1").Deploy(context.Background(), DeployOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		result, err := e.deployer("v1").Deploy(context.Background(), DeployOptions{})
		if err != nil || result.Plan.Changes() {
			b.Fatalf("not a no-op: %v", err)
		}
	}
}

// BenchmarkDeploy_BrokenReleaseBackToStable measures the time from
// deploying a release whose /ready/ fails until stable serves again
// (verified), with v2 serving throughout.
func BenchmarkDeploy_BrokenReleaseBackToStable(b *testing.B) {
	e := newDeployEnv(b)
	e.t = silent{b}
	if _, err := e.deployer("v2").Deploy(context.Background(), DeployOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		result, err := e.deployer("v3").Deploy(context.Background(), DeployOptions{Force: true})
		if err == nil || result.Release.Outcome != state.OutcomeRolledBack || e.served() != "v2" {
			b.Fatalf("no rollback: %v", err)
		}
	}
}

// silent drops the deployer's event log lines from benchmark output.
type silent struct{ testing.TB }

func (silent) Logf(string, ...any) {}

// TestDeploy_KilledHalfwayThenConverges kills `obcd deploy` with SIGKILL
// in the middle of rolling web, then shows the lock is reported stale,
// unlock breaks it, a new deploy converges, and history stays consistent.
func TestDeploy_KilledHalfwayThenConverges(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	if _, err := e.deployer("v1").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	obcd := func(args ...string) *exec.Cmd { return e.obcdCommand(t, "v2", args...) }

	deploy := obcd("deploy", "staging", "--skip-checks")
	stderr, err := deploy.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := deploy.Start(); err != nil {
		t.Fatal(err)
	}
	scanner := bufio.NewScanner(stderr)
	killed := false
	var seen []string
	for scanner.Scan() {
		seen = append(seen, scanner.Text())
		// Kill once the first new web replica is in rotation: web is half rolled.
		if strings.Contains(scanner.Text(), "healthy, in rotation") && strings.Contains(scanner.Text(), "-web-") {
			if err := deploy.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
			break
		}
	}
	_ = deploy.Wait()
	if !killed {
		t.Fatalf("the deploy finished before it could be killed halfway; it said:\n%s", strings.Join(seen, "\n"))
	}

	refused, err := obcd("deploy", "staging", "--skip-checks").CombinedOutput()
	if err == nil || !strings.Contains(string(refused), "obcd unlock") {
		t.Fatalf("a deploy after the kill must report the stale lock and how to break it:\n%s", refused)
	}
	if out, err := obcd("unlock", "staging").CombinedOutput(); err != nil {
		t.Fatalf("unlock: %v\n%s", err, out)
	}
	if out, err := obcd("deploy", "staging", "--skip-checks").CombinedOutput(); err != nil {
		t.Fatalf("deploy after unlock did not converge: %v\n%s", err, out)
	}
	if e.served() != "v2" {
		t.Errorf("served %q after converging", e.served())
	}
	containers, err := e.engine.Observe(ctx, e.project)
	if err != nil {
		t.Fatal(err)
	}
	web := 0
	for _, c := range containers {
		if c.Service == "web" {
			web++
			if !strings.HasSuffix(c.Image, ":v2") || c.State != "running" {
				t.Errorf("leftover web container %s (%s, %s)", c.Name, c.Image, c.State)
			}
		}
	}
	if web != 2 {
		t.Errorf("%d web containers after converging, want 2", web)
	}
	history, err := e.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, r := range history {
		outcomes = append(outcomes, r.Version+":"+string(r.Outcome))
	}
	if got := strings.Join(outcomes, " "); got != "v1:succeeded v2:interrupted v2:succeeded" {
		t.Errorf("history = %s", got)
	}
}

// TestDeploy_BuildsAMissingImageFromTheStackContext builds a service's
// image through the API from its build block when the engine lacks it.
func TestDeploy_BuildsAMissingImageFromTheStackContext(t *testing.T) {
	api, err := engine.Dial("unix:///var/run/docker.sock", "")
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	base := "obcd-test-build" + hex.EncodeToString(suffix) + "/base:v1"
	built := "obcd-test-build" + hex.EncodeToString(suffix) + "/app:v1"
	testsvc.BuildAppImage(t, api, base, testsvc.AppImageOptions{Version: "base"})
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte("FROM "+base+"\nLABEL dev.obcd.test=built\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("stack \"bt\" {\n  app_image = %q\n  version = \"v1\"\n}\nservice \"web\" \"web\" {\n  build {\n    context = \"app\"\n  }\n}\nenvironment \"staging\" {\n  domain = \"b.test\"\n}\n",
		strings.TrimSuffix(built, ":v1"))
	file := filepath.Join(dir, "obcd.hcl")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	stack, diags := stackhcl.NewLoader(stackhcl.Options{Environment: "staging"}).Load(file)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	eng := &engine.Engine{API: api}
	t.Cleanup(func() { _, _ = api.ImageRemove(context.Background(), built, imageRemoveOptions()) })
	d := &Deployer{Engine: eng, Stack: stack}
	// The plan lists the missing image with its build context; applying it builds it.
	build := func(spec engine.ServiceSpec) (string, error) {
		planned := &Planned{Plan: Plan{Images: planImages([]engine.ServiceSpec{spec}, stack, nil)}, Release: state.Release{ImageDigests: map[string]string{}, RepoDigests: map[string]string{}}}
		err := d.executor(planned).buildImages(context.Background())
		return planned.Release.ImageDigests[spec.Name], err
	}
	id, err := build(engine.ServiceSpec{Name: "web", Image: built})
	if err != nil || id == "" {
		t.Fatalf("build: %v", err)
	}
	if _, present, _ := eng.ImagePresent(context.Background(), built); !present {
		t.Fatal("image not on the engine after the build")
	}
	// One without a build block is pulled, and one no registry has is a
	// failed pull that names it (here no registry is reachable at all).
	if _, err := build(engine.ServiceSpec{Name: "worker", Image: "obcd-test-nowhere/none:v9"}); err == nil || !strings.Contains(err.Error(), "pull obcd-test-nowhere/none:v9") {
		t.Errorf("a missing image without a build block: %v, want its failed pull", err)
	}
}

func TestDeploy_ImageRebuiltUnderTheSameTagIsRolledOut(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	if first, err := e.deployer("v1").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatalf("first deploy: %v\n%s", err, first.Report)
	}
	api := e.engine.API.(testsvc.AppImageAPI)
	testsvc.BuildAppImage(t, api, e.repo+":v1", testsvc.AppImageOptions{Version: "v1-rebuilt"})

	again, err := e.deployer("v1").Deploy(ctx, DeployOptions{})
	if err != nil {
		t.Fatalf("deploy of the rebuilt v1: %v\n%s", err, again.Report)
	}
	// web's two replicas and the proxy, which runs the same image.
	rebuilt := 0
	for _, a := range again.Plan.Actions {
		if a.Kind == ActionRecreate && strings.HasPrefix(a.Reason, "image rebuilt: "+e.repo+":v1 is now") {
			rebuilt++
		}
	}
	if rebuilt != 3 {
		t.Errorf("plan for a rebuilt tag, want web-1, web-2 and the proxy replaced as rebuilt:\n%s", again.Plan)
	}
	if served := e.served(); served != "v1-rebuilt" {
		t.Errorf("served %q after deploying the rebuilt tag, want v1-rebuilt", served)
	}
}

// TestDeploy_SavedPlanOnTheRealEngine: a saved plan applies exactly on
// the real engine, and one made before a container was removed by hand is
// refused without a change.
func TestDeploy_SavedPlanOnTheRealEngine(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	if _, err := e.deployer("v1").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	saved := savedRoundTrip(t, e.deployer("v2"))
	result, err := e.deployer("v2").Deploy(ctx, DeployOptions{Saved: saved})
	if err != nil {
		t.Fatalf("deploy of the saved plan: %v\n%s", err, result.Report)
	}
	if result.Release.ID != saved.Release.ID || e.served() != "v2" {
		t.Fatalf("applied release %s serving %q; want the saved release %s serving v2", result.Release.ID, e.served(), saved.Release.ID)
	}
	containers, err := e.engine.Observe(ctx, e.project)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range containers {
		if c.Release != saved.Release.ID && c.Service == "web" {
			t.Errorf("web container %s belongs to release %s, not the saved plan's", c.Name, c.Release)
		}
	}

	stale := savedRoundTrip(t, e.deployer("v1"))
	var removed string
	for _, c := range containers {
		if c.Service == "web" {
			removed = c.Name
			if _, err := e.engine.API.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	_, err = e.deployer("v1").Deploy(ctx, DeployOptions{Saved: stale})
	if !errors.Is(err, ErrStalePlan) || !strings.Contains(err.Error(), "container "+removed+" was removed") {
		t.Fatalf("deploy of a plan made before %s was removed: %v, want ErrStalePlan naming it", removed, err)
	}
	if e.served() != "v2" {
		t.Errorf("a refused plan changed what serves: %q", e.served())
	}
}

var (
	obcdBuild    sync.Once
	obcdBuilt    string
	obcdBuildErr error
	obcdBuildDir string
)

// obcdBinary is the obcd command, built once for the tests that run it
// as a second process.
func obcdBinary(t testing.TB) string {
	t.Helper()
	obcdBuild.Do(func() {
		if obcdBuildDir, obcdBuildErr = os.MkdirTemp("", "obcd-bin-"); obcdBuildErr != nil {
			return
		}
		obcdBuilt = filepath.Join(obcdBuildDir, "obcd")
		build := exec.Command("go", "build", "-o", obcdBuilt, "../cmd/obcd")
		build.Env = append(os.Environ(), "CGO_ENABLED=0") // static: the in-network agent runs it
		if out, err := build.CombinedOutput(); err != nil {
			obcdBuildErr = fmt.Errorf("build obcd: %v\n%s", err, out)
		}
	})
	if obcdBuildErr != nil {
		t.Fatal(obcdBuildErr)
	}
	return obcdBuilt
}
