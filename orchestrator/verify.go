package orchestrator

import (
	"context"
	"errors"
	"fmt"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/probe"
)

// verify runs the post-deploy probes over the verification window.
func (d *Deployer) verify(ctx context.Context) ([]probe.Result, error) {
	return d.verifyStack(ctx, d.Stack)
}

// verifyStack runs the probes of stack over the verification window: a
// rollback proves the release it returns to with that release's probes.
func (d *Deployer) verifyStack(ctx context.Context, stack *stackhcl.Stack) ([]probe.Result, error) {
	plan, err := d.probePlanOf(ctx, stack)
	if err != nil {
		return nil, errors.Join(err, ErrVerify)
	}
	for _, note := range plan.Skipped {
		d.emit("verify", "", "", "skipped %s", note)
	}
	vctx, cancel := context.WithTimeout(ctx, d.Verify)
	defer cancel()
	if n := plan.InNetwork(); n > 0 {
		d.emit("verify", "", "", "running %d probes, %d of them from inside the network through the agent (window %s)", len(plan.Specs), n, d.Verify)
	} else {
		d.emit("verify", "", "", "running %d probes (window %s)", len(plan.Specs), d.Verify)
	}
	results := plan.Run(vctx, nil)
	if !probe.AllCriticalPassed(results) {
		failed := probe.Failures(results)
		return results, errors.Join(fmt.Errorf("probe %s failed: %s", failed[0].Name, failed[0].Message), ErrVerify)
	}
	return results, nil
}

// probePlan is the stack's probes, or the ones Probes builds. Services
// that declare no address are probed through the agent when it can run
// on this engine.
func (d *Deployer) probePlan(ctx context.Context) (probe.Plan, error) {
	return d.probePlanOf(ctx, d.Stack)
}

func (d *Deployer) probePlanOf(ctx context.Context, stack *stackhcl.Stack) (probe.Plan, error) {
	if d.Probes != nil {
		return d.Probes(stack)
	}
	opts := probe.BuildOptions{Stack: stack, Secrets: d.Secrets, Docker: d.Docker}
	if d.Agent != nil {
		if err := d.Agent.Available(ctx); err != nil {
			opts.NoVantage = err.Error()
		} else {
			opts.Vantage = d.Agent
		}
	}
	return probe.Build(opts)
}
