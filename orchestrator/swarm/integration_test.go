package swarm_test

// The Swarm primitives on a real three-node swarm on this machine
// (testdata/swarm/swarm.sh), every node pulling from a loopback registry
// with a login: a service with secrets and configs, what `docker stack
// ps` and the inspect commands show, and a start-first update under load
// through a proxy on the overlay with no failed request.

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/swarm"
)

func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("X-App-Version")
}

func TestSwarm_ServicesSecretsAndAStartFirstUpdateOnThreeNodes(t *testing.T) {
	docker, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	reg, nodes, auth := swarmWithRegistry(t)
	v1, v2 := reg.Addr+"/obcd/swarm-web:v1", reg.Addr+"/obcd/swarm-web:v2"
	pushApp(ctx, t, docker, auth, v1, testsvc.AppImageOptions{Version: "v1"})
	pushApp(ctx, t, docker, auth, v2, testsvc.AppImageOptions{Version: "v2"})

	project := "obcd-swarm-" + randomHex(t)[:6]
	e := &swarm.Engine{API: docker, RegistryAuth: auth, Poll: 200 * time.Millisecond}
	if _, err := e.EnsureNetwork(ctx, project); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.RemoveProject(context.Background(), project); err != nil {
			t.Errorf("remove project: %v", err)
		}
	})
	password, token := "db-pass-"+randomHex(t), "token-"+randomHex(t)
	spec := engine.ServiceSpec{
		Project: project, Name: "web", Image: v1, Replicas: 3, StartFirst: true,
		Env: map[string]string{"DB_PASSWORD": password, "GREETING": "hello"},
		Files: []engine.FileSpec{
			{Target: "/etc/app/greeting.txt", Mode: 0o644, Data: []byte("hello from a config, v1")},
			{Target: "/run/secrets/token", Mode: 0o600, Data: []byte(token)},
		},
		Health: &engine.HealthSpec{Test: []string{"CMD", "/app", "-health"}, Interval: time.Second, Timeout: 2 * time.Second, Retries: 3},
	}
	opts := swarm.Options{Network: swarm.NetworkName(project), Release: "r1", SecretValues: []string{password, token}}
	deploy := func(spec engine.ServiceSpec, opts swarm.Options) (swarm.Service, swarm.Change, string) {
		t.Helper()
		svc, err := swarm.Translate(spec, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.EnsureObjects(ctx, &svc); err != nil {
			t.Fatal(err)
		}
		change, cause, err := e.Converge(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.WaitConverged(ctx, svc.Spec.Name, 3*time.Minute); err != nil {
			out, _ := exec.Command("docker", "service", "ps", "--no-trunc", svc.Spec.Name).CombinedOutput()
			t.Fatalf("%v\n%s", err, out)
		}
		return svc, change, cause
	}
	first, change, _ := deploy(spec, opts)
	if change != swarm.Created {
		t.Fatalf("first converge: %s, want created", change)
	}

	// What Swarm shows: docker stack ps lists the tasks, on more than one
	// node, and no inspect output holds a secret value.
	ps, err := exec.Command("docker", "stack", "ps", project, "--filter", "desired-state=running", "--format", "{{.Name}} {{.Node}} {{.CurrentState}}").CombinedOutput()
	if err != nil || strings.Count(string(ps), "Running") != 3 {
		t.Fatalf("docker stack ps %s: %v\n%s\nwant 3 running tasks", project, err, ps)
	}
	// The nodes, as the manager assigned the tasks (a network's view of
	// its endpoints comes by gossip, and lags).
	tasks, err := docker.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", swarm.ServiceName(project, "web")).Add("desired-state", "running")})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, task := range tasks.Items {
		hosts = append(hosts, task.NodeID)
	}
	if hosts = slices.Compact(slices.Sorted(slices.Values(hosts))); len(hosts) < 2 {
		t.Errorf("the tasks run on nodes %v, want them spread over the nodes", hosts)
	}
	inspect := func() string {
		var all strings.Builder
		o, _ := exec.Command("docker", "service", "inspect", swarm.ServiceName(project, "web")).CombinedOutput()
		all.Write(o)
		for _, host := range append([]string{""}, nodes.Workers...) {
			args := []string{"ps", "-aq", "--filter", "label=com.docker.swarm.service.name=" + swarm.ServiceName(project, "web")}
			if host != "" {
				args = append([]string{"-H", host}, args...)
			}
			ids, _ := exec.Command("docker", args...).Output()
			for _, id := range strings.Fields(string(ids)) {
				args := []string{"inspect", id}
				if host != "" {
					args = append([]string{"-H", host}, args...)
				}
				o, _ := exec.Command("docker", args...).CombinedOutput()
				all.Write(o)
			}
		}
		return all.String()
	}
	shown := inspect()
	if !strings.Contains(shown, "DB_PASSWORD_FILE=/run/secrets/db_password") {
		t.Fatalf("the inspect output shows no DB_PASSWORD_FILE; is it the service's?\n%.2000s", shown)
	}
	for _, secret := range []string{password, token} {
		if strings.Contains(shown, secret) {
			t.Errorf("docker service inspect or docker inspect shows a secret value")
		}
	}

	// A proxy on the overlay, published on loopback, reads what a task sees.
	base := startEdge(ctx, t, docker, project, v1)
	for path, want := range map[string]string{
		"/file/run/secrets/db_password": password,
		"/file/run/secrets/token":       token,
		"/file/etc/app/greeting.txt":    "hello from a config, v1",
		"/env/DB_PASSWORD_FILE":         "/run/secrets/db_password",
		"/env/GREETING":                 "hello",
	} {
		if status, body, _ := get(t, base+path); status != 200 || body != want {
			t.Errorf("a task's %s: %d %q, want %q", path, status, body, want)
		}
	}
	if status, _, _ := get(t, base+"/env/DB_PASSWORD"); status != http.StatusNotFound {
		t.Errorf("a task has DB_PASSWORD in its environment (%d): the value is in docker inspect", status)
	}

	if _, change, _ := deploy(spec, opts); change != swarm.Unchanged {
		t.Errorf("converging the same spec again: %s, want unchanged", change)
	}

	// A start-first update to v2 with a new config, under load.
	traffic := startLoad(base)
	defer traffic.Stop()
	updated := spec
	updated.Image = v2
	updated.Files = []engine.FileSpec{spec.Files[1], {Target: "/etc/app/greeting.txt", Mode: 0o644, Data: []byte("hello from a config, v2")}}
	opts.Release = "r2"
	second, change, cause := deploy(updated, opts)
	traffic.Stop()
	if change != swarm.Updated || !strings.Contains(cause, "image "+v1+" -> "+v2) || !strings.Contains(cause, "config greeting.txt") {
		t.Errorf("the update: %s (%s), want updated for the image and the config", change, cause)
	}
	traffic.check(t, "during the start-first update")
	for range 6 {
		if _, body, version := get(t, base+"/file/etc/app/greeting.txt"); version != "v2" || body != "hello from a config, v2" {
			t.Errorf("after the update a task serves %s with %q, want v2 with the new config", version, body)
		}
	}

	removed, err := e.RemoveUnused(ctx, project, []swarm.Service{second})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != first.Configs[0].Name {
		t.Errorf("unused objects removed: %v, want only the old config %s", removed, first.Configs[0].Name)
	}

	// migrate as a replicated job: it runs to completion, runs again when
	// its spec changes, and a failing run is an error with its cause.
	job := engine.ServiceSpec{Project: project, Name: "migrate", Image: v2, OneOff: true, Command: []string{"-exit", "0"}, Env: map[string]string{"RUN": "1"}}
	if _, change, _ := deploy(job, opts); change != swarm.Created {
		t.Errorf("the job: %s, want created", change)
	}
	job.Env = map[string]string{"RUN": "2"}
	if _, change, _ := deploy(job, opts); change != swarm.Updated {
		t.Errorf("the job's second run: %s, want updated", change)
	}
	job.Command = []string{"-exit", "3"}
	failing, err := swarm.Translate(job, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.EnsureObjects(ctx, &failing); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Converge(ctx, failing); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitConverged(ctx, failing.Spec.Name, 2*time.Minute); err == nil || !strings.Contains(err.Error(), "task failed") {
		t.Errorf("a job that exits 3: %v, want its failure", err)
	}
}
