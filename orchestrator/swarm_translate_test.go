package orchestrator

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/swarm"
	"github.com/obcd/obcd/templates"
)

// TestSwarm_TheOBCMSStackTranslatesWithNoSecretInAnyServiceSpec: the
// whole OBCMS stack, rendered for production on a swarm, becomes Swarm
// services, secrets and configs; no service spec (what docker service
// inspect and the tasks' docker inspect show) holds a secret's value,
// and each value travels in a Swarm secret instead.
func TestSwarm_TheOBCMSStackTranslatesWithNoSecretInAnyServiceSpec(t *testing.T) {
	src, err := os.ReadFile("../stacks/obcms.hcl")
	if err != nil {
		t.Fatal(err)
	}
	onSwarm := strings.Replace(string(src), `docker_host = "ssh://deploy@obcms-prod-1"`, `docker_host = "ssh://deploy@obcms-prod-1"
  engine      = "swarm"`, 1)
	stack, diags := stackhcl.NewLoader(stackhcl.Options{Environment: "production", LookupEnv: func(string) (string, bool) { return "", false }}).
		LoadSource("obcms.hcl", []byte(onSwarm))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if stack.Engine != stackhcl.EngineSwarm {
		t.Fatalf("engine %q: the test's edit of the stack did not apply", stack.Engine)
	}
	values := templates.MapSecrets{}
	for _, s := range stack.Secrets {
		values[s.Name] = "sw-" + strings.ReplaceAll(s.Name, "_", "-") + "-Qm7x2Lp9"
	}
	values["field_encryption_key"] = "c3dhcm0tZmllbGQta2V5LW9mLTMyLWJ5dGVzLWZvcg=="
	values["sentry_dsn"] = "https://k3yswarm9@sentry.example.org/42"
	artifacts, err := templates.Render(stack, values)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := DesiredState(context.Background(), stack, artifacts, values)
	if err != nil {
		t.Fatal(err)
	}
	var secretValues []string
	for _, v := range values {
		secretValues = append(secretValues, v)
	}
	carried := map[string]bool{}
	for _, spec := range specs {
		svc, err := swarm.Translate(spec, swarm.Options{Network: swarm.NetworkName(spec.Project), Release: "r1", SecretValues: secretValues})
		if err != nil {
			t.Errorf("service %s: %v", spec.Name, err)
			continue
		}
		inspect, _ := json.Marshal(svc.Spec)
		for name, v := range values {
			if strings.Contains(string(inspect), v) {
				t.Errorf("service %s: its spec holds the value of secret %s", spec.Name, name)
			}
			for _, s := range svc.Secrets {
				if strings.Contains(string(s.Data), v) {
					carried[name] = true
				}
			}
		}
	}
	for _, name := range []string{"django_secret_key", "obcms_user_password", "postgres_password"} {
		if !carried[name] {
			t.Errorf("secret %s reaches no service through a Swarm secret", name)
		}
	}
	t.Logf("%d services translated; secrets carried by Swarm secrets: %d of %d", len(specs), len(carried), len(values))
}
