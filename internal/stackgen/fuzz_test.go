package stackgen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/internal/toolcheck"
	"github.com/obcd/obcd/orchestrator/checks"
	"github.com/obcd/obcd/templates"
)

// seedFiles are the real stacks the generator mutates.
var seedFiles = []string{"../../stacks/obcms.hcl", "../../stacks/e2e.hcl", "../../testdata/stacks/clean.hcl"}

func newGenerator(t testing.TB) *Generator {
	t.Helper()
	var seeds [][]byte
	for _, path := range seedFiles {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, src)
	}
	g, err := New(seeds...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// budget is how long one stack may take through load, validate and
// render before the fuzzer calls it a hang: far above the 2 s a command
// is allowed, so that a slow, shared machine does not fail it.
const budget = 20 * time.Second

// FuzzStack generates well-formed stacks from the fuzzer's bytes and
// takes each through load, validate and render, for every environment it
// declares. Nothing may panic or hang, and validate's verdict must agree
// with render's and the real tools': a stack that loads and has no error
// finding renders, and compose-go, nginx, promtool and amtool accept the
// render.
//
// CI runs it for 60 s (make fuzz, from make test); a long run is
// go test ./internal/stackgen -run '^$' -fuzz FuzzStack -fuzztime 10m.
// Inputs that failed are kept in testdata/fuzz/FuzzStack and run with
// every go test.
func FuzzStack(f *testing.F) {
	g := newGenerator(f)
	for _, seed := range [][]byte{{}, {0, 0}, {0, 1, 0, 0, 0, 5}, {0, 2, 1, 7, 0, 3, 0, 9}, []byte("stackgen"), []byte("environment tiers and overrides")} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, choices []byte) {
		src := g.Generate(choices)
		done := make(chan struct{})
		var failure error
		go func() {
			defer close(done)
			defer func() {
				if r := recover(); r != nil {
					failure = fmt.Errorf("panic: %v", r)
				}
			}()
			failure = throughTheGate(t.TempDir(), src)
		}()
		select {
		case <-done:
		case <-time.After(budget):
			t.Fatalf("load, validate and render took more than %s on a %d-byte stack", budget, len(src))
		}
		if failure != nil {
			t.Fatalf("%v\n--- the stack (%d bytes):\n%s", failure, len(src), head(src, 4000))
		}
	})
}

// throughTheGate loads src for each environment it declares (three at
// most) and, where validate finds no error, renders it and has the real
// tools read the render: compose-go, nginx -t, promtool and amtool.
func throughTheGate(dir string, src []byte) error {
	file := filepath.Join(dir, "obcd.hcl")
	if err := os.WriteFile(file, src, 0o644); err != nil {
		return err
	}
	noEnv := func(string) (string, bool) { return "", false }
	first, diags := stackhcl.NewLoader(stackhcl.Options{Environment: "staging", LookupEnv: noEnv}).Load(file)
	envs := []string{"staging"}
	if first != nil {
		// Each command handles one environment; a stack of hundreds
		// (blocks repeated) need not be judged hundreds of times.
		envs = first.Environments
		if len(envs) > 3 {
			envs = []string{envs[0], envs[len(envs)/2], envs[len(envs)-1]}
		}
	} else if len(diags) == 0 {
		return fmt.Errorf("no stack and no diagnostic")
	}
	for _, env := range envs {
		stack, diags := stackhcl.NewLoader(stackhcl.Options{Environment: env, LookupEnv: noEnv}).Load(file)
		if (stack == nil) != diags.HasErrors() {
			return fmt.Errorf("%s: stack=%v but errors=%v", env, stack != nil, diags.HasErrors())
		}
		if stack == nil {
			continue
		}
		secrets := templates.MapSecrets{}
		for _, s := range stack.Secrets {
			secrets[s.Name] = "Gen3rated-" + s.Name + "-Qx7vB2mK9pL4nR8tW1yZ"
		}
		findings := checks.Run(&checks.Input{Stack: stack, Secrets: secrets})
		if checks.Count(findings).Errors > 0 {
			continue // validate refuses it: nothing else to agree with
		}
		artifacts, err := templates.Render(stack, secrets)
		if err != nil {
			return fmt.Errorf("%s: validate accepts the stack but render refuses it: %v", env, err)
		}
		out := filepath.Join(dir, "out-"+env)
		if err := templates.WriteDir(out, artifacts); err != nil {
			return fmt.Errorf("%s: write the render: %v", env, err)
		}
		if err := toolcheck.Check(context.Background(), toolcheck.Render(out, stack, secrets)); err != nil {
			return fmt.Errorf("%s: validate accepts the stack but a real tool refuses its render: %v", env, err)
		}
	}
	return nil
}

func head(src []byte, n int) []byte {
	if len(src) > n {
		return append(src[:n:n], []byte("\n...")...)
	}
	return src
}

// TestGenerate_IsWellFormedAndDeterministic: the generator's output
// always parses as HCL, the same choices give the same stack, and the
// mutations reach sizes of megabytes.
func TestGenerate_IsWellFormedAndDeterministic(t *testing.T) {
	g := newGenerator(t)
	largest := 0
	for i := 0; i < 100; i++ {
		choices := []byte(fmt.Sprintf("%d-%x-%d", i, i*7919, i*i))
		a, b := g.Generate(choices), g.Generate(choices)
		if string(a) != string(b) {
			t.Fatalf("choices %q gave two different stacks", choices)
		}
		if _, diags := hclParse(a); diags != "" {
			t.Fatalf("choices %q gave a stack that does not parse: %s\n%s", choices, diags, head(a, 2000))
		}
		largest = max(largest, len(a))
	}
	// Three chains of 16,384 locals each: seed 0, then three times
	// body 0, mutation 7 (a chain), shape 1, 2^14 long.
	chains := []byte{0, 0}
	for range 3 {
		chains = append(chains, 0, 0, 0, 7, 0, 1, 0, 14)
	}
	big := g.Generate(chains)
	if _, diags := hclParse(big); diags != "" || len(big) < 1<<20 {
		t.Errorf("three chains of locals make %d bytes (%s); the generator should reach megabytes", len(big), diags)
	}
	t.Logf("largest of 100 random stacks: %d bytes; three chains: %d bytes", largest, len(big))
}

// hclParse parses src as HCL, returning the errors as text ("" when none).
func hclParse(src []byte) (*hcl.File, string) {
	file, diags := hclsyntax.ParseConfig(src, "gen.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return file, diags.Error()
	}
	return file, ""
}
