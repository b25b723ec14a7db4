package main

import (
	"encoding/json"
	"fmt"

	"github.com/obcd/obcd/orchestrator"
)

// eventPrinter renders engine events: progress lines on stderr, with the
// whole plan when one is announced, or JSON lines on stdout with --json.
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
		if e.Plan != nil {
			fmt.Fprint(o.stderr, e.Plan.String())
		}
	}
}
