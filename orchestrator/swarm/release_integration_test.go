package swarm_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/swarm"
)

// TestSwarm_ABrokenReleaseIsRolledBackAtReleaseLevel: a release of three
// services applies in obcd's order (db, then migrate as a job, then web);
// a release whose web cannot start stops at web, where Swarm pauses the
// update with the old tasks serving; applying the first release's specs
// again returns every service to it, and no request through the overlay
// fails throughout.
func TestSwarm_ABrokenReleaseIsRolledBackAtReleaseLevel(t *testing.T) {
	docker, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	reg, _, auth := swarmWithRegistry(t)
	good, broken := reg.Addr+"/obcd/swarm-release:1.0", reg.Addr+"/obcd/swarm-release:2.0-broken"
	pushApp(ctx, t, docker, auth, good, testsvc.AppImageOptions{Version: "1.0"})
	pushApp(ctx, t, docker, auth, broken, testsvc.AppImageOptions{Version: "2.0", CrashAtStart: true})

	project := "obcd-rel-" + randomHex(t)[:6]
	e := &swarm.Engine{API: docker, RegistryAuth: auth, Poll: 200 * time.Millisecond}
	t.Cleanup(func() {
		if err := e.RemoveProject(context.Background(), project); err != nil {
			t.Errorf("remove project: %v", err)
		}
	})
	health := &engine.HealthSpec{Test: []string{"CMD", "/app", "-health"}, Interval: time.Second, Timeout: 2 * time.Second, Retries: 3}
	release := func(web, migrate string) []engine.ServiceSpec {
		return []engine.ServiceSpec{
			{Project: project, Name: "web", Image: web, Replicas: 2, StartFirst: true, Health: health, DependsOn: []string{"migrate"},
				Env: map[string]string{"ROLE": "web"}},
			{Project: project, Name: "migrate", Image: migrate, OneOff: true, Command: []string{"-exit", "0"}, DependsOn: []string{"db"},
				Env: map[string]string{"RELEASE_OF": migrate}},
			{Project: project, Name: "db", Image: good, Replicas: 1, Health: health},
		}
	}
	var order []string
	apply := func(specs []engine.ServiceSpec, id string) ([]swarm.Step, error) {
		order = nil
		_, steps, err := e.Apply(ctx, specs, swarm.Options{Network: swarm.NetworkName(project), Release: id}, 2*time.Minute,
			func(s swarm.Step) { order = append(order, s.Service+" "+string(s.Change)) })
		return steps, err
	}
	first := release(good, good)
	if _, err := apply(first, "r1"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ", "); got != "db created, migrate created, web created" {
		t.Fatalf("the first release applied %q, want db, then migrate, then web", got)
	}

	// Load through a proxy on the overlay for the rest of the test.
	base := startEdge(ctx, t, docker, project, good)
	traffic := startLoad(base)
	defer traffic.Stop()

	// The broken release: migrate runs again (its spec changed), then web
	// cannot start, and Swarm pauses its update.
	_, err = apply(release(broken, broken), "r2")
	if err == nil || !(errors.Is(err, swarm.ErrUpdatePaused) || strings.Contains(err.Error(), "did not converge")) {
		t.Fatalf("the broken release: %v, want web's update paused", err)
	}
	if got := strings.Join(order, ", "); got != "db unchanged, migrate updated, web updated" {
		t.Errorf("the broken release applied %q", got)
	}
	t.Logf("the broken release stopped: %v", err)

	// The rollback is the first release's specs, applied again.
	if _, err := apply(first, "r3"); err != nil {
		out, _ := exec.Command("docker", "service", "ps", "--no-trunc", swarm.ServiceName(project, "web")).CombinedOutput()
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	if got := strings.Join(order, ", "); got != "db unchanged, migrate updated, web updated" {
		t.Errorf("the rollback applied %q", got)
	}
	traffic.Stop()
	traffic.check(t, "during the broken release and its rollback")
	web, err := docker.ServiceInspect(ctx, swarm.ServiceName(project, "web"), client.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := web.Service.Spec.TaskTemplate.ContainerSpec.Image; img != good {
		t.Errorf("after the rollback web runs %s, want %s", img, good)
	}
	for range 4 {
		if resp, err := http.Get(base + "/version"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.TrimSpace(string(body)) != "1.0" {
				t.Errorf("after the rollback a web task serves %q, want 1.0", body)
			}
		}
	}
}
