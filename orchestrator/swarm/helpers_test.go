package swarm_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/engine"
)

func randomHex(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// swarmWithRegistry starts a loopback registry with a login and a swarm
// of the machine's engine and two workers that pull from it; it returns
// the registry, the swarm, and the X-Registry-Auth of the login.
func swarmWithRegistry(t *testing.T) (*testsvc.Registry, *testsvc.Swarm, string) {
	t.Helper()
	reg := testsvc.StartRegistry(t, "swarm-ci", "pull: pass")
	port, _ := strconv.Atoi(reg.Addr[strings.LastIndex(reg.Addr, ":")+1:])
	nodes := testsvc.StartSwarm(t, 2, port)
	authJSON, _ := json.Marshal(registry.AuthConfig{Username: reg.User, Password: reg.Password, ServerAddress: reg.Addr})
	return reg, nodes, base64.URLEncoding.EncodeToString(authJSON)
}

// pushApp builds the test app as ref with opts and pushes it.
func pushApp(ctx context.Context, t *testing.T, docker *client.Client, auth, ref string, opts testsvc.AppImageOptions) {
	t.Helper()
	testsvc.BuildAppImage(t, docker, ref, opts)
	pushed, err := docker.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: auth})
	if err == nil {
		err = pushed.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// startEdge runs the test app's proxy mode on the project's overlay
// network, published on a loopback port, in front of the web service by
// its name; it returns the proxy's base URL. The proxy resolves web anew
// for each request and tries the next task when a connect fails, as
// nginx's resolver and proxy_next_upstream do.
func startEdge(ctx context.Context, t *testing.T, docker *client.Client, project, image string) string {
	t.Helper()
	eng := &engine.Engine{API: docker}
	edge, err := eng.Create(ctx, engine.ServiceSpec{Project: project, Name: "edge", Image: image, Command: []string{"-proxy", "http://web:8000"},
		Env:   map[string]string{"HEALTH_URL": "http://127.0.0.1:8080/health/"},
		Ports: []engine.PortSpec{{HostIP: "127.0.0.1", ContainerPort: "8080"}}}, project+"-edge-1", 1, "r1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = docker.ContainerRemove(context.Background(), edge.ID, client.ContainerRemoveOptions{Force: true})
	})
	if err := eng.Start(ctx, edge.ID); err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitHealthy(ctx, edge.ID); err != nil {
		t.Fatal(err)
	}
	inspected, err := docker.ContainerInspect(ctx, edge.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range inspected.Container.NetworkSettings.Ports {
		if len(b) > 0 {
			return "http://127.0.0.1:" + b[0].HostPort
		}
	}
	t.Fatal("the edge proxy publishes no port")
	return ""
}

// load sends GET base/health/ from four clients until stopped.
type load struct {
	requests, failures atomic.Int64
	last               atomic.Value
	stop               chan struct{}
	once               sync.Once
	wg                 sync.WaitGroup
}

func startLoad(base string) *load {
	l := &load{stop: make(chan struct{})}
	for range 4 {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.requests.Add(1)
				resp, err := http.Get(base + "/health/")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = errors.New(resp.Status)
					}
				}
				if err != nil {
					l.failures.Add(1)
					l.last.Store(err.Error())
				}
			}
		})
	}
	return l
}

// Stop ends the load and waits for its clients; it may be called twice.
func (l *load) Stop() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// check wants no failed request, and enough requests to mean something.
func (l *load) check(t *testing.T, during string) {
	t.Helper()
	t.Logf("%d requests through the overlay %s, %d failed", l.requests.Load(), during, l.failures.Load())
	if l.failures.Load() > 0 || l.requests.Load() < 10 {
		t.Errorf("%d of %d requests failed %s (last: %v)", l.failures.Load(), l.requests.Load(), during, l.last.Load())
	}
}
