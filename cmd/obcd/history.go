package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/obcd/obcd/orchestrator/state"
)

type historyOptions struct {
	*globalOptions
	json bool
}

func newHistoryCommand(global *globalOptions) *cobra.Command {
	opts := &historyOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:   "history ENV",
		Short: "List the releases of an environment",
		Long:  "History lists every release, oldest first: id, time, who, version, outcome and whether it is stable.\n\nExit codes: 0; 1 error.",
		Args:  exactEnv,
		RunE:  func(_ *cobra.Command, args []string) error { return runHistory(opts, args[0]) },
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print releases as JSON")
	return cmd
}

func runHistory(opts *historyOptions, env string) error {
	environment, err := opts.open(env)
	if err != nil {
		return err
	}
	defer environment.close()
	ctx := context.Background()
	store, _, err := environment.state(ctx)
	if err != nil {
		return err
	}
	releases, err := store.List(ctx)
	if err != nil {
		return err
	}
	if opts.json {
		return json.NewEncoder(opts.stdout).Encode(releases)
	}
	tw := tabwriter.NewWriter(opts.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RELEASE\tCREATED\tUSER\tVERSION\tOUTCOME\tSTABLE\tNOTE")
	for _, r := range releases {
		stable := ""
		if r.Stable {
			stable = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Created.Format(time.RFC3339), r.User, r.Version, r.Outcome, stable, oneLine(historyNote(r)))
	}
	return tw.Flush()
}

// historyNote says what a release returned to, and why it failed.
func historyNote(r state.Release) string {
	switch {
	case r.RollbackOf != "" && r.Message != "":
		return "rollback to " + r.RollbackOf + ": " + r.Message
	case r.RollbackOf != "":
		return "rollback to " + r.RollbackOf
	case r.RolledBackTo != "":
		return "rolled back to " + r.RolledBackTo + ": " + r.Message
	}
	return r.Message
}
