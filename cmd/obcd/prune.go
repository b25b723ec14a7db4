package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/obcd/obcd/orchestrator"
)

type pruneOptions struct {
	*globalOptions
	keep     int
	dryRun   bool
	json     bool
	lockWait time.Duration
}

func newPruneCommand(global *globalOptions) *cobra.Command {
	opts := &pruneOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:     "prune ENV",
		Short:   "Remove old releases, their tags and the images nothing uses",
		Long:    pruneLong,
		Example: pruneExample,
		Args:    exactEnv,
		PreRunE: func(*cobra.Command, []string) error {
			if opts.keep < 1 {
				return usageError{fmt.Errorf("--keep %d: keep at least 1 release", opts.keep)}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error { return runPrune(opts, args[0]) },
	}
	cmd.Flags().IntVar(&opts.keep, "keep", orchestrator.DefaultKeep, "how many of the newest releases to keep")
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "say what would be removed, and remove nothing")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print what was removed as JSON")
	cmd.Flags().DurationVar(&opts.lockWait, "lock-wait", 0, "wait this long for the lock")
	return cmd
}

func runPrune(opts *pruneOptions, env string) error {
	environment, d, err := opts.openDeployer(env, opts.eventPrinter(false))
	if err != nil {
		return err
	}
	defer environment.close()
	result, err := d.Prune(context.Background(), orchestrator.PruneOptions{Keep: opts.keep, DryRun: opts.dryRun, LockWait: opts.lockWait})
	if opts.json {
		if jerr := json.NewEncoder(opts.stdout).Encode(result); jerr != nil {
			return jerr
		}
	} else {
		printPruned(opts, result)
	}
	return err
}

func printPruned(opts *pruneOptions, result orchestrator.PruneResult) {
	verb := "Removed"
	if opts.dryRun {
		verb = "Would remove"
	}
	for _, id := range result.Releases {
		fmt.Fprintf(opts.stdout, "release %s\n", id)
	}
	for _, tag := range result.Tags {
		fmt.Fprintf(opts.stdout, "tag %s\n", tag)
	}
	for _, id := range result.Images {
		fmt.Fprintf(opts.stdout, "image %s\n", id)
	}
	for _, id := range result.InUse {
		fmt.Fprintf(opts.stdout, "kept image %s: a container uses it\n", id)
	}
	fmt.Fprintf(opts.stderr, "%s %d releases, %d tags and %d images; kept %d releases.\n",
		verb, len(result.Releases), len(result.Tags), len(result.Images), len(result.Kept))
}

const pruneLong = `Prune takes the lock and removes old releases of an environment: their
records and saved artifacts, their <repo>:stable-<release> tags, and the
images that only they recorded and no container (running or stopped) was
created from. It keeps the newest --keep releases, the live release and the
previous good one (where obcd rollback goes), and never removes a volume.
A deploy runs the same retention after each success.

Exit codes: 0 done; 1 error; 64 usage error.`

const pruneExample = `  obcd prune staging --dry-run
  obcd prune production --keep 10 --json`
