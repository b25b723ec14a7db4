package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
		Long:  "History lists every release, oldest first: id, time, who, version, outcome, and its state: live (what runs now),\nstable, and previous (the good release obcd rollback returns to without --to).\n\nExit codes: 0; 1 error.",
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
	marked := markReleases(releases)
	if opts.json {
		return json.NewEncoder(opts.stdout).Encode(marked)
	}
	tw := tabwriter.NewWriter(opts.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RELEASE\tCREATED\tUSER\tVERSION\tOUTCOME\tSTATE\tNOTE")
	for _, r := range marked {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Created.Format(time.RFC3339), r.User, r.Version, r.Outcome, r.state(), oneLine(historyNote(r.Release)))
	}
	return tw.Flush()
}

// markedRelease is a release of history with what it is now: live (what
// runs, and stable) or previous (where obcd rollback goes).
type markedRelease struct {
	state.Release
	Live     bool `json:"live"`
	Previous bool `json:"previous"`
}

func markReleases(releases []state.Release) []markedRelease {
	live, _ := state.Live(releases)
	previous, _ := state.Previous(releases, live)
	marked := make([]markedRelease, len(releases))
	for i, r := range releases {
		marked[i] = markedRelease{Release: r, Live: r.ID == live.ID && r.Stable, Previous: r.ID == previous.ID && previous.ID != ""}
	}
	return marked
}

func (r markedRelease) state() string {
	var marks []string
	if r.Live {
		marks = append(marks, "live")
	}
	if r.Stable {
		marks = append(marks, "stable")
	}
	if r.Previous {
		marks = append(marks, "previous")
	}
	return strings.Join(marks, ", ")
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
