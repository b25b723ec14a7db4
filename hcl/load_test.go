package hcl

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite golden files")

// loadFixture evaluates a file under testdata/hcl for env, with a fixed
// empty process environment so results never depend on the machine.
func loadFixture(t *testing.T, name, env string) (*Stack, hcl.Diagnostics, string) {
	t.Helper()
	loader := NewLoader(Options{Environment: env, LookupEnv: func(string) (string, bool) { return "", false }})
	stack, diags := loader.Load(filepath.Join("..", "testdata", "hcl", name))
	var buf bytes.Buffer
	if err := loader.WriteDiagnostics(&buf, diags, false); err != nil {
		t.Fatal(err)
	}
	return stack, diags, buf.String()
}

func TestLoad_MinimalStackHasDefaults(t *testing.T) {
	stack, diags, text := loadFixture(t, "minimal.hcl", "staging")
	if diags.HasErrors() {
		t.Fatalf("unexpected diagnostics:\n%s", text)
	}
	web := stack.Service("web")
	if web.Image != "demo/app:latest" || web.Port != 8000 || web.Replicas != 1 || web.Web.Workers != 4 {
		t.Errorf("web defaults wrong: %+v %+v", web, web.Web)
	}
	if got := stack.Django.AllowedHosts; len(got) != 1 || got[0] != "staging.demo.example" {
		t.Errorf("allowed hosts default = %v, want the domain", got)
	}
	if stack.DockerHost != "unix:///var/run/docker.sock" {
		t.Errorf("docker host default = %q", stack.DockerHost)
	}
}

// TestLoad_BadInputDiagnostics pins the exact diagnostic text, snippet
// and fix of each class of mistake; -update rewrites the .diag files.
func TestLoad_BadInputDiagnostics(t *testing.T) {
	cases := []struct {
		fixture, env string
		summaries    []string
	}{
		{"unknown_attribute.hcl", "staging", []string{"Unsupported argument"}},
		{"unknown_block.hcl", "staging", []string{"Unsupported block type"}},
		{"type_error.hcl", "staging", []string{"Unsuitable value type"}},
		{"undefined_service.hcl", "staging", []string{"Reference to undeclared service"}},
		{"undefined_variable.hcl", "staging", []string{"Reference to undeclared variable"}},
		{"duplicate_block.hcl", "staging", []string{`Duplicate service "web"`}},
		{"unknown_environment.hcl", "qa", []string{`Unknown environment "qa"`}},
		{"literal_password.hcl", "staging", []string{"Invalid secret reference"}},
		{"secret_interpolation.hcl", "staging", []string{"Invalid template interpolation value"}},
		{"variable_validation.hcl", "staging", []string{`Invalid value for variable "app_version"`}},
		{"override_unknown_service.hcl", "staging", []string{"Reference to undeclared service"}},
		{"waive_missing_reason.hcl", "staging", []string{"Waiver without a reason"}},
		{"waive_empty_reason.hcl", "staging", []string{"Waiver without a reason"}},
		{"waive_duplicate.hcl", "staging", []string{`Duplicate waive "audit.A007"`}},
	}
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.fixture, ".hcl"), func(t *testing.T) {
			stack, diags, text := loadFixture(t, tc.fixture, tc.env)
			if stack != nil || !diags.HasErrors() {
				t.Fatalf("want errors and no stack, got stack=%v diags=%v", stack != nil, diags)
			}
			if got := summaries(diags); strings.Join(got, "|") != strings.Join(tc.summaries, "|") {
				t.Errorf("summaries = %q, want %q\n%s", got, tc.summaries, text)
			}
			for _, d := range diags {
				if d.Subject == nil || d.Subject.Start.Line == 0 {
					t.Errorf("diagnostic %q has no source position", d.Summary)
				}
				if strings.TrimSpace(d.Detail) == "" {
					t.Errorf("diagnostic %q has no detail", d.Summary)
				}
			}
			golden(t, filepath.Join("..", "testdata", "hcl", strings.TrimSuffix(tc.fixture, ".hcl")+".diag"), text)
		})
	}
}

func TestLoad_ReportsEveryErrorInOneRun(t *testing.T) {
	_, diags, text := loadFixture(t, "all_errors.hcl", "staging")
	want := []string{
		"Unsupported block type",           // bogus {}
		`Duplicate service "web"`,          // second web
		"Reference to undeclared variable", // var.missing
		"Reference to undeclared service",  // service.nowhere
		"Unsupported argument",             // replcas
		"Unsuitable value type",            // http_port = "eighty"
	}
	got := strings.Join(summaries(diags), "\n")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in one run; got:\n%s", w, text)
		}
	}
	if len(diags) != len(want) {
		t.Errorf("got %d diagnostics, want %d (no duplicates):\n%s", len(diags), len(want), text)
	}
}

func TestLoad_DuplicatePointsAtBothBlocks(t *testing.T) {
	_, diags, _ := loadFixture(t, "duplicate_block.hcl", "staging")
	d := diags[0]
	if d.Subject.Start.Line != 7 {
		t.Errorf("subject line = %d, want the second block at 7", d.Subject.Start.Line)
	}
	if !strings.Contains(d.Detail, "duplicate_block.hcl:5") {
		t.Errorf("detail %q does not name the first block at line 5", d.Detail)
	}
}

func TestLoad_DuplicateWaiverPointsAtBothBlocks(t *testing.T) {
	_, diags, _ := loadFixture(t, "waive_duplicate.hcl", "staging")
	d := diags[0]
	first, ok := d.Extra.(firstPlace)
	if d.Subject.Start.Line != 11 || !ok || first.Start.Line != 7 {
		t.Errorf("subject line %d, extra %v: want the second block at 11 and the first place at 7", d.Subject.Start.Line, d.Extra)
	}
	if !strings.Contains(d.Detail, "waive_duplicate.hcl:7") {
		t.Errorf("detail %q does not name the first block at line 7", d.Detail)
	}
}

func TestLoad_WaiversAreOnTheStackInEveryEnvironment(t *testing.T) {
	src := []byte(`
stack "demo" { app_image = "demo/app" }
service "web" "web" {}
waive "audit.A007" {
  reason = "  Grafana is not packaged by Debian.  "
}
waive "monitoring.W008" {
  reason = "Mail goes out through ${var.relay}."
}
variable "relay" { default = "the relay" }
environment "staging" { domain = "s.example" }
environment "production" { domain = "p.example" }
`)
	for _, env := range []string{"staging", "production"} {
		stack, diags := NewLoader(Options{Environment: env}).LoadSource("w.hcl", src)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", env, diags)
		}
		if len(stack.Waivers) != 2 {
			t.Fatalf("%s: %d waivers, want 2", env, len(stack.Waivers))
		}
		a007 := stack.Waiver("audit.A007")
		if a007 == nil || a007.Reason != "Grafana is not packaged by Debian." || a007.DeclRange.Start.Line != 4 {
			t.Errorf("%s: audit.A007 waiver = %+v, want the trimmed reason and its block at line 4", env, a007)
		}
		if w := stack.Waiver("monitoring.W008"); w == nil || w.Reason != "Mail goes out through the relay." {
			t.Errorf("%s: monitoring.W008 waiver = %+v, want the reason evaluated", env, w)
		}
		if stack.Waiver("audit.A008") != nil {
			t.Errorf("%s: Waiver returns a waiver for a code no block names", env)
		}
	}
}

func TestLoad_EnvironmentOverrides(t *testing.T) {
	for _, tc := range []struct {
		env                   string
		web, worker, replicas int
		retention, domain     string
	}{
		{"staging", 2, 1, 0, "7d", "staging.obcms.example.org"},
		{"production", 4, 2, 2, "30d", "obcms.example.org"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			loader := NewLoader(Options{Environment: tc.env})
			stack, diags := loader.Load("../stacks/obcms.hcl")
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if got := stack.Service("web").Replicas; got != tc.web {
				t.Errorf("web replicas = %d, want %d", got, tc.web)
			}
			if got := stack.Service("celery-worker").Replicas; got != tc.worker {
				t.Errorf("worker replicas = %d, want %d", got, tc.worker)
			}
			if got := stack.Service("db").Replicas; got != tc.replicas {
				t.Errorf("postgres replicas = %d, want %d", got, tc.replicas)
			}
			if stack.Monitoring.Retention != tc.retention || stack.Domain != tc.domain {
				t.Errorf("retention %q domain %q", stack.Monitoring.Retention, stack.Domain)
			}
			if stack.Django.SiteURL != "https://"+tc.domain {
				t.Errorf("site url %q does not follow the environment's domain", stack.Django.SiteURL)
			}
			pgb := stack.Service("pgbouncer").PgBouncer
			if pgb.PoolMode != "transaction" || len(pgb.Users) != 3 {
				t.Errorf("pgbouncer = %+v", pgb)
			}
		})
	}
}

func TestLoad_VariablesFromFlagsAndEnvironment(t *testing.T) {
	env := map[string]string{"OBCD_VAR_APP_VERSION": "2.0.0"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	stack, diags := NewLoader(Options{Environment: "staging", LookupEnv: lookup}).Load("../stacks/obcms.hcl")
	if diags.HasErrors() || stack.Version != "2.0.0" {
		t.Fatalf("env var not applied: %v %v", diags, stack)
	}
	stack, diags = NewLoader(Options{Environment: "staging", LookupEnv: lookup, Vars: map[string]string{"app_version": "3.1.4"}}).Load("../stacks/obcms.hcl")
	if diags.HasErrors() || stack.Version != "3.1.4" || stack.Service("web").Image != "obcms/app:3.1.4" {
		t.Fatalf("--var must win over the environment: %v", diags)
	}
	_, diags = NewLoader(Options{Environment: "staging", Vars: map[string]string{"app_version": "nope"}}).Load("../stacks/obcms.hcl")
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "semantic version") {
		t.Fatalf("validation must reject a bad --var: %v", diags)
	}
}

func TestLoad_EnvAndFileFunctions(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hosts.txt"), []byte("a.example"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `
stack "demo" { app_image = env("IMAGE") }
service "web" "web" { env = { HOST = file("hosts.txt"), MODE = env("UNSET", "fallback") } }
environment "staging" { domain = "s.example" }
`
	path := filepath.Join(dir, "obcd.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	lookup := func(k string) (string, bool) {
		if k == "IMAGE" {
			return "demo/app", true
		}
		return "", false
	}
	stack, diags := NewLoader(Options{Environment: "staging", LookupEnv: lookup}).Load(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if stack.AppImage != "demo/app" || stack.Service("web").Env["HOST"] != "a.example" || stack.Service("web").Env["MODE"] != "fallback" {
		t.Errorf("functions not applied: %q %v", stack.AppImage, stack.Service("web").Env)
	}
	_, diags = NewLoader(Options{Environment: "staging"}).Load(path)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "IMAGE is not set") {
		t.Errorf("unset env() must fail with the variable's name: %v", diags)
	}
}

func TestLoad_MissingFileSaysHowToFix(t *testing.T) {
	_, diags := NewLoader(Options{Environment: "staging"}).Load("does-not-exist.hcl")
	if !diags.HasErrors() || !strings.Contains(diags[0].Detail, "--stack") {
		t.Fatalf("want a hint about --stack, got %v", diags)
	}
}

func summaries(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		out = append(out, d.Summary)
	}
	return out
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden %s (run go test ./... -update to create it): %v", path, err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run go test ./... -update to accept):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

func TestLoad_UntypedVariableFromFlagIsAString(t *testing.T) {
	src := []byte(`
stack "demo" {
  app_image = "demo/app"
  version   = var.version
}
variable "version" {
  default = "v1"
}
environment "staging" {
  domain = "s.example"
}
`)
	stack, diags := NewLoader(Options{Environment: "staging", Vars: map[string]string{"version": "v2"}}).LoadSource("x.hcl", src)
	if diags.HasErrors() || stack.Version != "v2" {
		t.Fatalf("untyped --var version=v2: %v", diags)
	}
}

// TestLoad_AppImageTakesATagOrAReference: deploy --image is a tag of
// app_image or a whole reference with a registry and a tag or digest;
// either reaches every service that runs the app image, and only those,
// and sets the release version. Anything else is refused, not rendered.
func TestLoad_AppImageTakesATagOrAReference(t *testing.T) {
	src := `
stack "s" {
  app_image = "obcms/app"
  version   = "1.0.0"
}
environment "staging" { domain = "s.example.org" }
service "web" "web" { image = "obcms/app:1.0.0" }
service "celery_worker" "worker" { image = "obcms/app:1.0.0" }
service "redis" "redis" { image = "redis:7" }
`
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct{ image, want, version, refused string }{
		{image: "1.2.0", want: "obcms/app:1.2.0", version: "1.2.0"},
		{image: "127.0.0.1:5000/obcms/app:1.2.0", want: "127.0.0.1:5000/obcms/app:1.2.0", version: "1.2.0"},
		{image: "registry.example.org/team/app@" + digest, want: "registry.example.org/team/app@" + digest, version: "sha256-abababababab"},
		{image: "registry.example.org/obcms/app", refused: "names no tag or digest"},
		{image: "has space", refused: "neither a tag"},
		{image: "obcms/App:1", refused: "neither a tag"},
		{image: "app:", refused: "neither a tag"},
	} {
		loader := NewLoader(Options{Environment: "staging", AppTag: tc.image, LookupEnv: func(string) (string, bool) { return "", false }})
		stack, diags := loader.LoadSource("s.hcl", []byte(src))
		if tc.refused != "" {
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.refused) {
				t.Errorf("--image %q: diags %v, want a refusal saying %q", tc.image, diags, tc.refused)
			}
			continue
		}
		if diags.HasErrors() {
			t.Errorf("--image %q: %v", tc.image, diags)
			continue
		}
		if web, worker, redis := stack.Service("web").Image, stack.Service("worker").Image, stack.Service("redis").Image; web != tc.want || worker != tc.want || redis != "redis:7" {
			t.Errorf("--image %q: web %s, worker %s, redis %s; want %s for the app's services only", tc.image, web, worker, redis, tc.want)
		}
		if stack.Version != tc.version {
			t.Errorf("--image %q: version %q, want %q", tc.image, stack.Version, tc.version)
		}
	}
}

// TestLoad_DockerCertPath: docker_cert_path is resolved against the
// stack file (~ is the home directory) and applies to tcp:// only.
func TestLoad_DockerCertPath(t *testing.T) {
	home, _ := os.UserHomeDir()
	for _, tc := range []struct{ host, path, want, refused string }{
		{host: "tcp://10.0.0.5:2376", path: "certs/prod", want: "/ops/certs/prod"},
		{host: "tcp://10.0.0.5:2376", path: "/etc/docker/client", want: "/etc/docker/client"},
		{host: "tcp://10.0.0.5:2376", path: "~/.docker/prod", want: filepath.Join(home, ".docker/prod")},
		{host: "ssh://deploy@prod", path: "certs", refused: "applies to a tcp:// docker_host only"},
		{host: "unix:///var/run/docker.sock", path: "certs", refused: "applies to a tcp:// docker_host only"},
		{host: "tcp://10.0.0.5:2376", path: "", refused: "is empty"},
	} {
		src := fmt.Sprintf(`
stack "s" { app_image = "obcms/app" }
environment "staging" {
  domain           = "s.example.org"
  docker_host      = %q
  docker_cert_path = %q
}
service "redis" "redis" { image = "redis:7" }
`, tc.host, tc.path)
		loader := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }})
		stack, diags := loader.LoadSource("/ops/s.hcl", []byte(src))
		if tc.refused != "" {
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.refused) || !strings.Contains(diags.Error(), "/ops/s.hcl:6") {
				t.Errorf("%s with %q: diags %v, want a refusal at s.hcl:6 saying %q", tc.host, tc.path, diags, tc.refused)
			}
			continue
		}
		if diags.HasErrors() {
			t.Errorf("%s with %q: %v", tc.host, tc.path, diags)
			continue
		}
		if stack.DockerCertPath != tc.want {
			t.Errorf("%s with %q: DockerCertPath %q, want %q", tc.host, tc.path, stack.DockerCertPath, tc.want)
		}
	}
}

// TestLoad_EngineAndPlacement: engine is docker unless the environment
// says swarm, anything else is refused at its place with did-you-mean;
// placement constraints reach the model, and one Swarm would refuse is
// refused at its place.
func TestLoad_EngineAndPlacement(t *testing.T) {
	for _, tc := range []struct{ engine, placement, want, refused string }{
		{engine: "", want: EngineDocker},
		{engine: `engine = "swarm"`, want: EngineSwarm},
		{engine: `engine = "docker"`, want: EngineDocker},
		{engine: `engine = "swram"`, refused: `Did you mean "swarm"`},
		{engine: `engine = "kubernetes"`, refused: `is not one of docker, swarm`},
		{engine: `engine = "swarm"`, placement: `placement = ["node.role == manager", "node.labels.obcd.db==true"]`, want: EngineSwarm},
		{engine: `engine = "swarm"`, placement: `placement = ["role == manager"]`, refused: "Invalid placement"},
		{engine: `engine = "swarm"`, placement: `placement = ["node.role = manager"]`, refused: "Invalid placement"},
	} {
		src := fmt.Sprintf(`
stack "s" { app_image = "obcms/app" }
environment "production" {
  domain = "s.example.org"
  %s
}
service "redis" "redis" {
  image = "redis:7"
  %s
}
`, tc.engine, tc.placement)
		loader := NewLoader(Options{Environment: "production", LookupEnv: func(string) (string, bool) { return "", false }})
		stack, diags := loader.LoadSource("/ops/s.hcl", []byte(src))
		if tc.refused != "" {
			line := "/ops/s.hcl:5"
			if tc.placement != "" {
				line = "/ops/s.hcl:9"
			}
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.refused) || !strings.Contains(diags.Error(), line) {
				t.Errorf("%s %s: diags %v, want a refusal at %s saying %q", tc.engine, tc.placement, diags, line, tc.refused)
			}
			continue
		}
		if diags.HasErrors() {
			t.Errorf("%s %s: %v", tc.engine, tc.placement, diags)
			continue
		}
		if stack.Engine != tc.want {
			t.Errorf("%s: Engine %q, want %q", tc.engine, stack.Engine, tc.want)
		}
		if tc.placement != "" && len(stack.Services[0].Placement) != 2 {
			t.Errorf("%s: placement %v, want the two constraints", tc.placement, stack.Services[0].Placement)
		}
	}
}

// TestValidate_APortASwarmCannotPublishIsRefusedAtItsPlace: on a swarm,
// a host address, a range or a random host port is refused where it is
// written, as the deploy would refuse it; one engine takes them.
func TestValidate_APortASwarmCannotPublishIsRefusedAtItsPlace(t *testing.T) {
	for _, tc := range []struct {
		engine, port string
		refused      bool
	}{
		{`engine = "swarm"`, "8080:80", false},
		{`engine = "swarm"`, "0.0.0.0:8080:80/udp", false},
		{`engine = "swarm"`, "127.0.0.1:8080:80", true},
		{`engine = "swarm"`, "8000-8001:8000-8001", true},
		{`engine = "swarm"`, "80", true},
		{"", "127.0.0.1:8080:80", false},
		{"", "8000-8001:8000-8001", false},
	} {
		src := fmt.Sprintf(`
stack "s" { app_image = "obcms/app" }
environment "production" {
  domain = "s.example.org"
  %s
}
service "redis" "redis" {
  image = "redis:7"
  ports = [%q]
}
`, tc.engine, tc.port)
		_, diags := NewLoader(Options{Environment: "production", LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource("/ops/s.hcl", []byte(src))
		refused := diags.HasErrors() && strings.Contains(diags.Error(), "Port a swarm cannot publish") && strings.Contains(diags.Error(), "/ops/s.hcl:9")
		if refused != tc.refused || diags.HasErrors() && !refused {
			t.Errorf("%s %q: refused %v, want %v (%v)", tc.engine, tc.port, refused, tc.refused, diags)
		}
	}
}
