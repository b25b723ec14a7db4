package orchestrator

import (
	"context"
	"fmt"
	"strings"

	"github.com/obcd/obcd/orchestrator/probe"
)

// report explains a failure: the error, the failing probes' last
// results, and the state and last log lines of each container the plan
// kept or created. It asks the engine about those containers by ID; it
// does not observe the project again.
func (x *executor) report(ctx context.Context, cause error, failed []probe.Result) string {
	ctx = context.WithoutCancel(ctx)
	var b strings.Builder
	fmt.Fprintf(&b, "deploy failed: %v\n", cause)
	for _, r := range failed {
		fmt.Fprintf(&b, "probe %s (%s): %s after %d attempt(s): %s\n", r.Name, r.Target, r.Status, r.Attempts, r.Message)
	}
	for _, id := range x.reportIDs() {
		c, err := x.d.Engine.Inspect(ctx, id)
		if err != nil {
			continue // gone: retired or disposed of
		}
		fmt.Fprintf(&b, "container %s: %s %s (release %s)\n", c.Name, c.State, c.Health, c.Release)
		if c.Service == "web" || c.State != "running" {
			if logs, err := x.d.Engine.Logs(ctx, c.ID, 10); err == nil && logs != "" {
				fmt.Fprintf(&b, "%s\n", indent(logs))
			}
		}
	}
	return b.String()
}

// reportIDs are the containers the plan found running (and did not
// plan to remove) and those the executor created, in plan order.
func (x *executor) reportIDs() []string {
	var ids []string
	for _, c := range x.planned.Observed {
		if !c.OneOff {
			ids = append(ids, c.ID)
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range x.created {
		ids = append(ids, c.ID)
	}
	return ids
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
