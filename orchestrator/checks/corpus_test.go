package checks

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obcd/obcd/internal/toolcheck"
	"github.com/obcd/obcd/templates"
)

// TestCorpus_WhatValidateStrictAcceptsTheRealToolsAccept: every stack of
// the corpus (the rule fixtures, and the example stacks) that validate
// --strict accepts in an environment renders there, and compose-go,
// nginx -t, promtool and amtool accept the render. The hostile-input
// table (cmd/obcd) and the stack fuzzer (internal/stackgen) hold the
// same check for their stacks.
func TestCorpus_WhatValidateStrictAcceptsTheRealToolsAccept(t *testing.T) {
	fixtures, err := filepath.Glob(filepath.Join(stackFixtures, "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	examples, err := filepath.Glob("../../stacks/*.hcl")
	if err != nil || len(examples) == 0 {
		t.Fatalf("no example stacks: %v", err)
	}
	accepted := map[string]bool{}
	for _, path := range append(fixtures, examples...) {
		first := "staging"
		if strings.HasPrefix(path, stackFixtures) {
			first = fixtureEnv(t, path)
		}
		envs := loadStack(t, path, first).Environments
		for _, env := range envs {
			stack := loadStack(t, path, env)
			secrets := strongFakeSecrets(stack)
			if strings.HasPrefix(path, stackFixtures) {
				code := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".hcl"), ".waived")
				secrets = loadFixtureSecrets(t, fixtureSecretsPath(code), stack)
			}
			findings := Run(&Input{Stack: stack, Secrets: secrets})
			if c := Count(findings); c.Errors > 0 || c.Warnings > 0 {
				continue
			}
			name := filepath.Base(path) + "/" + env
			accepted[name] = true
			t.Run(name, func(t *testing.T) {
				artifacts, err := templates.Render(stack, secrets)
				if err != nil {
					t.Fatalf("validate --strict accepts it, but render refuses: %v", err)
				}
				out := t.TempDir()
				if err := templates.WriteDir(out, artifacts); err != nil {
					t.Fatal(err)
				}
				files := toolcheck.Render(out, stack, secrets)
				if files.Compose == "" || files.Nginx == "" {
					t.Fatalf("no compose file or nginx.conf in the render: %+v", files)
				}
				if err := toolcheck.Check(context.Background(), files); err != nil {
					t.Errorf("validate --strict accepts it, but a real tool refuses the render: %v", err)
				}
			})
		}
	}
	for _, want := range []string{"clean.hcl/staging", "clean.hcl/production", "obcms.hcl/staging", "obcms.hcl/production", "e2e.hcl/staging"} {
		if !accepted[want] {
			t.Errorf("validate --strict refuses %s, which the corpus holds as accepted", want)
		}
	}
	t.Logf("%d stack-environments accepted and checked by the real tools", len(accepted))
}
