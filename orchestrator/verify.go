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
	build := d.Probes
	if build == nil {
		build = func(s *stackhcl.Stack) (probe.Plan, error) {
			return probe.Build(probe.BuildOptions{Stack: s, Secrets: d.Secrets, Docker: d.Docker})
		}
	}
	plan, err := build(d.Stack)
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
