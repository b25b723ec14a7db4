package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/obcd/obcd/orchestrator"
	"github.com/obcd/obcd/templates"
)

type downOptions struct {
	*globalOptions
	volumes  bool
	yes      bool
	lockWait time.Duration
	// stdin is where the question of --volumes is answered; nil is
	// os.Stdin.
	stdin io.Reader
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
	cmd.Flags().BoolVarP(&opts.yes, "yes", "y", false, "with --volumes, delete the data without asking (needed when stdin is not a terminal)")
	cmd.Flags().DurationVar(&opts.lockWait, "lock-wait", 0, "wait this long for the lock")
	return cmd
}

func runDown(opts *downOptions, env string) error {
	environment, d, err := opts.openDeployer(env, nil)
	if err != nil {
		return err
	}
	defer environment.close()
	project := templates.ProjectName(environment.stack)
	if opts.volumes && !d.OnSwarm() && !opts.yes {
		stdin := opts.stdin
		if stdin == nil {
			stdin = os.Stdin
		}
		if !isTerminal(stdin) {
			return usageError{fmt.Errorf("down --volumes deletes the data of %s (the database, Redis, backups, Prometheus and Grafana), and stdin is not a terminal to ask on: add --yes to delete it; nothing was removed", project)}
		}
		if !confirm(opts.stderr, stdin, fmt.Sprintf("Delete the containers of %s and its volumes, with the database and the backups in them?", project)) {
			fmt.Fprintln(opts.stderr, "Nothing was removed.")
			return reportedError{errors.New("cancelled"), ExitFailure}
		}
	}
	ctx := context.Background()
	if err := d.Down(ctx, orchestrator.DownOptions{Volumes: opts.volumes, LockWait: opts.lockWait}); err != nil {
		return err
	}
	switch {
	case d.OnSwarm() && opts.volumes:
		fmt.Fprintf(opts.stdout, "Removed the services, secrets, configs and network of %s. Its volumes stay on the nodes that ran its tasks: a swarm has no volume of its own to remove; remove them with docker volume rm on each node.\n", project)
	case d.OnSwarm():
		fmt.Fprintf(opts.stdout, "Removed the services, secrets, configs and network of %s (volumes kept on their nodes).\n", project)
	case opts.volumes:
		fmt.Fprintf(opts.stdout, "Removed %s and its volumes.\n", project)
	default:
		fmt.Fprintf(opts.stdout, "Removed %s (volumes kept).\n", project)
	}
	return nil
}

const downLong = `Down takes the lock and removes the environment's containers and network.
Named volumes (the database, Redis, backups, Prometheus and Grafana data)
are kept unless --volumes is given; --volumes asks first on a terminal,
and needs --yes when stdin is not one. Release history is kept.

On a swarm (engine = "swarm") it removes the stack's services, secrets,
configs and overlay network; volumes stay on the nodes that ran the
tasks.

Exit codes: 0 done; 1 error; 64 usage error.`
