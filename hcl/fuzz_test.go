package hcl

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the loader. It must never panic, and
// its result must be coherent: a stack exactly when there is no error,
// and every error with a summary. Seeds are every stack and fixture in
// the repository; found inputs are kept in hcl/testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"../stacks/*.hcl", "../testdata/hcl/*.hcl"} {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			src, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src, "staging")
		}
	}
	f.Add([]byte(`environment "x" { service "y" { replicas = 1 } }`), "x")
	f.Fuzz(func(t *testing.T, src []byte, env string) {
		loader := NewLoader(Options{Environment: env, LookupEnv: func(string) (string, bool) { return "", false }})
		stack, diags := loader.LoadSource("fuzz.hcl", src)
		if diags.HasErrors() == (stack != nil) {
			t.Fatalf("stack=%v but HasErrors=%v: %v", stack != nil, diags.HasErrors(), diags)
		}
		for _, d := range diags {
			if d.Summary == "" {
				t.Fatalf("diagnostic without summary: %#v", d)
			}
		}
	})
}
