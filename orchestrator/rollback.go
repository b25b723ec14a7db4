package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/orchestrator/state"
)

// rollbackAfter returns to the stable release after a failed deploy and
// records both outcomes.
func (d *Deployer) rollbackAfter(ctx context.Context, result DeployResult, rel, stable state.Release, cause error) (DeployResult, error) {
	rctx := context.WithoutCancel(ctx)
	d.emit("rollback", "", "", "rolling back to stable release %s: %s", stable.ID, firstLine(cause.Error()))
	rel.Outcome, rel.RolledBackTo = state.OutcomeRolledBack, stable.ID
	_ = d.Store.Save(rctx, rel)
	result.Release, result.RolledBack = rel, true
	if _, _, err := d.restore(rctx, stable); err != nil {
		return result, errors.Join(cause, fmt.Errorf("rollback to %s also failed: %w", stable.ID, err))
	}
	return result, cause
}

// RollbackOptions are the choices of obcd rollback.
type RollbackOptions struct {
	To       string // release ID to return to; "" is the stable release
	LockWait time.Duration
}

// Rollback returns the environment, under the lock, to a recorded
// release: its images, rendered config and env, not today's. The
// rollback is a release of its own, and it is verified.
func (d *Deployer) Rollback(ctx context.Context, opts RollbackOptions) (DeployResult, error) {
	d.defaults()
	var result DeployResult
	err := d.locked(ctx, "rollback", opts.LockWait, func() error {
		if err := d.markInterrupted(ctx); err != nil {
			return err
		}
		to, err := d.rollbackTarget(ctx, opts.To)
		if err != nil {
			return err
		}
		result, err = d.rollbackTo(ctx, to)
		return err
	})
	return result, err
}

// rollbackTarget is the release with id, or the stable one.
func (d *Deployer) rollbackTarget(ctx context.Context, id string) (state.Release, error) {
	if id != "" {
		return d.Store.Get(ctx, id)
	}
	stable, ok, err := state.Stable(ctx, d.Store)
	if err == nil && !ok {
		err = errors.New("no stable release to roll back to; see obcd history")
	}
	return stable, err
}

func (d *Deployer) rollbackTo(ctx context.Context, to state.Release) (DeployResult, error) {
	artifacts, err := d.Store.LoadArtifacts(ctx, to.ID)
	if err != nil {
		return DeployResult{Release: to}, err
	}
	rec := rollbackRecord(to)
	if err := d.Store.SaveArtifacts(ctx, rec.ID, artifacts); err != nil {
		return DeployResult{Release: rec}, err
	}
	if err := d.Store.Save(ctx, rec); err != nil {
		return DeployResult{Release: rec}, err
	}
	// The record holds to's files, so restoring it restores to, and the
	// containers it creates belong to the rollback.
	planned, results, err := d.restore(ctx, rec)
	rec.Probes, rec.Finished = results, time.Now().UTC()
	result := DeployResult{Release: rec, Failed: probe.Failures(results)}
	if planned != nil {
		result.Plan = planned.Plan
	}
	if err != nil {
		rec.Outcome, rec.Message = state.OutcomeFailed, err.Error()
		_ = d.Store.Save(context.WithoutCancel(ctx), rec)
		result.Release = rec
		return result, err
	}
	rec.Outcome, rec.Stable = state.OutcomeSucceeded, true
	if err := d.Store.Save(ctx, rec); err != nil {
		return result, err
	}
	result.Release = rec
	return result, d.markStable(ctx, rec.ID)
}

// restore plans a return to a release's saved files, applies that plan
// and runs the probes.
func (d *Deployer) restore(ctx context.Context, to state.Release) (*Planned, []probe.Result, error) {
	artifacts, err := d.Store.LoadArtifacts(ctx, to.ID)
	if err != nil {
		return nil, nil, err
	}
	planned, err := d.planFor(ctx, to, artifacts)
	if err != nil {
		return nil, nil, err
	}
	if len(planned.Plan.Images) > 0 {
		image := planned.Plan.Images[0]
		return planned, nil, errors.Join(fmt.Errorf("image %s of release %s is no longer on the engine; load it, or roll back to another release", image.Image, to.ID), ErrImages)
	}
	d.emitPlan(planned.Plan)
	if _, err := d.executor(planned).converge(ctx); err != nil {
		return planned, nil, err
	}
	results, err := d.verify(ctx)
	return planned, results, err
}
