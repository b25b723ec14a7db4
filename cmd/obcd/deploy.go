package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator"
	"github.com/obcd/obcd/orchestrator/checks"
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
	skipChecks  bool
	pushgateway string
	image       string
}

// stateBackend opens where the stack keeps releases and the lock: the
// local state directory, or the Postgres database of a state block.
func (o *globalOptions) stateBackend(ctx context.Context, env string, stack *stackhcl.Stack) (orchestrator.Store, orchestrator.Locker, error) {
	if stack.State.Backend != "postgres" {
		dir := o.envStateDir(env)
		return orchestrator.OpenLocalStore(dir), orchestrator.NewFileLocker(dir), nil
	}
	dsn, err := o.stateDSN(env, stack)
	if err != nil {
		return nil, nil, err
	}
	store, err := orchestrator.OpenPostgresStore(ctx, dsn, env)
	if err != nil {
		return nil, nil, fmt.Errorf("state database (secret %s): %w", stack.State.DSN, err)
	}
	return store, orchestrator.NewPostgresLocker(dsn, env), nil
}

// stateDSN is the connection string of the state database, from the
// secret the stack's state block names.
func (o *globalOptions) stateDSN(env string, stack *stackhcl.Stack) (string, error) {
	secrets, err := o.secrets(env)
	if err != nil {
		return "", err
	}
	return secrets.Value(stack.State.DSN)
}

// deployer wires the engine, the state store and the secrets of env.
func (o *globalOptions) deployer(env string, stack *stackhcl.Stack, events func(orchestrator.Event)) (*orchestrator.Deployer, orchestrator.Locker, error) {
	store, err := o.secrets(env)
	if err != nil {
		return nil, nil, err
	}
	state, locker, err := o.stateBackend(context.Background(), env, stack)
	if err != nil {
		return nil, nil, err
	}
	docker, err := checks.DialDocker(stack.DockerHost)
	if err != nil {
		return nil, nil, fmt.Errorf("docker engine %s: %w", stack.DockerHost, err)
	}
	return &orchestrator.Deployer{
		Engine:  &orchestrator.Engine{API: docker},
		Docker:  docker,
		Store:   state,
		Stack:   stack,
		Secrets: store,
		Events:  events,
	}, locker, nil
}

func (o *globalOptions) envStateDir(env string) string {
	return filepath.Join(o.resolvedStateDir(), env)
}

// eventPrinter renders engine events: progress lines on stderr, or JSON
// lines on stdout with --json.
func (o *globalOptions) eventPrinter(asJSON bool) func(orchestrator.Event) {
	if asJSON {
		enc := json.NewEncoder(o.stdout)
		return func(e orchestrator.Event) { _ = enc.Encode(e) }
	}
	return func(e orchestrator.Event) {
		target := e.Container
		if target == "" {
			target = e.Service
		}
		if target != "" {
			target += ": "
		}
		fmt.Fprintf(o.stderr, "[%s] %-8s %s%s\n", e.Time.Format("15:04:05"), e.Phase, target, e.Message)
	}
}

func newPlanCommand(global *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plan ENV",
		Short: "Show what a deploy would change, and why",
		Long: `Plan renders the stack, observes what runs on the environment's Docker engine
(one snapshot, by compose labels) and prints the ordered actions a deploy
would take: create, recreate, remove, run (one-off jobs such as migrate)
or keep, each with its cause. Secret values are never shown.

Exit codes: 0 nothing would change; 2 something would change; 1 error.`,
		Args: exactEnv,
		RunE: func(_ *cobra.Command, args []string) error {
			stack, err := global.loadStack(args[0])
			if err != nil {
				return err
			}
			d, _, err := global.deployer(args[0], stack, nil)
			if err != nil {
				return err
			}
			result, err := d.Deploy(context.Background(), orchestrator.DeployOptions{DryRun: true})
			if err != nil {
				return err
			}
			if asJSON {
				if err := json.NewEncoder(global.stdout).Encode(result.Plan); err != nil {
					return err
				}
			} else {
				fmt.Fprint(global.stdout, result.Plan.String())
			}
			if result.Plan.Changes() {
				return reportedError{errors.New("changes"), ExitFound}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	return cmd
}

func newDeployCommand(global *globalOptions) *cobra.Command {
	opts := &deployOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:   "deploy ENV",
		Short: "Deploy the stack to an environment, prove it, roll back by itself on failure",
		Long: `Deploy takes the environment lock, validates (errors stop it), renders,
plans against what runs, tags the running app image as <repo>:stable and
<repo>:stable-<release>, checks the images, creates networks and volumes,
delivers config files into the containers through the API, runs migrate
as a one-off before any web change, starts new containers that do not
wait for each other together, rolls web start-first (one new replica per
old one, all at once; the old ones stop only when every new one is healthy
and in the network alias, after an overlap longer than nginx's DNS cache),
updates the other services, and runs the probes over a verification window.

On success the release is recorded as stable. A failure after changes
began rolls back by itself to the stable release (its images, rendered
config and env), runs the probes again, and exits non-zero with a report:
the failing probe, its last results, container state and log tail.

Volumes are never removed. A configuration that failed before is refused
unless --force.

Exit codes: 0 deployed (or nothing to change); 1 failed (rolled back when
changes had begun); 64 usage error.`,
		Example: `  obcd deploy staging
  obcd deploy staging --dry-run
  obcd deploy production --var app_version=1.4.2 --lock-wait 5m`,
		Args: exactEnv,
		RunE: func(_ *cobra.Command, args []string) error { return runDeploy(opts, args[0]) },
	}
	cmd.Flags().BoolVarP(&opts.yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().BoolVar(&opts.force, "force", false, "deploy a configuration that failed before")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print events as JSON lines on stdout")
	cmd.Flags().DurationVar(&opts.lockWait, "lock-wait", 0, "wait this long for another deploy's lock instead of failing at once")
	cmd.Flags().DurationVar(&opts.verify, "verify-window", 60*time.Second, "how long post-deploy probes may take to pass")
	cmd.Flags().BoolVar(&opts.skipChecks, "skip-checks", false, "skip the validate gate (not recommended)")
	cmd.Flags().StringVar(&opts.image, "image", "", "deploy this tag of the app image (web, celery, migrate) instead of the stack's version")
	cmd.Flags().StringVar(&opts.pushgateway, "pushgateway", "", "push obcd's metrics (probe results, this deploy's outcome) to this Pushgateway afterwards")
	return cmd
}

func runDeploy(opts *deployOptions, env string) error {
	stack, err := opts.loadStack(env)
	if err != nil {
		return err
	}
	if opts.image != "" {
		retagApp(stack, opts.image)
	}
	if !opts.skipChecks && !opts.dryRun {
		if err := opts.gate(env); err != nil {
			return err
		}
	}
	d, locker, err := opts.deployer(env, stack, opts.eventPrinter(opts.json))
	if err != nil {
		return err
	}
	d.Verify = opts.verify
	ctx := context.Background()
	if !opts.dryRun {
		held, err := locker.Acquire(ctx, "deploy", opts.lockWait)
		if err != nil {
			return err
		}
		defer held.Release()
	}
	if !opts.dryRun && !opts.yes && isTerminal(os.Stdin) {
		preview, err := d.Deploy(ctx, orchestrator.DeployOptions{DryRun: true})
		if err != nil {
			return err
		}
		fmt.Fprint(opts.stderr, preview.Plan.String())
		if !preview.Plan.Changes() {
			return nil
		}
		if !confirm(opts.stderr, os.Stdin, "Deploy these changes to "+env+"?") {
			return reportedError{errors.New("cancelled"), ExitFailure}
		}
	}
	result, err := d.Deploy(ctx, orchestrator.DeployOptions{DryRun: opts.dryRun, Force: opts.force})
	if perr := opts.pushDeploy(stack, result, err); perr != nil {
		fmt.Fprintf(opts.stderr, "warning: %v\n", perr)
	}
	if opts.dryRun || (err == nil && !result.Plan.Changes()) {
		fmt.Fprint(opts.stdout, result.Plan.String())
		return err
	}
	if err != nil {
		if result.Report == "" {
			// Refused before anything changed (a release that failed
			// before, a missing image): the error is the whole report.
			fmt.Fprintf(opts.stderr, "deploy failed: %v\n", err)
		}
		fmt.Fprint(opts.stderr, result.Report)
		if result.RolledBack {
			fmt.Fprintf(opts.stderr, "Rolled back to release %s.\n", result.Release.RolledBackTo)
		}
		return reportedError{err, ExitFailure}
	}
	fmt.Fprintf(opts.stdout, "Deployed release %s (%s).\n", result.Release.ID, result.Release.Version)
	return nil
}

// gate runs the static checks; errors stop the deploy.
func (o *globalOptions) gate(env string) error {
	ev, err := o.evaluate(env, false, 5*time.Second)
	if err != nil {
		return err
	}
	if checks.ExitCode(ev.findings, false) != 0 {
		for _, f := range ev.findings {
			if f.Rule.Severity == checks.SeverityError {
				fmt.Fprintf(o.stderr, "  ✗ %s %s: %s\n", f.Rule.Code, f.Location(), f.Text())
			}
		}
		return reportedError{errors.New("validation failed"), ExitFailure}
	}
	return nil
}

func newRollbackCommand(global *globalOptions) *cobra.Command {
	var to string
	var lockWait time.Duration
	cmd := &cobra.Command{
		Use:   "rollback ENV [--to RELEASE]",
		Short: "Return an environment to a recorded release",
		Long: `Rollback converges the environment to a recorded release (the last stable one
by default): its images, rendered config and env. It takes the lock, rolls
web start-first and runs the probes.

Exit codes: 0 rolled back and verified; 1 failed; 64 usage error.`,
		Args: exactEnv,
		RunE: func(_ *cobra.Command, args []string) error {
			env := args[0]
			stack, err := global.loadStack(env)
			if err != nil {
				return err
			}
			d, locker, err := global.deployer(env, stack, global.eventPrinter(false))
			if err != nil {
				return err
			}
			ctx := context.Background()
			held, err := locker.Acquire(ctx, "rollback", lockWait)
			if err != nil {
				return err
			}
			defer held.Release()
			target, err := rollbackTarget(ctx, d.Store, to)
			if err != nil {
				return err
			}
			result, err := d.Rollback(ctx, target)
			if err != nil {
				return reportedError{fmt.Errorf("rollback to %s: %w", target.ID, err), ExitFailure}
			}
			fmt.Fprintf(global.stdout, "Rolled back to release %s (%s), recorded as release %s.\n", target.ID, target.Version, result.Release.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "release id to return to (default: the last stable release)")
	cmd.Flags().DurationVar(&lockWait, "lock-wait", 0, "wait this long for the lock")
	return cmd
}

func rollbackTarget(ctx context.Context, store orchestrator.Store, id string) (orchestrator.Release, error) {
	if id != "" {
		return store.Get(ctx, id)
	}
	stable, ok, err := store.Stable(ctx)
	if err != nil {
		return stable, err
	}
	if !ok {
		return stable, errors.New("no stable release to roll back to; see obcd history")
	}
	return stable, nil
}

func newHistoryCommand(global *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history ENV",
		Short: "List the releases of an environment",
		Long:  "History lists every release, oldest first: id, time, who, version, outcome and whether it is stable.\n\nExit codes: 0; 1 error.",
		Args:  exactEnv,
		RunE: func(_ *cobra.Command, args []string) error {
			stack, err := global.loadStack(args[0])
			if err != nil {
				return err
			}
			store, _, err := global.stateBackend(context.Background(), args[0], stack)
			if err != nil {
				return err
			}
			releases, err := store.List(context.Background())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(global.stdout).Encode(releases)
			}
			tw := tabwriter.NewWriter(global.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "RELEASE\tCREATED\tUSER\tVERSION\tOUTCOME\tSTABLE\tNOTE")
			for _, r := range releases {
				stable := ""
				if r.Stable {
					stable = "yes"
				}
				note := r.Message
				if r.RolledBackTo != "" {
					note = "rolled back to " + r.RolledBackTo + ": " + note
				}
				if r.RollbackOf != "" {
					note = "rollback to " + r.RollbackOf
					if r.Message != "" {
						note += ": " + r.Message
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Created.Format(time.RFC3339), r.User, r.Version, r.Outcome, stable, oneLine(note))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print releases as JSON")
	return cmd
}

func newUnlockCommand(global *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock ENV",
		Short: "Break a stale deploy lock",
		Long:  "Unlock removes the environment's lock, printing who held it. Use it only when the holder is gone.\n\nExit codes: 0 removed; 1 no lock or error.",
		Args:  exactEnv,
		RunE: func(_ *cobra.Command, args []string) error {
			stack, err := global.loadStack(args[0])
			if err != nil {
				return err
			}
			var info orchestrator.LockInfo
			if stack.State.Backend == "postgres" {
				dsn, derr := global.stateDSN(args[0], stack)
				if derr != nil {
					return derr
				}
				info, err = orchestrator.UnlockPostgres(context.Background(), dsn, args[0])
			} else {
				info, err = orchestrator.Unlock(global.envStateDir(args[0]))
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(global.stdout, "Removed the lock held by %s on %s (pid %d) since %s.\n", info.Holder, info.Host, info.PID, info.Started.Format(time.RFC3339))
			return nil
		},
	}
}

// pushDeploy sends the deploy's outcome and probe results to the
// Pushgateway, when one is given.
func (opts *deployOptions) pushDeploy(stack *stackhcl.Stack, result orchestrator.DeployResult, deployErr error) error {
	if opts.pushgateway == "" || opts.dryRun {
		return nil
	}
	m := telemetry.New(stack.Name, stack.Environment, version)
	m.ObserveResults(result.Release.Probes)
	m.RecordOperation(telemetry.OperationDeploy, time.Now(), deployErr == nil)
	if result.RolledBack {
		m.RecordOperation(telemetry.OperationRollback, time.Now(), true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.Push(ctx, opts.pushgateway, templates.ProjectName(stack))
}

func newDownCommand(global *globalOptions) *cobra.Command {
	var volumes bool
	cmd := &cobra.Command{
		Use:   "down ENV",
		Short: "Stop and remove an environment's containers and network; keep its data",
		Long: `Down removes the environment's containers and network. Named volumes (the
database, Redis, backups, Prometheus and Grafana data) are kept unless
--volumes is given. Release history is kept.

Exit codes: 0 done; 1 error; 64 usage error.`,
		Args: exactEnv,
		RunE: func(_ *cobra.Command, args []string) error {
			env := args[0]
			stack, err := global.loadStack(env)
			if err != nil {
				return err
			}
			docker, err := checks.DialDocker(stack.DockerHost)
			if err != nil {
				return fmt.Errorf("docker engine %s: %w", stack.DockerHost, err)
			}
			ctx := context.Background()
			_, locker, err := global.stateBackend(ctx, env, stack)
			if err != nil {
				return err
			}
			held, err := locker.Acquire(ctx, "down", 0)
			if err != nil {
				return err
			}
			defer held.Release()
			project := templates.ProjectName(stack)
			if err := (&orchestrator.Engine{API: docker}).RemoveProject(ctx, project, volumes); err != nil {
				return err
			}
			kept := " (volumes kept)"
			if volumes {
				kept = " and its volumes"
			}
			fmt.Fprintf(global.stdout, "Removed %s%s.\n", project, kept)
			return nil
		},
	}
	cmd.Flags().BoolVar(&volumes, "volumes", false, "also remove the named volumes: this deletes the environment's data")
	return cmd
}

// retagApp points every service running the app image at tag.
func retagApp(stack *stackhcl.Stack, tag string) {
	for _, svc := range stack.Services {
		if strings.HasPrefix(svc.Image, stack.AppImage+":") {
			svc.Image = stack.AppImage + ":" + tag
		}
	}
	stack.Version = tag
}

// confirm asks a yes/no question on a terminal; anything but y/yes is no.
func confirm(w io.Writer, r io.Reader, question string) bool {
	fmt.Fprintf(w, "%s [y/N] ", question)
	answer, _ := bufio.NewReader(r).ReadString('\n')
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}
