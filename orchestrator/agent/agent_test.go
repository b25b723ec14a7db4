package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/obcd/obcd/orchestrator/probe"
)

// TestServe_RunsEachRoundAndStreamsItsVerdicts: the agent's side reads a
// round from its input, builds each check from its config, writes every
// verdict with the spec's index and then the end of the round; a line
// that is not a request is answered with why; the end of its input ends
// it.
func TestServe_RunsEachRoundAndStreamsItsVerdicts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health/" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	specs := []probe.Spec{
		{Name: "health", Critical: true, InNetwork: true, Config: &probe.Config{HTTP: &probe.HTTPConfig{URL: srv.URL + "/health/"}}},
		{Name: "missing", Critical: true, InNetwork: true, Config: &probe.Config{HTTP: &probe.HTTPConfig{URL: srv.URL + "/nope/"}}},
	}
	line, err := json.Marshal(request{ID: 7, OnDemand: true, Timeout: 5 * time.Second, Specs: specs})
	if err != nil {
		t.Fatal(err)
	}
	in := strings.NewReader(string(line) + "\nnot json\n")
	out, feed := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- Serve(context.Background(), in, feed)
		feed.Close()
	}()
	var replies []reply
	scanner := bufio.NewScanner(out)
	for scanner.Scan() {
		var r reply
		if err := json.Unmarshal(scanner.Bytes(), &r); err != nil {
			t.Fatalf("reply %q: %v", scanner.Text(), err)
		}
		replies = append(replies, r)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve at the end of its input: %v", err)
	}
	if len(replies) != 4 {
		t.Fatalf("replies %+v, want two verdicts, the end of the round, and a refusal", replies)
	}
	verdicts := map[int]probe.Result{}
	for _, r := range replies[:2] {
		if r.ID != 7 || r.Result == nil {
			t.Fatalf("reply %+v, want a verdict of round 7", r)
		}
		verdicts[r.Index] = *r.Result
	}
	if v := verdicts[0]; v.Name != "health" || v.Status != probe.StatusPass || !v.InNetwork {
		t.Errorf("verdict 0 = %+v, want health passed, in network", v)
	}
	if v := verdicts[1]; v.Name != "missing" || v.Status != probe.StatusFail || !strings.Contains(v.Message, "404") {
		t.Errorf("verdict 1 = %+v, want missing failed on its 404", v)
	}
	if !replies[2].Done || replies[2].ID != 7 {
		t.Errorf("reply 2 = %+v, want the end of round 7", replies[2])
	}
	if !strings.Contains(replies[3].Error, "not valid") {
		t.Errorf("reply 3 = %+v, want a refusal of the line that is not JSON", replies[3])
	}
}

// TestServe_EndsAtItsDeadlineWithItsInputOpen: with obcd gone silent but
// its connection open, the agent still ends at its deadline.
func TestServe_EndsAtItsDeadlineWithItsInputOpen(t *testing.T) {
	in, _ := io.Pipe() // never written, never closed
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := Serve(ctx, in, io.Discard)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Serve = %v, want the deadline", err)
	}
}

// versionAPI answers ServerVersion as an engine of os/arch would.
type versionAPI struct {
	API
	os, arch string
}

func (v versionAPI) ServerVersion(context.Context, client.ServerVersionOptions) (client.ServerVersionResult, error) {
	return client.ServerVersionResult{Os: v.os, Arch: v.arch}, nil
}

func staticBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tiny\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", "tiny", ".")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "tiny")
}

// TestAvailable_SaysWhyTheAgentCannotRun: an engine of another
// architecture, a dynamically linked obcd and a file that is not an
// executable each get a clear reason, wrapping ErrUnavailable; a static
// binary on an engine of its architecture is available.
func TestAvailable_SaysWhyTheAgentCannotRun(t *testing.T) {
	static := staticBinary(t)
	other := map[string]string{"amd64": "arm64"}[runtime.GOARCH]
	if other == "" {
		other = "amd64"
	}
	notELF := filepath.Join(t.TempDir(), "obcd")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dynamic, err := exec.LookPath("ls") // Debian's ls is dynamically linked
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, binary, os, arch string
		want                   string // "" = available
	}{
		{"static on its architecture", static, "linux", runtime.GOARCH, ""},
		{"another architecture", static, "linux", other, "the Docker engine runs linux/" + other + " and this obcd is built for linux/" + runtime.GOARCH},
		{"a Windows engine", static, "windows", runtime.GOARCH, "runs windows/"},
		{"dynamically linked", dynamic, "linux", runtime.GOARCH, "dynamically linked; build it with CGO_ENABLED=0"},
		{"not an executable", notELF, "linux", runtime.GOARCH, "is not a Linux executable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := &Agent{API: versionAPI{os: c.os, arch: c.arch}, Binary: c.binary}
			err := a.Available(context.Background())
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Available = %v, want nil", err)
			case c.want != "" && (!errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Available = %v, want ErrUnavailable saying %q", err, c.want)
			}
		})
	}
}

func TestImageTag_IsTheVersionAndTheBinarysDigest(t *testing.T) {
	bin := binary{digest: "0123456789abcdef0123"}
	for version, want := range map[string]string{
		"v1.2.3":           "obcd-agent:v1.2.3-0123456789ab",
		"dev":              "obcd-agent:dev-0123456789ab",
		"":                 "obcd-agent:dev-0123456789ab",
		"v1.2.3+dirty/x y": "obcd-agent:v1.2.3-dirty-x-y-0123456789ab",
	} {
		if got := imageTag(version, bin); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", version, got, want)
		}
	}
}
