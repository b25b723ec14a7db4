package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJSON_EveryJSONCommandPrintsADocumentWhenItFails: asked for JSON, a
// command that fails before its own document (a stack that does not
// load, an unknown environment, a usage error) still prints one JSON
// document on stdout, with the error, the exit code and, for a stack
// that does not load, each diagnostic with its file, line and column.
func TestJSON_EveryJSONCommandPrintsADocumentWhenItFails(t *testing.T) {
	dir := t.TempDir()
	broken := "stack \"x\" {\n  app_image = \"demo/app\n}\nenvironment \"staging\" { domain = \"a.example.org\" }\n"
	if err := os.WriteFile(filepath.Join(dir, "obcd.hcl"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	type document struct {
		Error       *string `json:"error"`
		ExitCode    int     `json:"exit_code"`
		Usage       bool    `json:"usage_error"`
		Diagnostics []struct {
			Severity, Summary, File string
			Line, Column            int
		} `json:"diagnostics"`
	}
	for _, args := range [][]string{
		{"render", "staging", "--json"},
		{"plan", "staging", "--json"},
		{"deploy", "staging", "--json", "--yes"},
		{"status", "staging", "--json"},
		{"verify", "staging", "--json"},
		{"history", "staging", "--json"},
		{"prune", "staging", "--json"},
		{"audit", "staging", "--format", "json"},
		{"secrets", "init", "staging", "--json"},
	} {
		name := strings.Join(args, " ")
		r := obcd(t, dir, nil, args...)
		var doc document
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Errorf("%s: stdout is not one JSON document (%v):\n%s\nstderr:\n%s", name, err, r.stdout, r.stderr)
			continue
		}
		if r.code != 1 || doc.ExitCode != 1 || doc.Error == nil || len(doc.Diagnostics) != 1 {
			t.Errorf("%s: exit %d, document %+v", name, r.code, doc)
			continue
		}
		if d := doc.Diagnostics[0]; d.File != "obcd.hcl" || d.Line != 2 || d.Column == 0 || d.Severity != "error" {
			t.Errorf("%s: diagnostic %+v, want obcd.hcl:2:N", name, d)
		}
		if !strings.Contains(r.stderr, "obcd.hcl:2:") {
			t.Errorf("%s: stderr does not point at obcd.hcl:2:\n%s", name, r.stderr)
		}
	}
	r := obcd(t, dir, nil, "render", "--json")
	var doc document
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != ExitUsage || doc.ExitCode != ExitUsage || !doc.Usage {
		t.Errorf("render --json with no environment: exit %d, %v, document %+v\n%s", r.code, err, doc, r.stdout)
	}
}
