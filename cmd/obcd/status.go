package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/orchestrator/swarm"
	"github.com/obcd/obcd/templates"
)

// swarmComponent is the swarm's side of the status: every service's
// replicas, and the nodes that are not ready. Either makes it unhealthy,
// and the environment degraded.
func (e *environment) swarmComponent() probe.Component {
	docker, err := e.dockerClient()
	if err != nil {
		return probe.Component{Message: err.Error()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	services, nodes, err := (&swarm.Engine{API: docker}).Status(ctx, templates.ProjectName(e.stack))
	if err != nil {
		return probe.Component{Message: fmt.Sprintf("the swarm manager %s could not be asked: %v", e.stack.DockerHost, engine.TLSHint(err))}
	}
	var problems []string
	for _, s := range services {
		if !s.Healthy() {
			problems = append(problems, s.String())
		}
	}
	ready := 0
	for _, n := range nodes {
		if n.State == "ready" {
			ready++
		} else {
			problems = append(problems, fmt.Sprintf("node %s is %s (Swarm reschedules its tasks on the others; docker node rm %s removes a node for good)", n, n.State, n.ID))
		}
	}
	if len(services) == 0 {
		return probe.Component{Message: "no service of the stack runs on the swarm: deploy it with obcd deploy " + e.name}
	}
	shortOf := slices.ContainsFunc(services, func(s swarm.ServiceStatus) bool { return !s.Healthy() })
	message := fmt.Sprintf("%d services, every replica running, on %d of %d nodes ready", len(services), ready, len(nodes))
	if len(problems) > 0 {
		message = strings.Join(problems, "; ")
	}
	// A node down is redundancy lost, even once its tasks run elsewhere.
	return probe.Component{Healthy: !shortOf && ready == len(nodes), Message: message}
}

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
	if stack.Engine == stackhcl.EngineSwarm {
		report.AddOptional(probe.ComponentSwarm, environment.swarmComponent())
	}
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

On a swarm (engine = "swarm") the component swarm says whether every
service runs all its replicas, and names the nodes that are down: a
service short of a replica makes the environment degraded until Swarm
has rescheduled it.

Exit codes: 0 healthy; 2 degraded; 1 unhealthy; 64 usage error.`

const statusExample = `  obcd status staging
  obcd status production --json | jq .overall_status`
