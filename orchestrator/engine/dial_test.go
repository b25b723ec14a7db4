package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// TestDial_OverSSHRunsDialStdio puts a fake ssh first in PATH
// that checks its arguments and runs `docker system dial-stdio` here, so
// the ssh:// path reaches the real local engine.
func TestDial_OverSSHRunsDialStdio(t *testing.T) {
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		t.Skip("no local Docker engine")
	}
	bin := t.TempDir()
	argsFile := filepath.Join(bin, "args")
	script := "#!/bin/sh\necho \"$@\" > " + argsFile + "\n" +
		"[ \"$1 $2 $3 $4 $5 $6\" = \"-o BatchMode=yes -p 2222 -- deploy@obcms-prod-1\" ] || { echo \"bad ssh args: $*\" >&2; exit 255; }\n" +
		"shift 6\nexec \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("DOCKER_HOST", "")

	docker, err := Dial("ssh://deploy@obcms-prod-1:2222", "")
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ping, err := docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		t.Fatalf("ping over the ssh dialer: %v", err)
	}
	if ping.APIVersion == "" {
		t.Error("no API version over ssh")
	}
	args, err := os.ReadFile(argsFile)
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(args)), "docker system dial-stdio") {
		t.Errorf("ssh ran with %q (%v)", args, err)
	}

	if _, err := Dial("ssh://deploy@obcms-prod-1:2222", ""); err != nil {
		t.Fatal(err)
	}
	failing, err := Dial("ssh://nobody@obcms-prod-1", "")
	if err != nil {
		t.Fatal(err)
	}
	defer failing.Close()
	if _, err := failing.Ping(ctx, client.PingOptions{}); err == nil || !strings.Contains(err.Error(), "bad ssh args") {
		t.Errorf("a failing ssh should surface its stderr, got %v", err)
	}
}

func TestDial_RejectsUnknownSchemes(t *testing.T) {
	for _, host := range []string{"http://example.org:2375", "ssh://", "ssh://host/path", "npipe:////./pipe/docker_engine"} {
		if _, err := Dial(host, ""); err == nil {
			t.Errorf("Dial(%q) accepted", host)
		}
	}
	for _, host := range []string{"unix:///var/run/docker.sock", "tcp://127.0.0.1:2375", "ssh://deploy@host"} {
		if _, err := Dial(host, ""); err != nil {
			t.Errorf("Dial(%q): %v", host, err)
		}
	}
}
