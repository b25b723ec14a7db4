package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/obcd/obcd/orchestrator"
)

type rollbackOptions struct {
	*globalOptions
	to               string
	lockWait         time.Duration
	allowNewerSchema bool
}

func newRollbackCommand(global *globalOptions) *cobra.Command {
	opts := &rollbackOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:     "rollback ENV [--to RELEASE]",
		Short:   "Return an environment to a recorded release",
		Long:    rollbackLong,
		Example: rollbackExample,
		Args:    exactEnv,
		RunE:    func(_ *cobra.Command, args []string) error { return runRollback(opts, args[0]) },
	}
	cmd.Flags().StringVar(&opts.to, "to", "", "release id to return to (default: the previous good release)")
	cmd.Flags().DurationVar(&opts.lockWait, "lock-wait", 0, "wait this long for the lock")
	cmd.Flags().BoolVar(&opts.allowNewerSchema, "allow-newer-schema", false, "roll back even when the database has applied migrations the release never had")
	return cmd
}

func runRollback(opts *rollbackOptions, env string) error {
	environment, d, err := opts.openDeployer(env, opts.eventPrinter(false))
	if err != nil {
		return err
	}
	defer environment.close()
	ctx := context.Background()
	result, err := d.Rollback(ctx, orchestrator.RollbackOptions{To: opts.to, LockWait: opts.lockWait, AllowNewerSchema: opts.allowNewerSchema})
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	rec := result.Release
	fmt.Fprintf(opts.stdout, "Rolled back to release %s (%s), recorded as release %s.\n", rec.RollbackOf, rec.Version, rec.ID)
	return nil
}

const rollbackLong = `Rollback converges the environment to a recorded release: by default the
previous good release (the newest before the live one that succeeded and
runs something else), or --to any recorded release. It runs that
release's recorded image IDs, rendered config and env; a return to what is
live already is refused.

Each release records the Django migrations the database had applied when
it became stable (django_migrations). A rollback to a release that never
had a migration the database holds now is refused: the message lists them
and the manage.py migrate commands that would reverse them. obcd never
reverses a migration itself; --allow-newer-schema rolls back anyway.

It takes the lock, shows the plan it applies, rolls web start-first and
runs the probes. The rollback is a release of its own in history, and
becomes the stable one.

Exit codes: 0 rolled back and verified; 1 failed; 64 usage error.`

const rollbackExample = `  obcd rollback staging
  obcd rollback production --to 20261123T190102Z-a1b2c3`
