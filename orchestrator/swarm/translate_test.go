package swarm

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/swarm"

	"github.com/obcd/obcd/orchestrator/engine"
)

func webSpec() engine.ServiceSpec {
	return engine.ServiceSpec{
		Project: "obcms-production", Name: "web", Image: "registry.example.org/obcms/app:1.2.0", Replicas: 4, StartFirst: true,
		Env: map[string]string{
			"APP_VERSION":  "1.2.0",
			"DB_PASSWORD":  "pw-9f8e7d",
			"DATABASE_URL": "postgres://obcms:pw-9f8e7d@pgbouncer:6432/obcms",
		},
		Files: []engine.FileSpec{
			{Target: "/etc/obcms/settings.ini", Mode: 0o644, Data: []byte("[app]\nworkers = 4\n")},
			{Target: "/run/secrets/field_key", Mode: 0o600, Data: []byte("fk-123456")},
		},
		Mounts: []engine.MountSpec{{Volume: "obcms-production_media", Target: "/app/media"}},
		Health: &engine.HealthSpec{Test: []string{"CMD", "/app", "-health"}},
	}
}

var secretValues = []string{"pw-9f8e7d", "fk-123456"}

func TestTranslate_NoSecretValueInTheServiceSpec(t *testing.T) {
	svc, err := Translate(webSpec(), Options{Network: "obcms-production_default", Release: "r1", SecretValues: secretValues})
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(svc.Spec)
	for _, v := range secretValues {
		if strings.Contains(string(spec), v) {
			t.Errorf("the service spec, which docker service inspect shows, holds the secret value %q:\n%s", v, spec)
		}
	}
	env := strings.Join(svc.Spec.TaskTemplate.ContainerSpec.Env, "\n")
	for _, want := range []string{"APP_VERSION=1.2.0", "DB_PASSWORD_FILE=/run/secrets/db_password", "DATABASE_URL_FILE=/run/secrets/database_url"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %s:\n%s", want, env)
		}
	}
	// The two env secrets and the 0600 file are secrets; the 0644 file is
	// a config. Each holds exactly its content.
	data := map[string]string{}
	for _, s := range svc.Secrets {
		data[s.Name] = string(s.Data)
		if len(s.Name) > 64 || s.Labels[LabelNamespace] != "obcms-production" {
			t.Errorf("secret %s: name over 64 characters or no namespace label", s.Name)
		}
	}
	if len(svc.Secrets) != 3 || len(svc.Configs) != 1 || string(svc.Configs[0].Data) != "[app]\nworkers = 4\n" {
		t.Fatalf("secrets %v, configs %d, want 3 secrets and the settings as 1 config", data, len(svc.Configs))
	}
	refs := svc.Spec.TaskTemplate.ContainerSpec.Secrets
	for _, ref := range refs {
		if _, ok := data[ref.SecretName]; !ok {
			t.Errorf("the service mounts secret %s, which the translation does not create", ref.SecretName)
		}
	}
	if got := refs[len(refs)-1]; got.File.Name != "/run/secrets/field_key" || got.File.Mode != 0o600 {
		t.Errorf("the 0600 file is mounted as %+v", got.File)
	}
}

func TestTranslate_ModesUpdatesAndEndpoints(t *testing.T) {
	web, err := Translate(webSpec(), Options{Network: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if web.Spec.Name != "obcms-production_web" || web.Spec.Labels[LabelNamespace] != "obcms-production" || web.Spec.Labels[LabelImage] != webSpec().Image {
		t.Errorf("name %s, labels %v: want docker stack's naming and labels", web.Spec.Name, web.Spec.Labels)
	}
	if r := web.Spec.Mode.Replicated; r == nil || *r.Replicas != 4 {
		t.Errorf("mode %+v, want 4 replicas", web.Spec.Mode)
	}
	if u := web.Spec.UpdateConfig; u.Order != swarm.UpdateOrderStartFirst || u.FailureAction != swarm.UpdateFailureActionPause {
		t.Errorf("web updates %+v, want start-first and pause (obcd rolls the release back, not Swarm)", u)
	}
	if web.Spec.EndpointSpec.Mode != swarm.ResolutionModeDNSRR {
		t.Errorf("endpoint mode %s, want dnsrr (VIP needs IPVS)", web.Spec.EndpointSpec.Mode)
	}
	if n := web.Spec.TaskTemplate.Networks; len(n) != 1 || n[0].Target != "n" || n[0].Aliases[0] != "web" {
		t.Errorf("networks %+v, want the project's with the service's name as alias", n)
	}

	db := engine.ServiceSpec{Project: "p", Name: "db", Image: "postgres:15", Replicas: 1}
	pinned, _ := Translate(db, Options{Network: "n", Constraints: map[string][]string{"db": {"node.labels.obcd.node==worker1"}}})
	if u := pinned.Spec.UpdateConfig; u.Order != swarm.UpdateOrderStopFirst {
		t.Errorf("db updates %s, want stop-first", u.Order)
	}
	if p := pinned.Spec.TaskTemplate.Placement; p == nil || p.Constraints[0] != "node.labels.obcd.node==worker1" {
		t.Errorf("db placement %+v, want its constraint", p)
	}

	migrate := engine.ServiceSpec{Project: "p", Name: "migrate", Image: "app:1", OneOff: true}
	job, _ := Translate(migrate, Options{Network: "n"})
	if j := job.Spec.Mode.ReplicatedJob; j == nil || *j.TotalCompletions != 1 || job.Spec.TaskTemplate.RestartPolicy.Condition != swarm.RestartPolicyConditionNone {
		t.Errorf("migrate: mode %+v, restart %+v; want a replicated job that runs once", job.Spec.Mode, job.Spec.TaskTemplate.RestartPolicy)
	}

	// A host path is the node's own, as the node exporter's / is.
	bind := engine.ServiceSpec{Project: "p", Name: "x", Image: "i", Mounts: []engine.MountSpec{{Bind: "/", Target: "/host", ReadOnly: true}}}
	host, err := Translate(bind, Options{})
	if m := host.Spec.TaskTemplate.ContainerSpec.Mounts; err != nil || len(m) != 1 || m[0].Type != "bind" || m[0].Source != "/" || !m[0].ReadOnly {
		t.Errorf("a bind mount of the node's /: %v, mounts %+v; want it read-only", err, m)
	}
}

// TestTranslate_ContentNamesAndTheSpecHash: an object's name changes with
// its content only; the spec hash changes with what makes the tasks, not
// with the release that writes them.
func TestTranslate_ContentNamesAndTheSpecHash(t *testing.T) {
	opts := Options{Network: "n", Release: "r1", SecretValues: secretValues}
	a, _ := Translate(webSpec(), opts)
	opts.Release = "r2"
	b, _ := Translate(webSpec(), opts)
	if a.Spec.Labels[LabelSpecHash] != b.Spec.Labels[LabelSpecHash] || a.Configs[0].Name != b.Configs[0].Name {
		t.Errorf("another release of the same spec changes the hash or a name")
	}
	changed := webSpec()
	changed.Files[0].Data = []byte("[app]\nworkers = 8\n")
	c, _ := Translate(changed, opts)
	if c.Configs[0].Name == a.Configs[0].Name || c.Spec.Labels[LabelSpecHash] == a.Spec.Labels[LabelSpecHash] {
		t.Errorf("new config content kept the name %s or the hash", c.Configs[0].Name)
	}
	if c.Secrets[0].Name != a.Secrets[0].Name {
		t.Errorf("an unchanged secret was renamed: %s -> %s", a.Secrets[0].Name, c.Secrets[0].Name)
	}
}

// TestCause_NamesWhatChangedAndNoValue: a plan's cause says what differs
// (image, replicas, the variables and files by name) and prints no
// environment value.
func TestCause_NamesWhatChangedAndNoValue(t *testing.T) {
	opts := Options{Network: "n", SecretValues: secretValues}
	a, _ := Translate(webSpec(), opts)
	changed := webSpec()
	changed.Image = "registry.example.org/obcms/app:1.3.0"
	changed.Replicas = 6
	changed.Env["APP_VERSION"] = "1.3.0"
	changed.Env["DB_PASSWORD"] = "pw-rotated-42"
	changed.Env["DATABASE_URL"] = "postgres://obcms:pw-rotated-42@pgbouncer:6432/obcms"
	changed.Env["NEW_FLAG"] = "on"
	changed.Files[0].Data = []byte("[app]\nworkers = 8\n")
	b, _ := Translate(changed, Options{Network: "n", SecretValues: []string{"pw-rotated-42", "fk-123456"}})
	cause := Cause(a.Spec, b.Spec)
	for _, want := range []string{"image registry.example.org/obcms/app:1.2.0 -> registry.example.org/obcms/app:1.3.0", "replicas 4 -> 6",
		"environment: APP_VERSION, +NEW_FLAG", "config settings.ini", "secret database_url, db_password"} {
		if !strings.Contains(cause, want) {
			t.Errorf("cause %q lacks %q", cause, want)
		}
	}
	for _, value := range []string{"1.3.0\"", "=on", "pw-rotated-42", "workers = 8"} {
		if strings.Contains(cause, value) {
			t.Errorf("cause %q shows the value %q", cause, value)
		}
	}
	if got := Cause(a.Spec, a.Spec); !strings.HasPrefix(got, "spec changed") {
		t.Errorf("identical specs: %q", got)
	}
}

func TestWaves_KeepTheStacksOrder(t *testing.T) {
	specs := []engine.ServiceSpec{
		{Name: "db"}, {Name: "redis"},
		{Name: "migrate", DependsOn: []string{"db"}},
		{Name: "web", DependsOn: []string{"migrate", "redis"}},
		{Name: "nginx", DependsOn: []string{"web"}},
		{Name: "worker", DependsOn: []string{"db", "redis"}},
	}
	waves, err := Waves(specs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range waves {
		var names []string
		for _, s := range w {
			names = append(names, s.Name)
		}
		got = append(got, strings.Join(names, ","))
	}
	if want := "db,redis | migrate,worker | web | nginx"; strings.Join(got, " | ") != want {
		t.Errorf("waves %q, want %q", strings.Join(got, " | "), want)
	}
	if _, err := Waves([]engine.ServiceSpec{{Name: "a", DependsOn: []string{"b"}}, {Name: "b", DependsOn: []string{"a"}}}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("a cycle: %v", err)
	}
	if _, err := Waves([]engine.ServiceSpec{{Name: "a", DependsOn: []string{"ghost"}}}); err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("a missing dependency: %v", err)
	}
}

// TestTranslate_PortsArePublishedInHostModeAndPlacementIsKept: a port
// is published on the task's node (dnsrr services cannot use the
// routing mesh), a host address or a range is refused rather than
// widened, and the stack's placement and the environment's constraints
// both reach the task, and its hash.
func TestTranslate_PortsArePublishedInHostModeAndPlacementIsKept(t *testing.T) {
	spec := webSpec()
	spec.Ports = []engine.PortSpec{{HostPort: "8443", ContainerPort: "443", Protocol: "tcp"}, {HostPort: "5353", ContainerPort: "53", Protocol: "udp"}}
	spec.Placement = []string{"node.role == manager"}
	svc, err := Translate(spec, Options{Network: "n", Constraints: map[string][]string{"web": {"node.labels.edge == true"}}})
	if err != nil {
		t.Fatal(err)
	}
	ports := svc.Spec.EndpointSpec.Ports
	if len(ports) != 2 || ports[0].PublishedPort != 8443 || ports[0].TargetPort != 443 || ports[0].PublishMode != swarm.PortConfigPublishModeHost ||
		ports[1].Protocol != "udp" || svc.Spec.EndpointSpec.Mode != swarm.ResolutionModeDNSRR {
		t.Errorf("ports %+v in mode %s, want 8443->443/tcp and 5353->53/udp in host mode, dnsrr", ports, svc.Spec.EndpointSpec.Mode)
	}
	if got := svc.Spec.TaskTemplate.Placement; got == nil || strings.Join(got.Constraints, ", ") != "node.role == manager, node.labels.edge == true" {
		t.Errorf("placement %+v, want the stack's and the environment's", got)
	}
	unpinned, _ := Translate(webSpec(), Options{Network: "n"})
	if unpinned.Spec.Labels[LabelSpecHash] == svc.Spec.Labels[LabelSpecHash] {
		t.Error("placement and ports do not change the spec hash, so a deploy would not apply them")
	}
	for _, p := range []engine.PortSpec{
		{HostIP: "127.0.0.1", HostPort: "8080", ContainerPort: "80"},
		{HostPort: "8000-8010", ContainerPort: "8000-8010"},
		{HostPort: "", ContainerPort: "80"},
	} {
		spec := webSpec()
		spec.Ports = []engine.PortSpec{p}
		if _, err := Translate(spec, Options{Network: "n"}); err == nil || !strings.Contains(err.Error(), "service web") {
			t.Errorf("port %+v: %v, want a refusal naming the service", p, err)
		}
	}
}

func TestFileVariable_FollowsEachImagesConvention(t *testing.T) {
	for key, want := range map[string]string{
		"SECRET_KEY":                 "SECRET_KEY_FILE",
		"POSTGRES_PASSWORD":          "POSTGRES_PASSWORD_FILE",
		"GF_SECURITY_ADMIN_PASSWORD": "GF_SECURITY_ADMIN_PASSWORD__FILE",
	} {
		if got := FileVariable(key); got != want {
			t.Errorf("FileVariable(%s) = %s, want %s", key, got, want)
		}
	}
}
