package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obcd/obcd/internal/testsvc"
)

// webStack is a small stack whose web service obcd reaches at addr.
func webStack(t *testing.T, addr string) string {
	t.Helper()
	dir := t.TempDir()
	src := fmt.Sprintf(`
stack "demo" {
  app_image = "demo/app"
  version   = "1.0.0"
}
secret "pg" {}
service "web" "web" {
  address = %q
}
service "postgres" "db" {
  superuser_password = secret.pg
}
environment "staging" {
  domain = "staging.demo.example"
}
`, addr)
	if err := os.WriteFile(filepath.Join(dir, "obcd.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func fakeDjango(ready string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/health/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/ready/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, ready) })
	return httptest.NewServer(mux)
}

func TestVerify_ExitCodesTableJSONAndJUnit(t *testing.T) {
	healthy := fakeDjango(`{"database": true}`)
	defer healthy.Close()
	dir := webStack(t, strings.TrimPrefix(healthy.URL, "http://"))
	ok := obcd(t, dir, nil, "verify", "staging", "--no-docker", "--timeout", "5s")
	if ok.code != 0 || !strings.Contains(ok.stdout, "web-ready") || !strings.Contains(ok.stdout, "Verification PASSED") {
		t.Fatalf("healthy verify: exit %d\n%s%s", ok.code, ok.stdout, ok.stderr)
	}

	broken := fakeDjango(`{"database": false}`)
	defer broken.Close()
	dir = webStack(t, strings.TrimPrefix(broken.URL, "http://"))
	junit := filepath.Join(dir, "verify.xml")
	bad := obcd(t, dir, nil, "verify", "staging", "--no-docker", "--timeout", "2s", "--json", "--junit", junit)
	if bad.code != ExitFailure {
		t.Fatalf("exit %d, want 1\n%s", bad.code, bad.stdout)
	}
	var out struct {
		Passed  bool
		Results []struct {
			Name, Status, Message string
		}
	}
	if err := json.Unmarshal([]byte(bad.stdout), &out); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, bad.stdout)
	}
	if out.Passed {
		t.Error("passed with /ready/ database false")
	}
	for _, r := range out.Results {
		if r.Name == "web-ready" && (r.Status != "fail" || !strings.Contains(r.Message, `"database"`)) {
			t.Errorf("web-ready = %+v; want fail naming the field", r)
		}
	}
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	data, err := os.ReadFile(junit)
	if err != nil || xml.Unmarshal(data, &suite) != nil || suite.Failures != 1 || suite.Tests < 2 {
		t.Errorf("junit %+v, %v\n%s", suite, err, data)
	}

	if r := obcd(t, dir, nil, "verify", "staging", "--no-docker", "--only", "nope"); r.code != ExitUsage || !strings.Contains(r.stderr, "web-ready") {
		t.Errorf("--only nope: exit %d\n%s", r.code, r.stderr)
	}
}

func TestStatus_JSONShapeAndExitCode(t *testing.T) {
	healthy := fakeDjango(`{"database": true}`)
	defer healthy.Close()
	dir := webStack(t, strings.TrimPrefix(healthy.URL, "http://"))
	r := obcd(t, dir, nil, "status", "staging", "--no-docker", "--json", "--timeout", "5s")
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	// The small stack has no logging block and no Redis: critical
	// components that cannot be proven, so the environment is unhealthy.
	if doc["overall_status"] != "unhealthy" || r.code != ExitFailure || doc["web"] != true || doc["logging"] != false {
		t.Errorf("exit %d, status %s", r.code, r.stdout)
	}
}

// TestVerify_ADownEnvironmentIsReportedAtOnce: verify against an
// environment that is not running (nothing listens where its services
// are declared, and no container of its project exists) reports every
// probe failed after one attempt each, exit 1, instead of retrying to its
// deadline; --wait retries, as a deploy's verification does. The
// attempts are asserted, not the time, which is only logged.
func TestVerify_ADownEnvironmentIsReportedAtOnce(t *testing.T) {
	dir := webStack(t, "127.0.0.1:"+strconv.Itoa(testsvc.FreePort(t)))
	started := time.Now()
	down := obcd(t, dir, nil, "verify", "staging", "--json", "--timeout", "60s")
	t.Logf("verify of a down environment took %v", time.Since(started).Round(time.Millisecond))
	if down.code != ExitFailure {
		t.Fatalf("exit %d, want 1\n%s%s", down.code, down.stdout, down.stderr)
	}
	var out struct {
		Results []struct {
			Name, Status, Message string
			Attempts              int
		}
	}
	if err := json.Unmarshal([]byte(down.stdout), &out); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, down.stdout)
	}
	seen := map[string]bool{}
	for _, r := range out.Results {
		seen[r.Name] = true
		if r.Status != "fail" || r.Attempts != 1 {
			t.Errorf("probe %s: %s after %d attempts (%s); want a failure reported after its first attempt", r.Name, r.Status, r.Attempts, r.Message)
		}
	}
	for _, want := range []string{"web-health", "web-ready", "containers"} {
		if !seen[want] {
			t.Errorf("probe %s did not run: %+v", want, out.Results)
		}
	}

	waited := obcd(t, dir, nil, "verify", "staging", "--json", "--no-docker", "--only", "web-health", "--wait", "3s")
	if err := json.Unmarshal([]byte(waited.stdout), &out); err != nil || len(out.Results) != 1 {
		t.Fatalf("--wait: %v\n%s", err, waited.stdout)
	}
	if waited.code != ExitFailure || out.Results[0].Attempts < 2 {
		t.Errorf("--wait 3s: exit %d after %d attempts; want retries until the wait ends, then exit 1", waited.code, out.Results[0].Attempts)
	}
}
