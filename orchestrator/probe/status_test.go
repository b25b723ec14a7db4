package probe

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
)

func loadStack(t testing.TB, env string) *stackhcl.Stack {
	t.Helper()
	loader := stackhcl.NewLoader(stackhcl.Options{Environment: env, LookupEnv: func(string) (string, bool) { return "", false }})
	stack, diags := loader.Load("../../stacks/obcms.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return stack
}

func results(failing map[string]string) []Result {
	var out []Result
	for _, c := range []string{ComponentPrometheus, ComponentCelery, ComponentRedis, ComponentDatabase, ComponentWeb, ComponentAlertmanager, ComponentGrafana} {
		r := Result{Name: c + "-probe", Component: c, Status: StatusPass, Message: "ok"}
		if msg, bad := failing[c]; bad {
			r.Status, r.Message = StatusFail, msg
		}
		out = append(out, r)
	}
	return out
}

// TestStatus_JSONMatchesTheSeedShape pins the status JSON: the monitoring
// seed's /api/monitoring/status keys and types, in its order, with the
// verdicts healthy, degraded and unhealthy. -update rewrites the goldens.
func TestStatus_JSONMatchesTheSeedShape(t *testing.T) {
	stack := loadStack(t, "staging")
	cases := []struct {
		name    string
		failing map[string]string
		overall string
		http    int
	}{
		{"healthy", nil, Healthy, 200},
		{"degraded", map[string]string{ComponentCelery: "no worker answered within 5s"}, Degraded, 200},
		{"unhealthy", map[string]string{ComponentDatabase: "dial tcp 127.0.0.1:6432: connection refused"}, Unhealthy, 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			report := BuildStatus(stack, results(tc.failing))
			if report.OverallStatus != tc.overall || report.HTTPStatus() != tc.http {
				t.Errorf("overall %s http %d, want %s %d", report.OverallStatus, report.HTTPStatus(), tc.overall, tc.http)
			}
			data, err := json.MarshalIndent(report, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			assertSeedShape(t, data)
			golden := filepath.Join("..", "..", "testdata", "status", tc.name+".json")
			if *update {
				if err := os.WriteFile(golden, append(data, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./... -update)", err)
			}
			if !bytes.Equal(want, append(data, '\n')) {
				t.Errorf("%s differs:\n%s", golden, data)
			}
		})
	}
}

// assertSeedShape checks the keys and types of the seed's example response.
func assertSeedShape(t *testing.T, data []byte) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["overall_status"].(string); !ok {
		t.Error("overall_status is not a string")
	}
	components, ok := doc["components"].(map[string]any)
	if !ok {
		t.Fatal("components is not an object")
	}
	for _, name := range []string{"prometheus", "sentry", "logging", "celery", "redis"} {
		if _, ok := doc[name].(bool); !ok {
			t.Errorf("top-level %q is not a boolean", name)
		}
		c, ok := components[name].(map[string]any)
		if !ok {
			t.Errorf("components.%s missing", name)
			continue
		}
		if _, ok := c["healthy"].(bool); !ok {
			t.Errorf("components.%s.healthy is not a boolean", name)
		}
		if _, ok := c["message"].(string); !ok {
			t.Errorf("components.%s.message is not a string", name)
		}
		if c["healthy"] != doc[name] {
			t.Errorf("%s: top-level %v disagrees with components.%s.healthy %v", name, doc[name], name, c["healthy"])
		}
	}
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{\n  \"overall_status\"")) {
		t.Error("overall_status is not the first key")
	}
}

func TestStatus_MissingProbesAreNotHealthy(t *testing.T) {
	report := BuildStatus(loadStack(t, "staging"), nil)
	if report.OverallStatus != Unhealthy || report.Components[ComponentDatabase].Healthy {
		t.Errorf("no results must not be healthy: %+v", report)
	}
}

func TestStatus_StaticComponentsFollowTheStack(t *testing.T) {
	stack := loadStack(t, "staging")
	stack.Django.Logging.ScrubFilter = ""
	report := BuildStatus(stack, results(nil))
	if report.Components[ComponentLogging].Healthy || report.OverallStatus != Unhealthy {
		t.Errorf("logging without scrubbing must be unhealthy (critical): %+v", report.Components[ComponentLogging])
	}
	stack = loadStack(t, "staging")
	stack.Django.Sentry.Configured = false
	report = BuildStatus(stack, results(nil))
	if report.Components[ComponentSentry].Healthy || report.OverallStatus != Degraded {
		t.Errorf("missing sentry must degrade (optional): %s %+v", report.OverallStatus, report.Components[ComponentSentry])
	}
}
