package templates

import (
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
)

// loadOBCMS evaluates stacks/obcms.hcl for env with an empty process
// environment, so results never depend on the machine.
func loadOBCMS(t testing.TB, env string) *stackhcl.Stack {
	t.Helper()
	return loadOBCMSWithEnv(t, env, func(string) (string, bool) { return "", false })
}

// loadOBCMSWithEnv is loadOBCMS with a given process environment.
func loadOBCMSWithEnv(t testing.TB, env string, lookupEnv func(string) (string, bool)) *stackhcl.Stack {
	t.Helper()
	loader := stackhcl.NewLoader(stackhcl.Options{Environment: env, LookupEnv: lookupEnv})
	stack, diags := loader.Load("../stacks/obcms.hcl")
	if diags.HasErrors() {
		t.Fatalf("load stacks/obcms.hcl for %s: %s", env, diags.Error())
	}
	return stack
}

// indexByPath indexes rendered artifacts by path, failing on duplicates.
func indexByPath(t testing.TB, artifacts []Artifact) map[string]Artifact {
	t.Helper()
	byPath := map[string]Artifact{}
	for _, artifact := range artifacts {
		if _, dup := byPath[artifact.Path]; dup {
			t.Fatalf("artifact %s rendered twice", artifact.Path)
		}
		byPath[artifact.Path] = artifact
	}
	return byPath
}
