package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator"
	"github.com/obcd/obcd/orchestrator/checks"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/state"
	"github.com/obcd/obcd/orchestrator/telemetry"
	"github.com/obcd/obcd/templates"
)

type deployOptions struct {
	*globalOptions
	yes         bool
	dryRun      bool
	force       bool
	json        bool
	lockWait    time.Duration
	verify      time.Duration
	watch       time.Duration
	watchSet    bool
	keep        int
	skipChecks  bool
	pushgateway string
	image       string
	plan        string
}

func newDeployCommand(global *globalOptions) *cobra.Command {
	opts := &deployOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:     "deploy ENV",
		Short:   "Deploy the stack to an environment, prove it, roll back by itself on failure",
		Long:    deployLong,
		Example: deployExample,
		Args:    exactEnv,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			opts.watchSet = cmd.Flags().Changed("watch")
			if opts.keep < 0 {
				return usageError{fmt.Errorf("--keep %d: give 0 (keep every release) or more", opts.keep)}
			}
			if opts.watch < 0 || opts.watch > time.Hour {
				return usageError{fmt.Errorf("--watch %s: give a duration from 0s (no window) to 1h", opts.watch)}
			}
			if opts.plan == "" {
				return nil
			}
			for _, flag := range []string{"var", "image", "dry-run"} {
				if cmd.Flags().Changed(flag) {
					return usageError{fmt.Errorf("--%s cannot be given with --plan: a saved plan deploys what it was made with", flag)}
				}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error { return runDeploy(opts, args[0]) },
	}
	cmd.Flags().BoolVarP(&opts.yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().BoolVar(&opts.force, "force", false, "deploy a configuration that failed before")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print events as JSON lines on stdout")
	cmd.Flags().DurationVar(&opts.lockWait, "lock-wait", 0, "wait this long for another deploy's lock instead of failing at once")
	cmd.Flags().DurationVar(&opts.verify, "verify-window", 60*time.Second, "how long post-deploy probes may take to pass")
	cmd.Flags().IntVar(&opts.keep, "keep", orchestrator.DefaultKeep, "after a success, keep this many of the newest releases (see obcd prune; 0 keeps all)")
	cmd.Flags().DurationVar(&opts.watch, "watch", 0, "watch the release this long after the switch before it is stable (default: the environment's watch, else 60s; 0s: no window)")
	cmd.Flags().BoolVar(&opts.skipChecks, "skip-checks", false, "skip the validate gate (not recommended)")
	cmd.Flags().StringVar(&opts.image, "image", "", "deploy this app image (web, celery, migrate) instead of the stack's version: a tag of app_image (1.2.0), or a reference with a registry and a tag or digest (registry.example.org/obcms/app:1.2.0); a missing image is pulled")
	cmd.Flags().StringVar(&opts.plan, "plan", "", "apply the plan saved in FILE by obcd plan --out")
	cmd.Flags().StringVar(&opts.pushgateway, "pushgateway", "", "push obcd's metrics (probe results, this deploy's outcome) to this Pushgateway afterwards")
	return cmd
}

func runDeploy(opts *deployOptions, env string) error {
	inputs, saved, err := opts.deployInputs()
	if err != nil {
		return err
	}
	environment, d, err := opts.openDeployerWith(env, inputs, opts.eventPrinter(opts.json))
	if err != nil {
		return err
	}
	defer environment.close()
	ctx := context.Background()
	if opts.dryRun {
		if d.OnSwarm() {
			plan, err := d.PlanSwarm(ctx)
			if err != nil {
				return err
			}
			return printPlan(opts.globalOptions, plan, false)
		}
		planned, err := d.Plan(ctx)
		if err != nil {
			return err
		}
		return printPlan(opts.globalOptions, planned.Plan, false)
	}
	d.Verify, d.Watch, d.Keep = opts.verify, environment.stack.Watch, opts.keep
	if opts.watchSet {
		d.Watch = opts.watch
	}
	if !opts.skipChecks {
		d.Gate = environment.gate
	}
	result, err := d.Deploy(ctx, opts.deployOptions(env, saved))
	if perr := opts.pushDeploy(environment.stack, result, err); perr != nil {
		fmt.Fprintf(opts.stderr, "warning: %v\n", perr)
	}
	return opts.report(result, err)
}

// deployInputs are the stack inputs of the command line, or of the saved
// plan with it.
func (opts *deployOptions) deployInputs() (stackInputs, *orchestrator.SavedPlan, error) {
	if opts.plan == "" {
		inputs, err := opts.inputs()
		inputs.Image = opts.image
		return inputs, nil, err
	}
	file, err := readPlanFile(opts.plan)
	if err != nil {
		return stackInputs{}, nil, err
	}
	return file.stackInputs, &file.SavedPlan, nil
}

func (opts *deployOptions) deployOptions(env string, saved *orchestrator.SavedPlan) orchestrator.DeployOptions {
	deploy := orchestrator.DeployOptions{Force: opts.force, LockWait: opts.lockWait, Saved: saved}
	if saved == nil && !opts.yes && isTerminal(os.Stdin) {
		deploy.Confirm = func(orchestrator.Plan) bool {
			return confirm(opts.stderr, os.Stdin, "Deploy these changes to "+env+"?")
		}
	}
	return deploy
}

// report prints how the deploy ended and maps it to an error.
func (opts *deployOptions) report(result orchestrator.DeployResult, err error) error {
	var reported reportedError
	switch {
	case errors.As(err, &reported):
		return err // the gate printed its findings
	case errors.Is(err, orchestrator.ErrCancelled):
		fmt.Fprintln(opts.stderr, "Deploy cancelled; nothing changed.")
		return reportedError{err, ExitFailure}
	case err != nil:
		if result.Report == "" {
			// Refused before anything changed (the lock, a release that
			// failed before, a stale plan, a missing image): the error is
			// the whole report.
			fmt.Fprintf(opts.stderr, "deploy failed: %v\n", err)
			if hint := engine.TLSHint(err); hint != "" {
				fmt.Fprintf(opts.stderr, "Hint: %s.\n", hint)
			}
		}
		fmt.Fprint(opts.stderr, result.Report)
		return reportedError{err, opts.outcomeLine(result.Release, err)}
	case !result.Plan.HasWork():
		fmt.Fprint(opts.stdout, result.Plan.String())
		return nil
	}
	fmt.Fprintf(opts.stdout, "Deployed release %s (%s).\n", result.Release.ID, result.Release.Version)
	return nil
}

// outcomeLine says how a failed deploy ended, and returns its exit code.
func (opts *deployOptions) outcomeLine(rel state.Release, err error) int {
	switch {
	case errors.Is(err, orchestrator.ErrRollbackFailed):
		fmt.Fprintf(opts.stderr, "Release %s failed, and the rollback to release %s failed too (%s): see above what runs now.\n",
			rel.ID, rel.RolledBackTo, rel.Outcome)
		return ExitRollbackFailed
	case errors.Is(err, orchestrator.ErrRolledBack):
		fmt.Fprintf(opts.stderr, "Rolled back to release %s: release %s failed (%s).\n", rel.RolledBackTo, rel.ID, rel.Outcome)
		return ExitRolledBack
	}
	return ExitFailure
}

// gate is the deploy's validate gate: the static checks over the stack as
// it will deploy. Errors stop the deploy; they are printed here.
func (e *environment) gate(stack *stackhcl.Stack) error {
	findings := checks.Run(&checks.Input{Stack: stack, Secrets: e.secrets})
	if checks.ExitCode(findings, false) == 0 {
		return nil
	}
	for _, f := range findings {
		if f.Rule.Severity == checks.SeverityError && !f.Waived() {
			fmt.Fprintf(e.global.stderr, "  ✗ %s %s: %s\n", f.Rule.Code, f.Location(), f.Text())
		}
	}
	return reportedError{errors.New("validation failed"), ExitFailure}
}

// pushDeploy sends the deploy's outcome and probe results to the
// Pushgateway, when one is given.
func (opts *deployOptions) pushDeploy(stack *stackhcl.Stack, result orchestrator.DeployResult, deployErr error) error {
	if opts.pushgateway == "" {
		return nil
	}
	m := telemetry.New(stack.Name, stack.Environment, version)
	m.ObserveResults(result.Release.Probes)
	outcome := result.Release.Outcome
	m.RecordOperation(telemetry.OperationDeploy, time.Now(), deployErr == nil && outcome == state.OutcomeSucceeded)
	if outcome == state.OutcomeRolledBack || outcome == state.OutcomeRollbackFailed {
		m.RecordOperation(telemetry.OperationRollback, time.Now(), outcome == state.OutcomeRolledBack)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.Push(ctx, opts.pushgateway, templates.ProjectName(stack))
}

// confirm asks a yes/no question on a terminal; anything but y/yes is no.
func confirm(w io.Writer, r io.Reader, question string) bool {
	fmt.Fprintf(w, "%s [y/N] ", question)
	answer, _ := bufio.NewReader(r).ReadString('\n')
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}

const deployLong = `Deploy takes the environment lock, validates the stack as it will deploy (with
--var and --image; errors stop it), renders, plans against what runs and
shows the plan, asks (on a terminal, unless --yes), then applies exactly
that plan: it builds or pulls missing images, creates networks and volumes,
delivers config files into the containers through the API, takes a
pg_dump and runs migrate as one-offs before any web change, starts new
containers that do not wait for each other together, rolls web start-first
(one new replica per old one, all at once; the old ones stop only when
every new one is healthy and in the network alias, after an overlap longer
than nginx's DNS cache), updates the other services, and runs the probes
over a verification window. Then it watches the release for the watch
window (the environment's watch, 60s by default, or --watch): an exit or
restart of a container, a turn to unhealthy (from the engine's event
stream) or a failing critical probe fails the release.

On success the release is recorded as stable, and each image it runs is
tagged by ID as <repo>:stable-<release>, with <repo>:stable moved to it. A
failure after changes began rolls back by itself to the stable release
(its image IDs, rendered config and env), runs the probes again, and
exits non-zero with a report: the failing probe, its last results,
container state and log tail.

--plan FILE applies a plan saved by obcd plan --out, without asking, and
refuses it when the stack file, the rendered config, a secret, the release
history or the engine's containers and images changed since it was made.

Volumes are never removed. A configuration that failed before is refused
unless --force.

Exit codes, one per recorded outcome:
  0  succeeded: live and stable (or nothing to change)
  1  failed: stopped before any change (also refused, locked, a failed
     gate, a stale plan, cancelled), or failed with no release to return to
  3  rolled-back: failed after changes began; the previous release runs
     again, proven by the probes
  4  rollback-failed: the previous release could not be proven either; the
     report says what runs now and what to do
  64 usage error`

const deployExample = `  obcd deploy staging
  obcd deploy staging --dry-run
  obcd deploy production --var app_version=1.4.2 --lock-wait 5m
  obcd plan production --out release.plan && obcd deploy production --plan release.plan`
