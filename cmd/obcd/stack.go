package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/hcl/v2"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/internal/budget"
	"github.com/obcd/obcd/orchestrator/secrets"
)

// errInvalidStack is the family of errors whose diagnostics were printed.
var errInvalidStack = errors.New("the stack file has errors")

// invalidStack is errInvalidStack with its diagnostics, for --json.
type invalidStack struct{ diags hcl.Diagnostics }

func (e invalidStack) Error() string { return errInvalidStack.Error() }
func (e invalidStack) Unwrap() error { return errInvalidStack }

// stackInputs are what a stack is loaded with besides the file: --var
// and the app image tag of deploy --image.
type stackInputs struct {
	Vars  map[string]string `json:"vars,omitempty"`
	Image string            `json:"image,omitempty"`
}

// inputs are the stack inputs the command line gives.
func (o *globalOptions) inputs() (stackInputs, error) {
	vars, err := o.parseVars()
	return stackInputs{Vars: vars}, err
}

// loadStack evaluates the stack file for env, printing every diagnostic
// (errors and warnings) with its source snippet to stderr.
func (o *globalOptions) loadStack(env string) (*stackhcl.Stack, error) {
	inputs, err := o.inputs()
	if err != nil {
		return nil, err
	}
	return o.loadStackWith(env, inputs)
}

func (o *globalOptions) loadStackWith(env string, inputs stackInputs) (*stackhcl.Stack, error) {
	loader := stackhcl.NewLoader(stackhcl.Options{Environment: env, Vars: inputs.Vars, AppTag: inputs.Image, AllowFile: o.allowFile})
	var stack *stackhcl.Stack
	var diags hcl.Diagnostics
	o.bounded("evaluating "+o.stackFile, func() { stack, diags = loader.Load(o.stackFile) })
	if len(diags) > 0 {
		if werr := loader.WriteDiagnostics(o.stderr, diags, !o.noColor && isTerminal(o.stderr)); werr != nil {
			return nil, fmt.Errorf("print diagnostics: %w", werr)
		}
	}
	if diags.HasErrors() {
		fmt.Fprintf(o.stderr, "%s: %d error(s); nothing was written.\n", o.stackFile, stackhcl.ErrorCount(diags))
		return nil, reportedError{invalidStack{diags}, ExitFailure}
	}
	return stack, nil
}

// secretsPath is the secrets file of env.
func (o *globalOptions) secretsPath(env string) string {
	return secrets.Path(o.resolvedStateDir(), env)
}

// secrets opens the environment's secret store.
func (o *globalOptions) secrets(env string) (*secrets.Store, error) {
	return secrets.Load(o.secretsPath(env), nil)
}

// computeLimits bound evaluating or rendering a stack: a 10 MB stack at
// the bounds hcl sets takes under 150 MB and about a second of CPU.
var computeLimits = budget.Limits{Memory: 256 << 20, CPU: 1500 * time.Millisecond}

// bounded runs fn, a computation the stack file can make grow without
// bound, and ends obcd with exit 1 if it exceeds computeLimits: it runs
// before anything is written or locked, so stopping is safe.
func (o *globalOptions) bounded(what string, fn func()) {
	budget.Run(computeLimits, func(exceeded string) {
		err := fmt.Errorf("%s took %s, so obcd stopped; nothing was written. An expression builds a value too large: a for expression over another, or a function given a huge count or width (indent, format, replace). Make the value smaller, or read it with file()",
			what, exceeded)
		code := reportError(o.stderr, err)
		if o.running != nil && wantsJSON(o.running) {
			printErrorJSON(o.stdout, err, code)
		}
		os.Exit(code)
	}, fn)
}
