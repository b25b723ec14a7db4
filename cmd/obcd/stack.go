package main

import (
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator"
)

// errInvalidStack is the family of errors whose diagnostics were printed.
var errInvalidStack = errors.New("the stack file has errors")

// loadStack evaluates the stack file for env, printing every diagnostic
// (errors and warnings) with its source snippet to stderr.
func (o *globalOptions) loadStack(env string) (*stackhcl.Stack, error) {
	vars, err := o.parseVars()
	if err != nil {
		return nil, err
	}
	loader := stackhcl.NewLoader(stackhcl.Options{Environment: env, Vars: vars})
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

// secrets opens the environment's secret store.
func (o *globalOptions) secrets(env string) (*orchestrator.SecretStore, error) {
	return orchestrator.LoadSecrets(orchestrator.SecretsPath(o.resolvedStateDir(), env), nil)
}
