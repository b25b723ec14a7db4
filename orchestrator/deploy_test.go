package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/lock"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/orchestrator/state"
	"github.com/obcd/obcd/templates"
)

// memEngine is an in-memory ContainerEngine: it keeps containers in a
// map and records every step in order, so tests can check what the
// executor does, and when. Images listed in unhealthy never get healthy.
type memEngine struct {
	mu        sync.Mutex
	nextID    int
	byID      map[string]*engine.Container
	log       []string
	unhealthy map[string]bool
	migrate   int      // exit code of one-offs
	observes  int      // Observe calls
	observed  []int    // how many steps were logged before each Observe
	oneOffs   []string // names of the one-offs run
	failures  chan engine.Failure
	applied   []string        // what django_migrations holds, for stacks with manage.py
	reloadErr error           // what the next ReloadFile returns, once
	missing   map[string]bool // image references the engine lacks until they are pulled
	pullErr   error           // what PullImage returns
	// repoDigests are the registry digests of image IDs; pulled, by
	// digest or tag, the image PullImage returns
	repoDigests map[string]string
	pulled      map[string]string
}

func newMemEngine() *memEngine {
	return &memEngine{byID: map[string]*engine.Container{}, unhealthy: map[string]bool{}}
}

func (m *memEngine) record(format string, args ...any) {
	m.log = append(m.log, fmt.Sprintf(format, args...))
}

func (m *memEngine) Observe(_ context.Context, project string) ([]engine.Container, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.observes++
	m.observed = append(m.observed, len(m.log))
	var out []engine.Container
	for _, c := range m.byID {
		out = append(out, *c)
	}
	return out, nil
}

func (m *memEngine) EnsureNetwork(context.Context, string) (string, error)       { return "net", nil }
func (m *memEngine) EnsureVolume(_ context.Context, _, v string) (string, error) { return v, nil }

func (m *memEngine) Inspect(_ context.Context, id string) (engine.Container, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.byID[id]; ok {
		return *c, nil
	}
	return engine.Container{}, fmt.Errorf("no container %s", id)
}

func (m *memEngine) Create(_ context.Context, spec engine.ServiceSpec, name string, number int, release string) (engine.Container, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.byID {
		if c.Name == name {
			return engine.Container{}, fmt.Errorf("%w: %s", engine.ErrNameTaken, name)
		}
	}
	m.nextID++
	c := &engine.Container{ID: fmt.Sprintf("c%d", m.nextID), Name: name, Service: spec.Name,
		Number: number, Hash: spec.Hash(), Image: spec.Image, State: "created", Release: release}
	for _, f := range spec.ReloadedFiles() {
		if c.Files == nil {
			c.Files = map[string]string{}
		}
		c.Files[f.Target] = engine.FileDigest(f.Data)
	}
	m.byID[c.ID] = c
	m.record("create %s (%s)", c.Name, spec.Image)
	return *c, nil
}

func (m *memEngine) ReadFileDigests(_ context.Context, id string, paths []string) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	digests := map[string]string{}
	for _, p := range paths {
		digests[p] = m.byID[id].Files[p]
	}
	return digests, nil
}

func (m *memEngine) ReloadFile(_ context.Context, id string, f engine.FileSpec, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.byID[id]
	if err := m.reloadErr; err != nil {
		m.reloadErr = nil
		m.record("reload %s %s failed", c.Name, path.Base(f.Target))
		return err
	}
	c.Files = maps.Clone(c.Files)
	if c.Files == nil {
		c.Files = map[string]string{}
	}
	c.Files[f.Target] = engine.FileDigest(f.Data)
	m.record("reload %s %s", c.Name, path.Base(f.Target))
	return nil
}

func (m *memEngine) ApplyFile(_ context.Context, id string, f engine.FileSpec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record("apply %s %s", m.byID[id].Name, path.Base(f.Target))
	return nil
}

func (m *memEngine) Start(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byID[id].State = "running"
	m.record("start %s", m.byID[id].Name)
	return nil
}

func (m *memEngine) WaitHealthy(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.byID[id]
	if m.unhealthy[c.Image] {
		m.record("unhealthy %s", c.Name)
		return &engine.ContainerError{Container: c.Name, Reason: "is unhealthy"}
	}
	m.record("healthy %s", c.Name)
	return nil
}

func (m *memEngine) Publish(_ context.Context, id string, spec engine.ServiceSpec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record("publish %s as %s", m.byID[id].Name, spec.Name)
	return nil
}

func (m *memEngine) Retire(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record("retire %s", m.byID[id].Name)
	delete(m.byID, id)
	return nil
}

func (m *memEngine) RunOneOff(_ context.Context, spec engine.ServiceSpec, name, _ string) (int, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.oneOffs = append(m.oneOffs, name)
	if slices.Contains(spec.Command, "shell") {
		listed, _ := json.Marshal(m.applied)
		m.record("list migrations with %s", spec.Image)
		return 0, "some warning\n" + migrationsMarker + string(listed) + "\n", nil
	}
	m.record("run %s (%s) exit %d%s", spec.Name, spec.Image, m.migrate, map[bool]string{true: " once"}[spec.Env["BACKUP_ONCE"] == "1"])
	return m.migrate, "migrations applied", nil
}

func (m *memEngine) Logs(context.Context, string, int) (string, error) { return "last log line", nil }

func (m *memEngine) ImagePresent(_ context.Context, ref string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.missing[ref] {
		return "", false, nil
	}
	return "sha256:" + ref, true, nil
}

func (m *memEngine) RepoDigest(_ context.Context, id string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.repoDigests[id], nil
}

func (m *memEngine) PullImage(_ context.Context, ref string, progress func(string)) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record("pull %s", ref)
	if m.pullErr != nil {
		return "", m.pullErr
	}
	delete(m.missing, ref)
	progress(ref + ": pulled")
	if id, ok := m.pulled[ref]; ok {
		delete(m.missing, id)
		return id, nil
	}
	return "sha256:" + ref, nil
}

func (m *memEngine) TagImage(_ context.Context, src, dst string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record("tag %s as %s", src, dst)
	return nil
}

func (m *memEngine) BuildImage(_ context.Context, _ io.Reader, tag string, _ map[string]*string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record("build %s", tag)
	return nil
}

func (m *memEngine) RemoveProject(_ context.Context, project string, _ bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record("remove project %s", project)
	clear(m.byID)
	return nil
}

func (m *memEngine) RemoveImage(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.byID {
		if "sha256:"+c.Image == id {
			return false, nil
		}
	}
	m.record("remove image %s", id)
	return true, nil
}

func (m *memEngine) Untag(_ context.Context, ref string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record("untag %s", ref)
	return true, nil
}

// WatchFailures streams what a test sends on m.failures (nothing when
// it is nil).
func (m *memEngine) WatchFailures(ctx context.Context, _ string, _ time.Time) (<-chan engine.Failure, <-chan error) {
	return m.failures, nil
}

func (m *memEngine) steps() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.log
	m.log = nil
	return out
}

const memStack = `
stack "mem" {
  app_image = "mem/app"
  version   = var.version
}
variable "version" {
  default = "v1"
}
django {
  migrate_command = ["migrate"]
}
service "web" "web" {
  replicas = 2
}
environment "staging" {
  domain = "staging.mem.test"
}
`

func memDeployer(t *testing.T, engine *memEngine, store state.Store, version string) *Deployer {
	t.Helper()
	d := memDeployerFrom(t, engine, memStack, version)
	d.Store = store
	return d
}

// memDeployerFrom deploys the stack src (as the file mem.hcl) to engine;
// it has no store yet.
func memDeployerFrom(t *testing.T, engine *memEngine, src, version string) *Deployer {
	t.Helper()
	loader := stackhcl.NewLoader(stackhcl.Options{Environment: "staging", Vars: map[string]string{"version": version},
		LookupEnv: func(string) (string, bool) { return "", false }})
	stack, diags := loader.LoadSource("mem.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return &Deployer{Engine: engine, Locker: lock.NewFileLocker(t.TempDir()), Stack: stack, Secrets: templates.MapSecrets{},
		Overlap: -1, Probes: func(*stackhcl.Stack) (probe.Plan, error) { return probe.Plan{}, nil }}
}

// TestDeploy_ExecutorOrderStartFirst pins the executor's order with the
// fake: migrate runs before any web change; web is replaced start-first,
// its new replicas together (each created, started, healthy, published),
// and the old ones retire only after every new one serves; the new
// release's image is tagged stable, by its ID, only once it is proven.
func TestDeploy_ExecutorOrderStartFirst(t *testing.T) {
	engine, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	ctx := context.Background()
	if _, err := memDeployer(t, engine, store, "v1").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	engine.steps()
	if _, err := memDeployer(t, engine, store, "v2").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	got := engine.steps()
	if len(got) != 13 || got[0] != "run migrate (mem/app:v2) exit 0" ||
		!strings.HasPrefix(got[11], "tag sha256:mem/app:v2 as mem/app:stable-") || got[12] != "tag sha256:mem/app:v2 as mem/app:stable" {
		t.Fatalf("executor order:\n%s\nwant migrate, then web, then the stable tags by image ID", strings.Join(got, "\n"))
	}
	// The two new replicas start together, each created, started, healthy
	// and published in that order; the old ones retire only after both.
	position := map[string]int{}
	for i, step := range got {
		position[step] = i
	}
	for _, replica := range []string{"mem-staging-web-3", "mem-staging-web-4"} {
		steps := []string{"create " + replica + " (mem/app:v2)", "start " + replica, "healthy " + replica, "publish " + replica + " as web"}
		for i, step := range steps {
			at, ok := position[step]
			if !ok || (i > 0 && at < position[steps[i-1]]) {
				t.Errorf("%s: %q out of order or missing:\n%s", replica, step, strings.Join(got, "\n"))
			}
		}
		for _, old := range []string{"retire mem-staging-web-1", "retire mem-staging-web-2"} {
			if position[old] < position["publish "+replica+" as web"] {
				t.Errorf("%s before %s is published:\n%s", old, replica, strings.Join(got, "\n"))
			}
		}
	}
	if got[9] != "retire mem-staging-web-1" || got[10] != "retire mem-staging-web-2" {
		t.Errorf("the old replicas do not retire last, in order:\n%s", strings.Join(got, "\n"))
	}
}

// TestDeploy_UnhealthyNewReplicaLeavesTheOldOnesServing: the first new
// replica never gets healthy; it is removed, no old replica is retired,
// and the deploy rolls back to the stable release without touching them.
func TestDeploy_UnhealthyNewReplicaLeavesTheOldOnesServing(t *testing.T) {
	engine, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	ctx := context.Background()
	if _, err := memDeployer(t, engine, store, "v1").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	engine.steps()
	engine.unhealthy["mem/app:v3"] = true
	result, err := memDeployer(t, engine, store, "v3").Deploy(ctx, DeployOptions{})
	if !errors.Is(err, ErrConverge) || result.Release.Outcome != state.OutcomeRolledBack {
		t.Fatalf("err %v, outcome %s", err, result.Release.Outcome)
	}
	for _, step := range engine.steps() {
		if strings.HasPrefix(step, "retire mem-staging-web-1") || strings.HasPrefix(step, "retire mem-staging-web-2") {
			t.Errorf("an old replica was retired: %s", step)
		}
		if strings.HasPrefix(step, "publish") {
			t.Errorf("an unhealthy replica was published: %s", step)
		}
	}
	containers, _ := engine.Observe(ctx, "mem-staging")
	if len(containers) != 2 || containers[0].Image != "mem/app:v1" || containers[1].Image != "mem/app:v1" {
		t.Errorf("after the failed deploy: %+v", containers)
	}
}

// TestDeploy_FailedMigrateStopsBeforeAnyWebChange: the one-off fails, so
// no web container is created or retired.
func TestDeploy_FailedMigrateStopsBeforeAnyWebChange(t *testing.T) {
	engine, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	ctx := context.Background()
	if _, err := memDeployer(t, engine, store, "v1").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	engine.steps()
	engine.migrate = 1
	_, err := memDeployer(t, engine, store, "v2").Deploy(ctx, DeployOptions{})
	if !errors.Is(err, ErrMigrate) {
		t.Fatalf("err = %v, want ErrMigrate", err)
	}
	for _, step := range engine.steps() {
		if strings.HasPrefix(step, "create") || strings.HasPrefix(step, "retire") {
			t.Errorf("web changed after a failed migrate: %s", step)
		}
	}
}

// TestDeploy_BackupBeforeMigrations: with a backup job in the stack, a
// deploy that runs migrations first takes one pg_dump (BACKUP_ONCE).
func TestDeploy_BackupBeforeMigrations(t *testing.T) {
	withBackup := strings.Replace(memStack, `service "web" "web" {`, `secret "pg" {}
service "postgres" "db" {
  superuser_password = secret.pg
}
service "backup" "backup" {}
service "web" "web" {`, 1)
	engine0, store0 := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	load := func(version string) *Deployer {
		loader := stackhcl.NewLoader(stackhcl.Options{Environment: "staging", Vars: map[string]string{"version": version},
			LookupEnv: func(string) (string, bool) { return "", false }})
		stack, diags := loader.LoadSource("mem.hcl", []byte(withBackup))
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return &Deployer{Engine: engine0, Store: store0, Locker: lock.NewFileLocker(t.TempDir()), Stack: stack, Secrets: templates.MapSecrets{"pg": "pgSuperPass7Qm2"},
			Overlap: -1, Probes: func(*stackhcl.Stack) (probe.Plan, error) { return probe.Plan{}, nil }}
	}
	ctx := context.Background()
	if _, err := load("v1").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	engine0.steps()
	if _, err := load("v2").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	steps := strings.Join(engine0.steps(), "\n")
	backup := strings.Index(steps, "run backup (postgres:15-bookworm) exit 0 once")
	migrate := strings.Index(steps, "run migrate")
	if backup < 0 || migrate < 0 || backup > migrate {
		t.Errorf("want a one-shot backup before migrate:\n%s", steps)
	}
}

// TestDeploy_PullsAMissingImageBeforeAnyChange: an image the engine lacks
// and no build block makes is pulled, shown in the plan and in the
// progress, before the first change; a pull that fails stops the deploy
// with nothing changed, and the plan the deploy shows is what it did.
func TestDeploy_PullsAMissingImageBeforeAnyChange(t *testing.T) {
	ctx := context.Background()
	engine := newMemEngine()
	engine.missing = map[string]bool{"mem/app:v1": true}
	var progress []string
	d := memDeployer(t, engine, state.OpenLocalStore(filepath.Join(t.TempDir(), "staging")), "v1")
	d.Events = func(e Event) {
		if e.Phase == "images" {
			progress = append(progress, e.Message)
		}
	}
	planned, err := d.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	images := planned.Plan.Images
	if len(images) != 1 || !images[0].Pull || images[0].Image != "mem/app:v1" || !strings.Contains(planned.Plan.String(), "pull mem/app:v1 (") {
		t.Fatalf("plan images = %+v, want one pull of mem/app:v1 shown in the plan:\n%s", images, planned.Plan)
	}
	if _, err := d.Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	steps := engine.steps()
	if len(steps) == 0 || steps[0] != "pull mem/app:v1" || slices.Index(steps, "pull mem/app:v1") != slices.IndexFunc(steps, func(s string) bool { return strings.HasPrefix(s, "pull ") }) {
		t.Fatalf("steps:\n%s\nwant the pull first, once", strings.Join(steps, "\n"))
	}
	if len(progress) < 2 || progress[0] != "pulling mem/app:v1" || progress[1] != "mem/app:v1: pulled" {
		t.Errorf("pull progress = %q", progress)
	}

	failing := newMemEngine()
	failing.missing = map[string]bool{"mem/app:v1": true}
	failing.pullErr = errors.New("pull mem/app:v1: manifest unknown")
	store := state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	_, err = memDeployer(t, failing, store, "v1").Deploy(ctx, DeployOptions{})
	if err == nil || !strings.Contains(err.Error(), "manifest unknown") {
		t.Fatalf("a failed pull: deploy returned %v", err)
	}
	if steps := failing.steps(); len(steps) != 1 || steps[0] != "pull mem/app:v1" {
		t.Errorf("a failed pull changed something:\n%s", strings.Join(steps, "\n"))
	}
}
