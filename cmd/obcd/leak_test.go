package main

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// leakValues gives every secret of stacks/obcms.hcl a distinctive value:
// the first half through the secrets file, the rest through
// OBCD_SECRET_* variables. Each holds characters that quoting handles
// (quotes, $, backslash, space), so a value written raw or escaped is
// found in both forms.
func leakValues() (file, env map[string]string) {
	names := []string{"django_secret_key", "field_encryption_key", "postgres_password", "replication_password",
		"obcms_user_password", "obcms_admin_password", "obcms_stats_password", "grafana_admin_password", "sentry_dsn"}
	file, env = map[string]string{}, map[string]string{}
	for i, name := range names {
		value := fmt.Sprintf(`LEAK%02dx7Qz-%s-"it's" $HOME \ end`, i, name)
		if name == "field_encryption_key" {
			value = "LEAK01x7QzFernetKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" // a valid Fernet key's length
		}
		if name == "sentry_dsn" {
			value = "https://LEAK08x7QzSentryKey@sentry.example/1"
		}
		if i%2 == 0 {
			file[name] = value
		} else {
			env[name] = value
		}
	}
	return file, env
}

// leakForms are the forms a value could leak in: as is, and each half of
// it, URL-escaped and with its quotes escaped.
func leakForms(value string) []string {
	forms := []string{value, value[:len(value)/2], value[len(value)/2:], url.QueryEscape(value), url.PathEscape(value),
		strings.ReplaceAll(value, `"`, `\"`)}
	var out []string
	for _, f := range forms {
		if len(f) >= 10 {
			out = append(out, f)
		}
	}
	return out
}

// TestSecrets_NoValueLeaksFromAnyCommand sets distinctive values through
// the secrets file and through OBCD_SECRET_*, runs every command,
// including their error paths, and greps every output and every file
// that is not 0600, in the workspace and the state directory: no value,
// in any form, may appear.
func TestSecrets_NoValueLeaksFromAnyCommand(t *testing.T) {
	dir := workspace(t)
	state := filepath.Join(dir, ".obcd")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	fileValues, envValues := leakValues()
	var lines strings.Builder
	for name, value := range fileValues {
		fmt.Fprintf(&lines, "OBCD_SECRET_%s=\"%s\"\n", strings.ToUpper(name), strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`).Replace(value))
	}
	if err := os.WriteFile(filepath.Join(state, "staging.secrets"), []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for name, value := range envValues {
		env = append(env, "OBCD_SECRET_"+strings.ToUpper(name)+"="+value)
	}
	broken := filepath.Join(dir, "broken.hcl")
	src, _ := os.ReadFile(filepath.Join(dir, "obcd.hcl"))
	if err := os.WriteFile(broken, append(src, []byte("\nservice \"web\" \"x\" {\n  replicas = \"many\"\n")...), 0o644); err != nil {
		t.Fatal(err)
	}

	runs := [][]string{
		{"validate", "staging"}, {"validate", "staging", "--json", "--strict"}, {"validate", "production"},
		{"audit", "staging"}, {"audit", "staging", "--format", "json"}, {"audit", "staging", "--out", "audit.md"},
		{"render", "staging"}, {"render", "staging", "--json"}, {"render", "staging", "--out", "out"},
		{"plan", "staging", "--json"}, {"plan", "staging", "--out", "saved.plan"},
		{"status", "staging", "--json"}, {"verify", "staging", "--json"}, {"history", "staging"},
		{"secrets", "init", "staging"}, {"secrets", "init", "staging", "--json"},
		{"secrets", "rotate", "staging", "postgres_password", "--json"},
		// Error paths: an override that refuses a rotation, a stack that
		// does not load, an unknown environment, a usage error, the
		// secrets file given as the stack.
		{"secrets", "rotate", "staging", "field_encryption_key"},
		{"-f", "broken.hcl", "render", "staging", "--json"}, {"-f", "broken.hcl", "validate", "staging"},
		{"render", "qa"}, {"render"}, {"--var", "nope=1", "render", "staging"},
		{"-f", ".obcd/staging.secrets", "validate", "staging"},
	}
	var outputs []string
	for _, args := range runs {
		r := obcd(t, dir, env, args...)
		outputs = append(outputs, fmt.Sprintf("obcd %s (exit %d):\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr))
	}
	if r := obcd(t, dir, env, "render", "staging"); r.code != 0 {
		t.Fatalf("render did not run, so the test proves little: exit %d\n%s", r.code, r.stderr)
	}

	all := map[string]string{}
	for k, v := range fileValues {
		all[k] = v
	}
	for k, v := range envValues {
		all[k] = v
	}
	for _, out := range outputs {
		for name, value := range all {
			for _, form := range leakForms(value) {
				if strings.Contains(out, form) {
					t.Errorf("the value of %s appears in the output of %s", name, firstLine(out))
				}
			}
		}
	}
	checked := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 == 0 {
			return nil // private to its owner
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		for name, value := range all {
			for _, form := range leakForms(value) {
				if strings.Contains(string(data), form) {
					t.Errorf("%s (mode %04o) holds the value of %s", path, info.Mode().Perm(), name)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Errorf("only %d readable files were checked; the commands wrote too little for the test to prove anything", checked)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
