package main

import (
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/secrets"
)

// errInvalidStack is the family of errors whose diagnostics were printed.
var errInvalidStack = errors.New("the stack file has errors")

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
	loader := stackhcl.NewLoader(stackhcl.Options{Environment: env, Vars: inputs.Vars, AppTag: inputs.Image})
	stack, diags := loader.Load(o.stackFile)
	if len(diags) > 0 {
		if werr := loader.WriteDiagnostics(o.stderr, diags, !o.noColor && isTerminal(o.stderr)); werr != nil {
			return nil, fmt.Errorf("print diagnostics: %w", werr)
		}
	}
	if diags.HasErrors() {
		errs := 0
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				errs++
			}
		}
		fmt.Fprintf(o.stderr, "%s: %d error(s); nothing was written.\n", o.stackFile, errs)
		return nil, reportedError{errInvalidStack, ExitFailure}
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
