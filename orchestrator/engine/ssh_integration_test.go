package engine_test

// The Docker engine through an ssh:// docker_host: a real sshd on a
// loopback port (testsvc.StartSSHD) runs `docker system dial-stdio` for
// Dial, and what obcd does through it lands on the engine
// of this machine, seen through its unix socket.

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obcd/obcd/orchestrator/engine"

	"github.com/moby/moby/client"

	"github.com/obcd/obcd/internal/testsvc"
)

func TestSSHDockerHost_EngineThroughARealSSHD(t *testing.T) {
	local := engineRealDocker(t)
	sshd := testsvc.StartSSHD(t)
	sshd.Use(t) // HOME and the ssh on PATH are the test's client

	api, err := engine.Dial(sshd.URL(), "")
	if err != nil {
		t.Fatalf("engine.Dial(%s): %v", sshd.URL(), err)
	}
	t.Cleanup(func() { api.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pingCtx, pingCancel := context.WithTimeout(ctx, 30*time.Second)
	ping, err := api.Ping(pingCtx, client.PingOptions{NegotiateAPIVersion: true})
	pingCancel()
	if err != nil {
		t.Fatalf("Ping through %s: %v\nsshd log:\n%s", sshd.URL(), err, sshd.Log())
	}
	if ping.APIVersion == "" {
		t.Fatalf("Ping through ssh reports no API version: %+v", ping)
	}
	// The same engine: its ID through ssh is the socket's.
	viaSSH, err := api.Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatalf("Info through ssh: %v", err)
	}
	viaSocket, err := local.Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if viaSSH.Info.ID == "" || viaSSH.Info.ID != viaSocket.Info.ID {
		t.Fatalf("engine ID through ssh %q, through the socket %q", viaSSH.Info.ID, viaSocket.Info.ID)
	}

	project := "obcdssh" + strconv.FormatInt(time.Now().UnixNano(), 36)
	networkName := engine.NetworkName(project)
	t.Cleanup(func() { // through the socket, so it runs even when ssh broke
		cleanupCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = local.NetworkRemove(cleanupCtx, networkName, client.NetworkRemoveOptions{})
	})

	eng := &engine.Engine{API: api}
	networkID, err := eng.EnsureNetwork(ctx, project)
	if err != nil {
		t.Fatalf("EnsureNetwork through ssh: %v", err)
	}
	again, err := eng.EnsureNetwork(ctx, project)
	if err != nil || again != networkID {
		t.Fatalf("second EnsureNetwork through ssh = %q, %v; want %q", again, err, networkID)
	}
	observed, err := eng.Observe(ctx, project)
	if err != nil {
		t.Fatalf("Observe through ssh: %v", err)
	}
	if len(observed) != 0 {
		t.Fatalf("Observe of a new project through ssh = %+v, want none", observed)
	}

	listed, err := local.NetworkList(ctx, client.NetworkListOptions{
		Filters: make(client.Filters).Add("label", engine.LabelProject+"="+project),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(listed.Items) != 1 || listed.Items[0].ID != networkID || listed.Items[0].Name != networkName {
		t.Fatalf("networks of project %s on the local engine = %+v, want %s (%s) created through ssh", project, listed.Items, networkName, networkID)
	}
	if got := listed.Items[0].Labels[engine.LabelNetwork]; got != "default" {
		t.Fatalf("network %s label %s = %q, want default", networkName, engine.LabelNetwork, got)
	}

	if _, err := api.NetworkRemove(ctx, networkID, client.NetworkRemoveOptions{}); err != nil {
		t.Fatalf("NetworkRemove through ssh: %v", err)
	}
	listed, err = local.NetworkList(ctx, client.NetworkListOptions{
		Filters: make(client.Filters).Add("label", engine.LabelProject+"="+project),
	})
	if err != nil || len(listed.Items) != 0 {
		t.Fatalf("after removal through ssh, the local engine lists %+v, %v", listed.Items, err)
	}
}

func TestSSHDockerHost_WrongPortFailsFastWithSSHsError(t *testing.T) {
	engineRealDocker(t)
	sshd := testsvc.StartSSHD(t)
	sshd.Use(t)

	closed := testsvc.FreePort(t) // nothing listens there
	host := "ssh://" + sshd.User + "@127.0.0.1:" + strconv.Itoa(closed)
	api, err := engine.Dial(host, "")
	if err != nil {
		t.Fatalf("engine.Dial(%s): %v", host, err)
	}
	defer api.Close()

	const bound = 20 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	_, err = api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	elapsed := time.Since(start)
	if err == nil {
		t.Fatalf("Ping through %s succeeded; nothing listens on port %d", host, closed)
	}
	if ctx.Err() != nil {
		t.Fatalf("Ping through %s hung until the %s timeout: %v", host, bound, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "ssh") || !strings.Contains(msg, "port "+strconv.Itoa(closed)) || !strings.Contains(msg, "Connection refused") {
		t.Fatalf("Ping through %s failed after %s with %q; want ssh's own reason (Connection refused on port %d)", host, elapsed, msg, closed)
	}
	t.Logf("wrong port fails in %s: %v", elapsed.Round(time.Millisecond), err)
}
