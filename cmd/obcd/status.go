package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/obcd/obcd/orchestrator/probe"
)

type statusOptions struct {
	*globalOptions
	probeOptions
	json bool
}

func newStatusCommand(global *globalOptions) *cobra.Command {
	opts := &statusOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:     "status ENV",
		Short:   "Report an environment as healthy, degraded or unhealthy",
		Long:    statusLong,
		Example: statusExample,
		Args:    exactEnv,
		RunE:    func(_ *cobra.Command, args []string) error { return runStatus(opts, args[0]) },
	}
	addProbeFlags(cmd, &opts.probeOptions)
	cmd.Flags().Lookup("timeout").DefValue = "20s"
	opts.timeout = 20 * time.Second
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the status JSON on stdout")
	return cmd
}

func runStatus(opts *statusOptions, env string) error {
	environment, plan, err := opts.environmentProbes(env, &opts.probeOptions)
	if err != nil {
		return err
	}
	defer environment.close()
	stack := environment.stack
	results := opts.runProbes(plan, opts.timeout, true)
	report := probe.BuildStatus(stack, results)
	if opts.json {
		enc := json.NewEncoder(opts.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(opts.stdout, "%s %s: %s\n\n", stack.Name, stack.Environment, report.OverallStatus)
		for _, name := range report.Names() {
			c := report.Components[name]
			mark := "✓"
			if !c.Healthy {
				mark = "✗"
			}
			fmt.Fprintf(opts.stdout, "  %s %-13s %s\n", mark, name, c.Message)
		}
	}
	if err := opts.push(stack, results); err != nil {
		return err
	}
	switch report.OverallStatus {
	case probe.Unhealthy:
		return reportedError{fmt.Errorf("unhealthy"), ExitFailure}
	case probe.Degraded:
		return reportedError{fmt.Errorf("degraded"), ExitFound}
	}
	return nil
}

const statusLong = `Status runs the environment's probes and reports overall_status with its
components, in the shape of /api/monitoring/status (see obcd serve):
healthy when every critical component works (Prometheus metrics, logging,
Redis, the database, the web tier) and the optional ones too (Sentry,
Celery, Alertmanager, Grafana); degraded when only an optional one fails;
unhealthy when a critical one does.

Exit codes: 0 healthy; 2 degraded; 1 unhealthy; 64 usage error.`

const statusExample = `  obcd status staging
  obcd status production --json | jq .overall_status`
