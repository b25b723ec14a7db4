package orchestrator

import (
	"context"
	"slices"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/templates"
)

func testSecrets() templates.MapSecrets {
	return templates.MapSecrets{
		"django_secret_key":    "k8Fj2Lq9Xz4Pw7Rt1Vb6Nm3Hc5Yd0Ga8Se2Ui4Oo6Pp8Aa0Bb2Cc4Dd6Ee8Ff0Gg2",
		"field_encryption_key": "dGVzdC1maWVsZC1rZXktMDEyMzQ1Njc4OWFiY2RlZg==", "postgres_password": "pgSuperPass7Qm2",
		"replication_password": "replPass8Wn3Zx", "obcms_user_password": "appUserPass4Kd9",
		"obcms_admin_password": "adminUserPass5Lf1", "obcms_stats_password": "statsUserPass6Mg2",
		"grafana_admin_password": "grafanaPass7Nh3", "sentry_dsn": "https://key@sentry.example/1",
	}
}

func desiredOBCMS(t testing.TB, env string) ([]engine.ServiceSpec, *stackhcl.Stack) {
	t.Helper()
	loader := stackhcl.NewLoader(stackhcl.Options{Environment: env, LookupEnv: func(string) (string, bool) { return "", false }})
	stack, diags := loader.Load("../stacks/obcms.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	artifacts, err := templates.Render(stack, testSecrets())
	if err != nil {
		t.Fatal(err)
	}
	specs, err := DesiredState(context.Background(), stack, artifacts, testSecrets())
	if err != nil {
		t.Fatal(err)
	}
	return specs, stack
}

func specNamed(specs []engine.ServiceSpec, name string) *engine.ServiceSpec {
	for i := range specs {
		if specs[i].Name == name {
			return &specs[i]
		}
	}
	return nil
}

func TestDesiredState_FromTheRenderedComposeFile(t *testing.T) {
	specs, _ := desiredOBCMS(t, "production")
	web := specNamed(specs, "web")
	if web == nil || web.Replicas != 4 || !web.StartFirst || web.Image != "obcms/app:1.0.0" {
		t.Fatalf("web = %+v", web)
	}
	if web.Env["DB_PASSWORD"] != testSecrets()["obcms_user_password"] || web.Env["DB_HOST"] != "pgbouncer" {
		t.Errorf("web env not resolved from the env file and secrets: DB_HOST=%q", web.Env["DB_HOST"])
	}
	if m := specNamed(specs, "migrate"); m == nil || !m.OneOff || m.Env["DB_HOST"] != "db" {
		t.Errorf("migrate = %+v", m)
	}
	pgb := specNamed(specs, "pgbouncer")
	var userlist *engine.FileSpec
	for i, f := range pgb.Files {
		if f.Target == "/etc/pgbouncer/userlist.txt" {
			userlist = &pgb.Files[i]
		}
	}
	if userlist == nil || userlist.Mode != 0o600 || len(userlist.Data) == 0 {
		t.Errorf("pgbouncer userlist not delivered with mode 0600: %+v", userlist)
	}
	if specNamed(specs, "db-replica-2") == nil {
		t.Error("production replicas missing")
	}
	order := make([]string, len(specs))
	for i, s := range specs {
		order[i] = s.Name
	}
	before := func(a, b string) {
		if slices.Index(order, a) > slices.Index(order, b) {
			t.Errorf("%s must come before %s in %v", a, b, order)
		}
	}
	before("db", "pgbouncer")
	before("pgbouncer", "web")
	before("migrate", "web")
	before("web", "nginx")
}

func TestServiceSpecHash_ChangesOnlyWithWhatForcesARecreate(t *testing.T) {
	specs, _ := desiredOBCMS(t, "staging")
	web := *specNamed(specs, "web")
	base := web.Hash()
	scaled := web
	scaled.Replicas = 9
	scaled.DependsOn = nil
	if scaled.Hash() != base {
		t.Error("replicas or dependencies changed the hash")
	}
	for name, change := range map[string]func(*engine.ServiceSpec){
		"image":  func(s *engine.ServiceSpec) { s.Image = "obcms/app:2.0.0" },
		"secret": func(s *engine.ServiceSpec) { s.Env = cloneEnv(s.Env); s.Env["DB_PASSWORD"] = "rotated" },
		"memory": func(s *engine.ServiceSpec) { s.Memory++ },
	} {
		changed := web
		change(&changed)
		if changed.Hash() == base {
			t.Errorf("changing the %s did not change the hash", name)
		}
	}
	pgb := *specNamed(specs, "pgbouncer")
	edited := pgb
	edited.Files = slices.Clone(pgb.Files)
	edited.Files[0].Data = append(slices.Clone(edited.Files[0].Data), '\n')
	if edited.Hash() == pgb.Hash() {
		t.Error("a changed config file did not change the hash")
	}
}

func cloneEnv(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestDependencyOrder_RejectsCycles(t *testing.T) {
	_, err := DependencyOrder([]engine.ServiceSpec{{Name: "a", DependsOn: []string{"b"}}, {Name: "b", DependsOn: []string{"a"}}})
	if err == nil {
		t.Fatal("a cycle was accepted")
	}
}
