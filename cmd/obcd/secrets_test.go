package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretsRotate_ChangesOneValueAndPrintsNone: rotate generates a new
// value for one secret, or takes it from stdin; only that line of the
// secrets file changes, the file stays 0600, and no value (old or new)
// appears in the output. A secret the stack does not declare, an empty
// stdin, and an OBCD_SECRET_ override are refused with the file as it was.
func TestSecretsRotate_ChangesOneValueAndPrintsNone(t *testing.T) {
	dir := workspace(t)
	if r := obcd(t, dir, nil, "secrets", "init", "staging"); r.code != 0 {
		t.Fatalf("secrets init: %d %s", r.code, r.stderr)
	}
	file := filepath.Join(dir, ".obcd", "staging.secrets")
	read := func() string {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	before := read()

	rotated := obcd(t, dir, nil, "secrets", "rotate", "staging", "obcms_user_password")
	if rotated.code != 0 || !strings.Contains(rotated.stdout, "rotated obcms_user_password (version ") || !strings.Contains(rotated.stderr, "obcd deploy staging") {
		t.Fatalf("rotate: %d\n%s%s", rotated.code, rotated.stdout, rotated.stderr)
	}
	after := read()
	changed := 0
	beforeLines, afterLines := strings.Split(before, "\n"), strings.Split(after, "\n")
	if len(beforeLines) != len(afterLines) {
		t.Fatalf("rotation changed the number of lines: %d -> %d", len(beforeLines), len(afterLines))
	}
	for i := range beforeLines {
		if beforeLines[i] != afterLines[i] {
			changed++
			if !strings.HasPrefix(afterLines[i], "OBCD_SECRET_OBCMS_USER_PASSWORD=") {
				t.Errorf("rotation changed another line: %q", afterLines[i])
			}
			_, old, _ := strings.Cut(beforeLines[i], "=")
			_, now, _ := strings.Cut(afterLines[i], "=")
			if strings.Contains(rotated.stdout+rotated.stderr, old) || strings.Contains(rotated.stdout+rotated.stderr, now) {
				t.Error("a secret value appears in rotate's output")
			}
		}
	}
	if changed != 1 {
		t.Errorf("%d lines changed, want exactly the rotated one", changed)
	}
	if info, _ := os.Stat(file); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o after rotation", info.Mode().Perm())
	}

	// From stdin, with --json.
	cmd := exec.Command(obcdBinary, "secrets", "rotate", "staging", "sentry_dsn", "--value-from-stdin", "--json")
	cmd.Dir, cmd.Env = dir, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Stdin = strings.NewReader("https://newKey99@sentry.example/2\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("rotate from stdin: %v\n%s", err, stderr.String())
	}
	var out struct {
		Secret          string `json:"secret"`
		Version         string `json:"version"`
		PreviousVersion string `json:"previous_version"`
		Generated       bool   `json:"generated"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || out.Secret != "sentry_dsn" || out.PreviousVersion == "" ||
		out.Version == out.PreviousVersion || out.Generated {
		t.Errorf("--json: %v %+v\n%s", err, out, stdout.String())
	}
	if !strings.Contains(read(), "OBCD_SECRET_SENTRY_DSN=https://newKey99@sentry.example/2\n") || strings.Contains(stdout.String()+stderr.String(), "newKey99") {
		t.Errorf("the stdin value was not stored as given, or was printed")
	}

	kept := read()
	for name, c := range map[string]struct {
		args []string
		env  []string
		want string
	}{
		"undeclared secret": {[]string{"secrets", "rotate", "staging", "no_such"}, nil, "declares no secret \"no_such\""},
		"override set":      {[]string{"secrets", "rotate", "staging", "obcms_user_password"}, []string{"OBCD_SECRET_OBCMS_USER_PASSWORD=x"}, "overrides the secrets file"},
		"empty stdin":       {[]string{"secrets", "rotate", "staging", "obcms_user_password", "--value-from-stdin"}, nil, "standard input is empty"},
		"one argument":      {[]string{"secrets", "rotate", "staging"}, nil, "takes the environment and the secret's name"},
	} {
		r := obcd(t, dir, c.env, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want a failure saying %q", name, r.code, r.stderr, c.want)
		}
		if read() != kept {
			t.Errorf("%s: the secrets file changed", name)
		}
	}
}
