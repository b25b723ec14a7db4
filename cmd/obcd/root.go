package main

import (
	"errors"
	"fmt"
	"github.com/obcd/obcd/orchestrator/engine"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes. 0 and 1 are the usual success and failure; 2 is reserved
// for "ran, and found something" (warnings under --strict, a plan with
// changes); 64 is a usage error, as in sysexits.h.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitFound   = 2
	// ExitRolledBack: a deploy failed after changes began, and the
	// previous release runs again, proven by the probes.
	ExitRolledBack = 3
	// ExitRollbackFailed: a deploy failed after changes began, and the
	// previous release could not be proven either; a human must look.
	ExitRollbackFailed = 4
	ExitUsage          = 64
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	stackFile string
	stateDir  string
	vars      []string
	allowFile []string
	noColor   bool
	stdout    io.Writer
	stderr    io.Writer
	running   *cobra.Command // the command being run, once cobra chose it
}

// Execute runs obcd with args and returns the process exit code.
func Execute(args []string, stdout, stderr io.Writer) int {
	// Every command writes stdout through one counter, so that run knows
	// whether a --json command printed its document before it failed.
	out := &countingWriter{w: stdout}
	opts := &globalOptions{stdout: out, stderr: stderr}
	return run(newRootCommand(opts), args, out, stderr)
}

// run executes root. A panic is obcd's bug, never the user's: it exits 1
// (not 2, which means "found something"), naming obcd's version and
// asking for a report.
func run(root *cobra.Command, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "obcd %s: internal error: %v\nThis is a bug in obcd, not in your input. Please report it, with the command you ran and this message:\n%s", version, r, debug.Stack())
			code = ExitFailure
		}
	}()
	out, ok := stdout.(*countingWriter)
	if !ok {
		out = &countingWriter{w: stdout}
	}
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return ExitOK
	}
	code = reportError(stderr, err)
	if wantsJSON(cmd) && out.n == 0 {
		printErrorJSON(out, err, code)
	}
	return code
}

func newRootCommand(opts *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:           "obcd",
		Short:         "Render, validate and deploy a Django production stack from one HCL file",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints what obcd version prints.
		Version: versionLine(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().StringVarP(&opts.stackFile, "stack", "f", envOr("OBCD_STACK", "obcd.hcl"),
		"stack file (env OBCD_STACK)")
	root.PersistentFlags().StringVar(&opts.stateDir, "state-dir", os.Getenv("OBCD_STATE_DIR"),
		"state directory for secrets and releases (env OBCD_STATE_DIR; default: .obcd beside the stack file)")
	root.PersistentFlags().StringArrayVar(&opts.vars, "var", nil,
		"set a stack variable, NAME=VALUE (repeatable; env OBCD_VAR_<NAME> also works)")
	root.PersistentFlags().StringArrayVar(&opts.allowFile, "allow-file", nil,
		"let file() in the stack read files in DIR too (repeatable); by default it reads only inside the stack file's directory")
	root.PersistentFlags().BoolVar(&opts.noColor, "no-color", os.Getenv("NO_COLOR") != "", "disable colour in diagnostics (env NO_COLOR)")
	root.Args = func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unknown command %q", args[0])}
		}
		return nil
	}
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) { opts.running = cmd }
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRenderCommand(opts), newValidateCommand(opts), newAuditCommand(opts),
		newVerifyCommand(opts), newStatusCommand(opts), newServeCommand(opts),
		newPlanCommand(opts), newDeployCommand(opts), newRollbackCommand(opts), newHistoryCommand(opts), newUnlockCommand(opts), newDownCommand(opts), newPruneCommand(opts),
		newSecretsCommand(opts), newVersionCommand(opts), newAgentCommand(opts))
	withEnvironmentCompletion(root, opts)
	return root
}

// resolvedStateDir is --state-dir, or .obcd beside the stack file.
func (o *globalOptions) resolvedStateDir() string {
	if o.stateDir != "" {
		return o.stateDir
	}
	return filepath.Join(filepath.Dir(o.stackFile), ".obcd")
}

// parseVars turns --var NAME=VALUE flags into a map.
func (o *globalOptions) parseVars() (map[string]string, error) {
	vars := map[string]string{}
	for _, kv := range o.vars {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, usageError{fmt.Errorf("--var %q: write it as NAME=VALUE", kv)}
		}
		vars[name] = value
	}
	return vars, nil
}

// exactEnv requires exactly one environment argument.
func exactEnv(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageError{fmt.Errorf("%s needs one environment name, such as staging (got %d arguments)", cmd.CommandPath(), len(args))}
	}
	return nil
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

// usageError marks a mistake in how obcd was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// reportedError is an error whose details were already printed (such as
// diagnostics); only the exit code is left to decide.
type reportedError struct {
	err  error
	code int
}

func (e reportedError) Error() string { return e.err.Error() }
func (e reportedError) Unwrap() error { return e.err }

// reportError prints err (unless already reported) and maps it to an
// exit code by error family.
func reportError(stderr io.Writer, err error) int {
	var reported reportedError
	if errors.As(err, &reported) {
		return reported.code
	}
	var usage usageError
	if errors.As(err, &usage) {
		fmt.Fprintf(stderr, "Error: %s\nRun 'obcd --help' for usage.\n", err)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "Error: %s\n", err)
	if hint := engine.TLSHint(err); hint != "" {
		fmt.Fprintf(stderr, "Hint: %s.\n", hint)
	}
	return ExitFailure
}

const rootLong = `obcd turns one HCL stack file into every artifact a Django production stack
needs (compose file, PgBouncer userlist, Prometheus and its rules,
Alertmanager, Grafana provisioning, nginx, env files and the backup job),
for each environment the file declares.

Start with the bundled example:

  obcd secrets init staging --stack stacks/obcms.hcl
  obcd render staging --stack stacks/obcms.hcl

Exit codes: 0 success, 1 failure (including an invalid stack file),
2 "found something" where a command documents it, 64 usage error.`
