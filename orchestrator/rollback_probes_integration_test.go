package orchestrator

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/obcd/obcd/orchestrator/state"
)

// TestRollback_ProvesTheReleaseItReturnsToWithItsOwnProbes: a release
// that adds a service which dies at start is rolled back; the release it
// returns to never had that service, so its proof must not ask for it.
// Proven with the failed release's probes, the return would be called
// rollback-failed though the stable release runs as it did.
func TestRollback_ProvesTheReleaseItReturnsToWithItsOwnProbes(t *testing.T) {
	e := newDeployEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := e.deployer("v1").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	edge := fmt.Sprintf(`
service "web" "edge" {
  image    = "%s:v4"
  command  = ["-proxy", "http://web:8000"]
  healthcheck {
    test     = ["CMD", "/app", "-health"]
    interval = "1s"
  }
}
`, e.repo)
	if err := os.WriteFile(e.file, append(src, edge...), 0o644); err != nil {
		t.Fatal(err)
	}
	result, err := e.deployer("v1").Deploy(ctx, DeployOptions{})
	if err == nil {
		t.Fatal("a release whose new service dies at start deployed")
	}
	if result.Release.Outcome != state.OutcomeRolledBack {
		t.Fatalf("outcome %s, want %s: %v\n%s", result.Release.Outcome, state.OutcomeRolledBack, err, result.Report)
	}
	if got := e.served(); got != "v1" {
		t.Errorf("after the rollback the proxy serves %q, want v1", got)
	}
	containers, err := e.engine.Observe(ctx, e.project)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range containers {
		if c.Service == "edge" {
			t.Errorf("the failed release's service is still there: %s (%s)", c.Name, c.State)
		}
	}
}
