package hcl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteDiagnostics_ADuplicateShowsBothPlacesAndNothingBetween: the
// snippet of a duplicate shows the line of each declaration, however far
// apart, and none of the lines between them.
func TestWriteDiagnostics_ADuplicateShowsBothPlacesAndNothingBetween(t *testing.T) {
	src := "stack \"x\" { app_image = \"demo/app\" }\nservice \"web\" \"web\" {}\n" + strings.Repeat("# filler line between\n", 80) +
		"service \"web\" \"web\" {}\nenvironment \"staging\" { domain = \"a.example.org\" }\n"
	loader := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }})
	_, diags := loader.LoadSource("obcd.hcl", []byte(src))
	var b strings.Builder
	if err := loader.WriteDiagnostics(&b, diags, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"on obcd.hcl:83:1", "  83: service \"web\" \"web\" {}", "first declared at obcd.hcl:2:1:", "   2: service \"web\" \"web\" {}"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "filler") {
		t.Errorf("the snippet shows the lines between the two places:\n%s", out)
	}
}

// TestLoad_OneSyntaxErrorGivesOneDiagnostic: a missing quote, brace or
// bracket gives one error, at the place that is wrong, with file:line:col
// in plain output; the parser's follow-on errors are not shown.
func TestLoad_OneSyntaxErrorGivesOneDiagnostic(t *testing.T) {
	body := "service \"web\" \"web\" {\n  replicas = 2\n  env = { A = \"b\", C = \"d\" }\n}\nlocals {\n  a = \"x\"\n  b = [1, 2]\n}\n"
	for _, c := range []struct{ name, src, at string }{
		{"missing closing quote", "stack \"x\" {\n  app_image = \"demo/app\n}\n" + body, "obcd.hcl:2:"},
		{"missing opening quote", "stack \"x\" { app_image = \"demo/app\" }\nenvironment \"staging\" {\n  domain = staging.example.org\"\n}\n" + body, "obcd.hcl:3:"},
		{"missing brace", "stack \"x\" { app_image = \"demo/app\"\n" + body, "obcd.hcl:"},
		{"missing bracket", "stack \"x\" { app_image = \"demo/app\" }\nlocals {\n  l = [1, 2\n}\n" + body, "obcd.hcl:4:1"},
		{"stray character", "stack \"x\" { app_image = \"demo/app\" }\n@\n" + body, "obcd.hcl:2:1"},
	} {
		loader := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }})
		_, diags := loader.LoadSource("obcd.hcl", []byte(c.src))
		if len(diags.Errs()) != 1 {
			t.Errorf("%s: %d errors, want 1:\n%v", c.name, len(diags.Errs()), diags)
			continue
		}
		var b strings.Builder
		if err := loader.WriteDiagnostics(&b, diags, false); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "  on "+c.at) {
			t.Errorf("%s: plain output does not point at %s:\n%s", c.name, c.at, b.String())
		}
	}
}

// TestWriteDiagnostics_APrivateFileIsNeverQuoted: a stack file readable by
// its owner alone (0600) may hold what its owner keeps private, so a
// diagnostic points into it by file:line:col and quotes none of its lines.
func TestWriteDiagnostics_APrivateFileIsNeverQuoted(t *testing.T) {
	for _, mode := range []os.FileMode{0o600, 0o644} {
		path := filepath.Join(t.TempDir(), "obcd.hcl")
		src := "stack \"x\" { app_image = \"demo/app\" }\nlocals {\n  note = \"PRIVATE-LINE-7f3a\"\n  n = tonumber(\"x\") + local.note\n}\nenvironment \"staging\" { domain = \"a.example.org\" }\n"
		if err := os.WriteFile(path, []byte(src), mode); err != nil {
			t.Fatal(err)
		}
		loader := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }})
		_, diags := loader.Load(path)
		if !diags.HasErrors() {
			t.Fatal("the broken local loaded")
		}
		var b strings.Builder
		if err := loader.WriteDiagnostics(&b, diags, false); err != nil {
			t.Fatal(err)
		}
		quoted := strings.Contains(b.String(), "PRIVATE-LINE-7f3a")
		if quoted != (mode == 0o644) || !strings.Contains(b.String(), path+":4:") {
			t.Errorf("mode %04o: quoted = %v, want %v:\n%s", mode, quoted, mode == 0o644, b.String())
		}
	}
}
