package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/obcd/obcd/orchestrator/probe"
)

// verify runs the post-deploy probes over the verification window.
func (d *Deployer) verify(ctx context.Context) ([]probe.Result, error) {
	plan, err := d.probePlan()
	if err != nil {
		return nil, errors.Join(err, ErrVerify)
	}
	vctx, cancel := context.WithTimeout(ctx, d.Verify)
	defer cancel()
	d.emit("verify", "", "", "running %d probes (window %s)", len(plan.Specs), d.Verify)
	results := probe.Run(vctx, plan.Specs)
	if !probe.AllCriticalPassed(results) {
		failed := probe.Failures(results)
		return results, errors.Join(fmt.Errorf("probe %s failed: %s", failed[0].Name, failed[0].Message), ErrVerify)
	}
	return results, nil
}

// probePlan is the stack's probes, or the ones Probes builds.
func (d *Deployer) probePlan() (probe.Plan, error) {
	if d.Probes != nil {
		return d.Probes(d.Stack)
	}
	return probe.Build(probe.BuildOptions{Stack: d.Stack, Secrets: d.Secrets, Docker: d.Docker})
}
