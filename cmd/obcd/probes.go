package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/probe"
)

// probeOptions are the flags verify, status and serve share.
type probeOptions struct {
	timeout     time.Duration
	only        []string
	noDocker    bool
	pushgateway string
}

// environmentProbes loads the stack and builds its probes: the container
// probe when the environment's Docker engine answers, and the probes of
// services without an address through the in-network agent when it can
// run there. Close the environment when the command ends: that removes
// the agent.
func (o *globalOptions) environmentProbes(env string, po *probeOptions) (*environment, probe.Plan, error) {
	environment, err := o.open(env)
	if err != nil {
		return nil, probe.Plan{}, err
	}
	stack := environment.stack
	opts := probe.BuildOptions{Stack: stack, Secrets: environment.secrets}
	var dockerNote string
	if docker, err := environment.dockerClient(); err == nil {
		// On a swarm the manager sees only its own node's containers;
		// status reports the swarm's tasks instead.
		if !po.noDocker && stack.Engine != stackhcl.EngineSwarm {
			opts.Docker = docker
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		vantage := environment.probeAgent(docker)
		if err := vantage.Available(ctx); err != nil {
			opts.NoVantage = err.Error()
			if hint := engine.TLSHint(err); hint != "" {
				opts.NoVantage += "; " + hint
			}
		} else {
			opts.Vantage = vantage
		}
	} else {
		opts.NoVantage = fmt.Sprintf("cannot reach the Docker engine at %s: %v", stack.DockerHost, err)
		if !po.noDocker {
			dockerNote = "containers: " + opts.NoVantage
		}
	}
	plan, err := probe.Build(opts)
	if err != nil {
		environment.close()
		return nil, probe.Plan{}, err
	}
	if dockerNote != "" {
		plan.Skipped = append(plan.Skipped, dockerNote)
	}
	if len(po.only) > 0 {
		if plan.Specs, err = selectProbes(plan.Specs, po.only); err != nil {
			environment.close()
			return nil, probe.Plan{}, err
		}
	}
	return environment, plan, nil
}

// selectProbes keeps the probes named by --only; an unknown name is a
// usage error listing the names there are.
func selectProbes(specs []probe.Spec, only []string) ([]probe.Spec, error) {
	byName := map[string]probe.Spec{}
	var names []string
	for _, s := range specs {
		byName[s.Name] = s
		names = append(names, s.Name)
	}
	sort.Strings(names)
	var out []probe.Spec
	for _, n := range only {
		s, ok := byName[strings.TrimSpace(n)]
		if !ok {
			return nil, usageError{fmt.Errorf("--only %q: no such probe; this environment has: %s", n, strings.Join(names, ", "))}
		}
		out = append(out, s)
	}
	return out, nil
}

// runProbes runs the plan under one deadline, reporting progress on
// stderr when it is a terminal.
// On demand, a definite failure is reported at once (Plan.RunOnDemand).
func (o *globalOptions) runProbes(plan probe.Plan, timeout time.Duration, onDemand bool) []probe.Result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var notify func(probe.Result)
	if isTerminal(o.stderr) {
		done := 0
		fmt.Fprintf(o.stderr, "Running %d probes (deadline %s)...\n", len(plan.Specs), timeout)
		notify = func(r probe.Result) {
			done++
			fmt.Fprintf(o.stderr, "  [%d/%d] %-28s %s\n", done, len(plan.Specs), r.Name, r.Status)
		}
	}
	if onDemand {
		return plan.RunOnDemand(ctx, notify)
	}
	return plan.Run(ctx, notify)
}
