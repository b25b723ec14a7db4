package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

// obcdBinary is the real obcd, built once for the exit-code tests.
var obcdBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "obcd-bin-")
	if err != nil {
		panic(err)
	}
	obcdBinary = filepath.Join(dir, "obcd")
	build := exec.Command("go", "build", "-o", obcdBinary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as make build makes it: the in-network agent runs it
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build obcd: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// obcd runs the built binary in dir with a clean OBCD_* environment.
func obcd(t testing.TB, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(obcdBinary, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "NO_COLOR=1"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, stdout.String(), stderr.String()}
}

// workspace copies the example stack into a temp dir as obcd.hcl.
func workspace(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile("../../stacks/obcms.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "obcd.hcl"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRender_AfterSecretsInitWritesEverything(t *testing.T) {
	dir := workspace(t)
	init := obcd(t, dir, nil, "secrets", "init", "staging")
	if init.code != 0 {
		t.Fatalf("secrets init: %d %s", init.code, init.stderr)
	}
	secretsFile := filepath.Join(dir, ".obcd", "staging.secrets")
	info, err := os.Stat(secretsFile)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secrets file: %v %v", info, err)
	}
	r := obcd(t, dir, nil, "render", "staging")
	if r.code != 0 {
		t.Fatalf("render: %d\n%s", r.code, r.stderr)
	}
	for _, f := range []string{"docker-compose.staging.yml", ".env.staging", "config/pgbouncer/userlist.txt", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(dir, "build", "staging", f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	userlist, _ := os.Stat(filepath.Join(dir, "build", "staging", "config/pgbouncer/userlist.txt"))
	if userlist.Mode().Perm() != 0o600 {
		t.Errorf("userlist mode %04o", userlist.Mode().Perm())
	}
	assertNoSecretValues(t, secretsFile, init, r)

	again := obcd(t, dir, nil, "secrets", "init", "staging")
	if again.code != 0 || strings.Contains(again.stdout, "generated") {
		t.Errorf("second secrets init changed something: %+v", again)
	}
}

func TestRender_JSONOutput(t *testing.T) {
	dir := workspace(t)
	obcd(t, dir, nil, "secrets", "init", "production")
	r := obcd(t, dir, nil, "render", "production", "--out", "out", "--json")
	if r.code != 0 {
		t.Fatalf("%d %s", r.code, r.stderr)
	}
	var got struct {
		Out         string
		Environment string
		Files       []struct{ Path, SHA256 string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if got.Out != "out" || got.Environment != "production" || len(got.Files) < 20 {
		t.Errorf("json = %+v", got)
	}
}

// TestRender_BadInputExitsNonZeroAndWritesNothing covers the three
// failures the render issue names: each exits 1, explains itself, and
// leaves no output directory behind.
func TestRender_BadInputExitsNonZeroAndWritesNothing(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		env   string
		want  []string
	}{
		{
			name:  "missing secret",
			setup: func(*testing.T, string) {},
			env:   "staging",
			want:  []string{"secret \"", "has no value", "obcd secrets init staging", "OBCD_SECRET_", "nothing was written"},
		},
		{
			name: "malformed stack",
			setup: func(t *testing.T, dir string) {
				appendTo(t, filepath.Join(dir, "obcd.hcl"), "\nservice \"web\" \"web2\" {\n  replicas = \"many\"\n")
			},
			env:  "staging",
			want: []string{"on obcd.hcl:", `:22, in service "web" "web2"`, "nothing was written"},
		},
		{
			name:  "unknown environment",
			setup: func(*testing.T, string) {},
			env:   "qa",
			want:  []string{`Unknown environment "qa"`, "staging", "production", "nothing was written"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := workspace(t)
			tc.setup(t, dir)
			r := obcd(t, dir, nil, "render", tc.env)
			if r.code != ExitFailure {
				t.Fatalf("exit %d, want %d\n%s", r.code, ExitFailure, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "build")); !os.IsNotExist(err) {
				t.Errorf("build/ exists after a failed render: %v", err)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != "obcd.hcl" && e.Name() != ".obcd" {
					t.Errorf("stray file %s", e.Name())
				}
			}
		})
	}
}

func TestRender_SecretFromEnvironmentOverridesFile(t *testing.T) {
	dir := workspace(t)
	obcd(t, dir, nil, "secrets", "init", "staging")
	first := obcd(t, dir, nil, "render", "staging", "--out", "a")
	second := obcd(t, dir, []string{"OBCD_SECRET_OBCMS_USER_PASSWORD=overridden-in-env"}, "render", "staging", "--out", "b")
	if first.code != 0 || second.code != 0 {
		t.Fatal(first.stderr, second.stderr)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a", "config/pgbouncer/userlist.txt"))
	b, _ := os.ReadFile(filepath.Join(dir, "b", "config/pgbouncer/userlist.txt"))
	if bytes.Equal(a, b) {
		t.Error("OBCD_SECRET_OBCMS_USER_PASSWORD did not change the userlist")
	}
}

func TestUsageErrorsExit64(t *testing.T) {
	dir := workspace(t)
	for _, args := range [][]string{{"render"}, {"render", "a", "b"}, {"bogus"}, {"render", "staging", "--no-such-flag"}, {"render", "staging", "--var", "novalue"}} {
		if r := obcd(t, dir, nil, args...); r.code != ExitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, r.code, ExitUsage, r.stderr)
		}
	}
	if r := obcd(t, dir, nil, "--help"); r.code != 0 || !strings.Contains(r.stdout, "render") {
		t.Errorf("--help: %d %s", r.code, r.stdout)
	}
}

func TestRender_MissingStackFileSaysHowToFix(t *testing.T) {
	r := obcd(t, t.TempDir(), nil, "render", "staging")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "--stack") {
		t.Errorf("exit %d stderr %s", r.code, r.stderr)
	}
}

func assertNoSecretValues(t *testing.T, secretsFile string, results ...result) {
	t.Helper()
	values, err := secretFileValues(secretsFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, value := range values {
		for _, r := range results {
			if strings.Contains(r.stdout+r.stderr, value) {
				t.Errorf("a secret value appears in obcd's output")
			}
		}
	}
}

// secretFileValues are the values of a secrets file of 8 characters or
// more, without the quotes around them.
func secretFileValues(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var values []string
	for _, line := range strings.Split(string(data), "\n") {
		if _, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") && len(v) >= 8 {
			values = append(values, strings.Trim(v, `'"`))
		}
	}
	return values, nil
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// TestVersion_TheFlagPrintsWhatTheCommandPrints: obcd --version and obcd
// version print the same line, and exit 0.
func TestVersion_TheFlagPrintsWhatTheCommandPrints(t *testing.T) {
	dir := t.TempDir()
	flag, command := obcd(t, dir, nil, "--version"), obcd(t, dir, nil, "version")
	if flag.code != 0 || command.code != 0 || flag.stdout != command.stdout || !strings.HasPrefix(flag.stdout, "obcd ") {
		t.Errorf("--version: exit %d %q; version: exit %d %q", flag.code, flag.stdout, command.code, command.stdout)
	}
}

// TestAudit_JSONIsTheJSONFormat: audit --json prints the report JSON
// --format json prints; --json with --format md is a usage error, in
// JSON.
func TestAudit_JSONIsTheJSONFormat(t *testing.T) {
	dir := workspace(t)
	if r := obcd(t, dir, nil, "secrets", "init", "staging"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	byFlag, byFormat := obcd(t, dir, nil, "audit", "staging", "--json"), obcd(t, dir, nil, "audit", "staging", "--format", "json")
	var report map[string]any
	if err := json.Unmarshal([]byte(byFlag.stdout), &report); err != nil || report["environment"] != "staging" {
		t.Fatalf("audit --json: exit %d, %v\n%s", byFlag.code, err, byFlag.stdout)
	}
	if byFlag.code != byFormat.code || byFlag.stdout != byFormat.stdout {
		t.Errorf("audit --json and --format json differ: exit %d and %d", byFlag.code, byFormat.code)
	}
	both := obcd(t, dir, nil, "audit", "staging", "--json", "--format", "md")
	var failure map[string]any
	if both.code != 64 || json.Unmarshal([]byte(both.stdout), &failure) != nil || failure["usage_error"] != true {
		t.Errorf("audit --json --format md: exit %d\n%s", both.code, both.stdout)
	}
}

// TestCompletion_EnvironmentNamesOfTheStack: the ENV argument completes
// with the stack's environments, by prefix, for every command that takes
// one; a stack that does not parse completes nothing rather than failing.
func TestCompletion_EnvironmentNamesOfTheStack(t *testing.T) {
	dir := workspace(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "deploy", ""}, "production\nstaging\n:4\n"},
		{[]string{"__complete", "status", "st"}, "staging\n:4\n"},
		{[]string{"__complete", "secrets", "init", "p"}, "production\n:4\n"},
		{[]string{"__complete", "deploy", "staging", ""}, ":4\n"},
	} {
		if r := obcd(t, dir, nil, tc.args...); r.code != 0 || r.stdout != tc.want {
			t.Errorf("obcd %s: exit %d, %q, want %q", strings.Join(tc.args, " "), r.code, r.stdout, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.hcl"), []byte("environment \"x\" {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := obcd(t, dir, nil, "__complete", "--stack", "broken.hcl", "deploy", ""); r.code != 0 || r.stdout != ":4\n" {
		t.Errorf("a stack that does not parse: exit %d, %q", r.code, r.stdout)
	}
}
