package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/obcd/obcd/orchestrator"
	"github.com/obcd/obcd/templates"
)

type downOptions struct {
	*globalOptions
	volumes  bool
	lockWait time.Duration
}

func newDownCommand(global *globalOptions) *cobra.Command {
	opts := &downOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:   "down ENV",
		Short: "Stop and remove an environment's containers and network; keep its data",
		Long:  downLong,
		Args:  exactEnv,
		RunE:  func(_ *cobra.Command, args []string) error { return runDown(opts, args[0]) },
	}
	cmd.Flags().BoolVar(&opts.volumes, "volumes", false, "also remove the named volumes: this deletes the environment's data")
	cmd.Flags().DurationVar(&opts.lockWait, "lock-wait", 0, "wait this long for the lock")
	return cmd
}

func runDown(opts *downOptions, env string) error {
	environment, d, err := opts.openDeployer(env, nil)
	if err != nil {
		return err
	}
	defer environment.close()
	ctx := context.Background()
	if err := d.Down(ctx, orchestrator.DownOptions{Volumes: opts.volumes, LockWait: opts.lockWait}); err != nil {
		return err
	}
	kept := " (volumes kept)"
	if opts.volumes {
		kept = " and its volumes"
	}
	fmt.Fprintf(opts.stdout, "Removed %s%s.\n", templates.ProjectName(environment.stack), kept)
	return nil
}

const downLong = `Down takes the lock and removes the environment's containers and network.
Named volumes (the database, Redis, backups, Prometheus and Grafana data)
are kept unless --volumes is given. Release history is kept.

Exit codes: 0 done; 1 error; 64 usage error.`
