package templates

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	stackhcl "github.com/obcd/obcd/hcl"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testSecrets gives every secret of stacks/obcms.hcl a fixed value, so
// golden files are stable. Values are recognisable so a leak is easy to
// spot in a diff.
func testSecrets() MapSecrets {
	return MapSecrets{
		"django_secret_key":      "TEST-django-secret-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEF",
		"field_encryption_key":   "TEST-fernet-key-AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"postgres_password":      "TESTpostgresPassword0001",
		"replication_password":   "TESTreplicationPassword02",
		"obcms_user_password":    "TESTobcmsUserPassword003",
		"obcms_admin_password":   "TESTobcmsAdminPassword04",
		"obcms_stats_password":   "TESTobcmsStatsPassword05",
		"grafana_admin_password": "TESTgrafanaAdminPass0006",
		"sentry_dsn":             "https://TESTsentryKey0007@sentry.example/1",
	}
}

func renderOBCMS(t testing.TB, env string) []Artifact {
	t.Helper()
	artifacts, err := Render(loadOBCMS(t, env), testSecrets())
	if err != nil {
		t.Fatalf("render %s: %v", env, err)
	}
	return artifacts
}

// TestRender_Golden pins every artifact of both environments byte for
// byte. Regenerate with: go test ./... -update
func TestRender_Golden(t *testing.T) {
	for _, env := range []string{"staging", "production"} {
		t.Run(env, func(t *testing.T) {
			dir := filepath.Join("..", "testdata", "golden", env)
			artifacts := renderOBCMS(t, env)
			if *update {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if err := WriteDir(dir, artifacts); err != nil {
					t.Fatal(err)
				}
				return
			}
			want := readTree(t, dir)
			got := map[string]string{}
			for _, a := range artifacts {
				got[a.Path] = string(a.Data)
			}
			for path, data := range got {
				if w, ok := want[path]; !ok {
					t.Errorf("%s: rendered but not in golden tree (run go test ./... -update)", path)
				} else if w != data {
					t.Errorf("%s differs from golden (run go test ./... -update to accept):\n%s", path, firstDiff(w, data))
				}
			}
			for path := range want {
				if _, ok := got[path]; !ok {
					t.Errorf("%s: in golden tree but no longer rendered", path)
				}
			}
		})
	}
}

func TestRender_IsDeterministic(t *testing.T) {
	first, second := renderOBCMS(t, "production"), renderOBCMS(t, "production")
	if len(first) != len(second) {
		t.Fatalf("artifact counts differ: %d vs %d", len(first), len(second))
	}
	for i := range first {
		if first[i].Path != second[i].Path || !bytes.Equal(first[i].Data, second[i].Data) {
			t.Errorf("%s differs between two renders", first[i].Path)
		}
	}
}

func TestRender_WritesEveryArtifactFamily(t *testing.T) {
	paths := map[string]Artifact{}
	for _, a := range renderOBCMS(t, "staging") {
		paths[a.Path] = a
	}
	for _, want := range []string{
		"docker-compose.staging.yml", ".env.staging", PathManifest,
		PathPgBouncerIni, PathPgBouncerUserlist, PathPostgresRoles, PathPostgresHBA,
		PathPrometheus, PathAlertmanager, PathNginx, PathBackupScript, PathPostgresQueries,
		DirGrafanaDatasources + "/prometheus.yml",
	} {
		if _, ok := paths[want]; !ok {
			t.Errorf("missing artifact %s", want)
		}
	}
	for _, secretFile := range []string{PathPgBouncerUserlist, PathPostgresRoles} {
		if mode := paths[secretFile].Mode; mode != ModeSecret {
			t.Errorf("%s mode = %04o, want 0600", secretFile, mode)
		}
	}
	rules, dashboards := 0, 0
	for p := range paths {
		if strings.HasPrefix(p, DirPrometheusRules+"/") {
			rules++
		}
		if strings.HasPrefix(p, DirGrafanaDashboards+"/") {
			dashboards++
		}
	}
	if rules == 0 || dashboards < 4 {
		t.Errorf("rules files = %d, dashboards = %d; want >0 and >=4", rules, dashboards)
	}
}

func TestRender_NoSecretValueInAnyArtifact(t *testing.T) {
	for _, env := range []string{"staging", "production"} {
		for _, a := range renderOBCMS(t, env) {
			for name, value := range testSecrets() {
				if bytes.Contains(a.Data, []byte(value)) {
					t.Errorf("%s/%s contains the value of secret %s", env, a.Path, name)
				}
			}
		}
	}
}

func TestRender_MissingSecretFailsNamingIt(t *testing.T) {
	secrets := testSecrets()
	delete(secrets, "obcms_stats_password")
	_, err := Render(loadOBCMS(t, "staging"), secrets)
	var missing *MissingSecretError
	if !errors.As(err, &missing) || missing.Name != "obcms_stats_password" {
		t.Fatalf("err = %v, want MissingSecretError for obcms_stats_password", err)
	}
}

// TestCompose_LoadsBackWithSchemaValidation reads the rendered compose
// file with compose-go's own loader (schema validation on, env file and
// config files resolved) and checks what the audit asked for.
func TestCompose_LoadsBackWithSchemaValidation(t *testing.T) {
	for _, env := range []string{"staging", "production"} {
		t.Run(env, func(t *testing.T) {
			project := loadComposeBack(t, env)
			wantWeb, wantWorker := map[string]int{"staging": 2, "production": 4}[env], map[string]int{"staging": 1, "production": 2}[env]
			if got := *project.Services["web"].Deploy.Replicas; got != wantWeb {
				t.Errorf("web replicas = %d, want %d", got, wantWeb)
			}
			if got := *project.Services["celery-worker"].Deploy.Replicas; got != wantWorker {
				t.Errorf("celery-worker replicas = %d, want %d", got, wantWorker)
			}
			for name, svc := range project.Services {
				if name == migrateService {
					if svc.HealthCheck != nil {
						t.Errorf("one-off migrate has a healthcheck")
					}
					continue
				}
				if svc.HealthCheck == nil || len(svc.HealthCheck.Test) == 0 {
					t.Errorf("long-running service %s has no healthcheck", name)
				}
				for dep, cond := range svc.DependsOn {
					if cond.Condition != types.ServiceConditionHealthy && !(dep == migrateService && cond.Condition == types.ServiceConditionCompletedSuccessfully) {
						t.Errorf("%s depends on %s with %q", name, dep, cond.Condition)
					}
				}
				for _, v := range svc.Volumes {
					if v.Type == types.VolumeTypeVolume && project.Volumes[v.Source].Name == "" {
						t.Errorf("%s mounts undeclared volume %s", name, v.Source)
					}
				}
			}
			if lim := project.Services["web"].Deploy.Resources.Limits; lim == nil || lim.MemoryBytes == 0 {
				t.Error("web has no memory limit")
			}
			if dep := project.Services["web"].DependsOn["pgbouncer"]; dep.Condition != types.ServiceConditionHealthy {
				t.Error("web does not wait for a healthy pgbouncer")
			}
			if env == "production" {
				for _, r := range []string{"db-replica-1", "db-replica-2"} {
					if _, ok := project.Services[r]; !ok {
						t.Errorf("replica service %s missing", r)
					}
				}
			}
		})
	}
}

func loadComposeBack(t *testing.T, env string) *types.Project {
	t.Helper()
	return loadRenderedCompose(t, env, renderOBCMS(t, env), testSecrets())
}

// loadRenderedCompose writes artifacts to a temp dir and loads their
// compose file with compose-go, as obcd deploys it: with secrets as the
// OBCD_SECRET_* variables it interpolates.
func loadRenderedCompose(t *testing.T, env string, artifacts []Artifact, secrets MapSecrets) *types.Project {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	if err := WriteDir(out, artifacts); err != nil {
		t.Fatal(err)
	}
	environment := map[string]string{}
	for name, value := range secrets {
		environment[stackhcl.SecretEnvVar(name)] = value
	}
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  out,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(out, ComposeFilePath(env))}},
		Environment: environment,
	}, func(o *loader.Options) { o.SetProjectName("obcms-"+env, true) })
	if err != nil {
		t.Fatalf("%s: compose-go rejects the rendered file: %v", env, err)
	}
	return project
}

func TestCompose_FailsLoudlyWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	if err := WriteDir(dir+"/out", renderOBCMS(t, "staging")); err != nil {
		t.Fatal(err)
	}
	_, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir + "/out",
		ConfigFiles: []types.ConfigFile{{Filename: dir + "/out/docker-compose.staging.yml"}},
		Environment: map[string]string{},
	}, func(o *loader.Options) { o.SetProjectName("obcms-staging", true) })
	if err == nil || !strings.Contains(err.Error(), "obcd secrets init staging") {
		t.Fatalf("want compose to fail with the fix, got %v", err)
	}
}

// withManifest is files with the manifest obcd writes for them.
func withManifest(t *testing.T, files ...Artifact) []Artifact {
	t.Helper()
	manifest, err := renderManifest(&stackhcl.Stack{Name: "demo", Environment: "staging"}, files)
	if err != nil {
		t.Fatal(err)
	}
	return append(files, manifest)
}

// TestWriteDir_RefusesADirectoryWithFilesItsManifestDoesNotList: a
// directory holding a manifest.json that obcd did not write (a web app's),
// or obcd's own render with a user's file added, is never replaced; the
// error names the files in the way, and nothing is removed.
func TestWriteDir_RefusesADirectoryWithFilesItsManifestDoesNotList(t *testing.T) {
	render := withManifest(t, Artifact{Path: "a.txt", Mode: ModePublic, Data: []byte("one")})
	for name, setup := range map[string]func(dir string){
		"a web app's manifest.json": func(dir string) {
			mustWrite(t, filepath.Join(dir, PathManifest), `{"name":"my-app","icons":[]}`)
			mustWrite(t, filepath.Join(dir, "index.html"), "<html>")
		},
		"a user's file beside obcd's render": func(dir string) {
			if err := WriteDir(dir, render); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(dir, "notes", "mine.txt"), "mine")
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			setup(dir)
			before := readTree(t, dir)
			err := WriteDir(dir, render)
			if !errors.Is(err, ErrForeignDir) {
				t.Fatalf("WriteDir = %v, want ErrForeignDir", err)
			}
			if after := readTree(t, dir); len(after) != len(before) {
				t.Errorf("files before %v, after %v", keys(before), keys(after))
			}
			if strings.Contains(name, "user's file") && !strings.Contains(err.Error(), filepath.Join("notes", "mine.txt")) {
				t.Errorf("the error does not name the file in the way: %v", err)
			}
		})
	}
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWriteDir_ReplacesPreviousRenderAtomically(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "build", "staging")
	first := withManifest(t, Artifact{Path: "a.txt", Mode: ModePublic, Data: []byte("one")})
	if err := WriteDir(dir, first); err != nil {
		t.Fatal(err)
	}
	second := withManifest(t, Artifact{Path: "b/c.txt", Mode: ModeSecret, Data: []byte("two")})
	if err := WriteDir(dir, second); err != nil {
		t.Fatal(err)
	}
	tree := readTree(t, dir)
	if _, stale := tree["a.txt"]; stale || tree["b/c.txt"] != "two" {
		t.Errorf("tree after second write: %v", keys(tree))
	}
	info, err := os.Stat(filepath.Join(dir, "b/c.txt"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode = %v, %v", info.Mode(), err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".staging.*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary directories left behind: %v", leftovers)
	}
}

func TestWriteDir_FailureLeavesPreviousRenderIntact(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	good := withManifest(t, Artifact{Path: "keep.txt", Mode: ModePublic, Data: []byte("keep")})
	if err := WriteDir(dir, good); err != nil {
		t.Fatal(err)
	}
	// "x" as a file and "x/y" as a file cannot both exist: the write fails midway.
	broken := []Artifact{{Path: "x", Mode: ModePublic, Data: []byte("1")}, {Path: "x/y", Mode: ModePublic, Data: []byte("2")}}
	if err := WriteDir(dir, broken); err == nil {
		t.Fatal("want an error")
	}
	if tree := readTree(t, dir); tree["keep.txt"] != "keep" || len(tree) != 2 {
		t.Errorf("previous render changed: %v", keys(tree))
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".out.*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary directories left behind: %v", leftovers)
	}
}

func TestWriteDir_RefusesDirectoryItDidNotWrite(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteDir(dir, []Artifact{{Path: PathManifest, Mode: ModePublic, Data: []byte("{}")}})
	if !errors.Is(err, ErrForeignDir) {
		t.Fatalf("err = %v, want ErrForeignDir", err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "precious.txt")); string(data) != "mine" {
		t.Error("foreign file touched")
	}
}

// BenchmarkRender renders each environment of the example stack from a
// loaded model; the target is under 50 ms per environment.
func BenchmarkRender(b *testing.B) {
	for _, env := range []string{"staging", "production"} {
		b.Run(env, func(b *testing.B) {
			stack := loadOBCMS(b, env)
			secrets := testSecrets()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := Render(stack, secrets); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoadAndRender includes parsing and evaluating the stack file,
// which is what `obcd render` does per environment.
func BenchmarkLoadAndRender(b *testing.B) {
	for _, env := range []string{"staging", "production"} {
		b.Run(env, func(b *testing.B) {
			secrets := testSecrets()
			for i := 0; i < b.N; i++ {
				if _, err := Render(loadOBCMS(b, env), secrets); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	return out
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + itoa(i+1) + ":\n- " + wl + "\n+ " + gl
		}
	}
	return "(identical lines, different bytes)"
}
