package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"

	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/orchestrator/state"
	"github.com/obcd/obcd/templates"
)

// rollbackAfter returns to the stable release after a failed deploy,
// and records the failed release as rolled-back once the probes prove the
// stable one, or as rollback-failed, with what runs now, when they do not.
func (d *Deployer) rollbackAfter(ctx context.Context, result DeployResult, rel, stable state.Release, cause error) (DeployResult, error) {
	rctx := context.WithoutCancel(ctx)
	d.emit("rollback", "", "", "rolling back to stable release %s: %s", stable.ID, firstLine(cause.Error()))
	// Undoing what the deploy changed goes on even when the deploy lost
	// its lock: leaving the environment half-changed helps nobody.
	held := d.held
	d.held = nil
	defer func() { d.held = held }()
	rel.RolledBackTo = stable.ID
	_, _, err := d.restore(rctx, stable)
	if err != nil {
		rel.Outcome = state.OutcomeRollbackFailed
		rel.Message = fmt.Sprintf("%s; the rollback to %s failed too: %s", firstLine(cause.Error()), stable.ID, firstLine(err.Error()))
		result.Report += d.afterFailedRollback(rctx, stable, err)
		err = errors.Join(cause, fmt.Errorf("rollback to %s also failed: %w", stable.ID, err), ErrRollbackFailed)
	} else {
		rel.Outcome = state.OutcomeRolledBack
		err = errors.Join(cause, ErrRolledBack)
	}
	result.Release = rel
	return result, errors.Join(err, d.Store.Save(rctx, rel))
}

// afterFailedRollback says what runs after a rollback that could not be
// proven, and what a human must do.
func (d *Deployer) afterFailedRollback(ctx context.Context, stable state.Release, err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rollback to release %s failed: %v\nwhat runs now:\n", stable.ID, err)
	containers, observeErr := d.Engine.Observe(ctx, templates.ProjectName(d.Stack))
	if observeErr != nil {
		fmt.Fprintf(&b, "  (the engine could not be asked: %v)\n", observeErr)
	}
	for _, c := range containers {
		if !c.OneOff {
			fmt.Fprintf(&b, "  %s: %s %s, image %s (release %s)\n", c.Name, c.State, c.Health, c.Image, c.Release)
		}
	}
	fmt.Fprintf(&b, "to do: the environment may be serving neither release. Fix what the errors above name "+
		"(a missing image, a failing probe), then run obcd rollback %s --to %s, or deploy a fixed release.\n",
		d.Stack.Environment, stable.ID)
	return b.String()
}

// RollbackOptions are the choices of obcd rollback.
type RollbackOptions struct {
	To       string // release ID to return to; "" is the previous good release
	LockWait time.Duration
	// AllowNewerSchema rolls back even when the database has applied
	// migrations the target release never had.
	AllowNewerSchema bool
}

// Rollback returns the environment, under the lock, to a recorded
// release: its images, rendered config and env, not today's. The
// rollback is a release of its own, and it is verified.
func (d *Deployer) Rollback(ctx context.Context, opts RollbackOptions) (DeployResult, error) {
	d.defaults()
	var result DeployResult
	err := d.locked(ctx, "rollback", opts.LockWait, func(ctx context.Context) error {
		if err := d.markInterrupted(ctx); err != nil {
			return err
		}
		to, err := d.rollbackTarget(ctx, opts.To)
		if err != nil {
			return err
		}
		result, err = d.rollbackTo(ctx, to, opts.AllowNewerSchema)
		d.emitOutcome(result.Release, err)
		return err
	})
	return result, err
}

// rollbackTarget is the release with id, or the previous good release;
// a return to what is live already is refused, saying which release is
// live and which is previous.
func (d *Deployer) rollbackTarget(ctx context.Context, id string) (state.Release, error) {
	releases, err := d.Store.List(ctx)
	if err != nil {
		return state.Release{}, err
	}
	live, hasLive := state.Live(releases)
	previous, hasPrevious := state.Previous(releases, live)
	if id == "" {
		if !hasPrevious {
			return state.Release{}, fmt.Errorf("no good release before the live one (%s) to roll back to; see obcd history %s",
				cmp.Or(live.ID, "none"), d.Stack.Environment)
		}
		return previous, nil
	}
	to, err := d.Store.Get(ctx, id)
	if err == nil && hasLive && state.SameRun(to, live) {
		err = fmt.Errorf("release %s is what runs now (the live release is %s); the previous good release is %s: obcd rollback %s goes there",
			to.ID, live.ID, cmp.Or(previous.ID, "none"), d.Stack.Environment)
	}
	return to, err
}

func (d *Deployer) rollbackTo(ctx context.Context, to state.Release, allowNewerSchema bool) (DeployResult, error) {
	if d.OnSwarm() {
		return d.rollbackToSwarm(ctx, to)
	}
	artifacts, err := d.releaseFiles(ctx, to)
	if err != nil {
		return DeployResult{Release: to}, err
	}
	rec := rollbackRecord(to)
	// It runs with today's secret values, and the files derived from
	// them were rendered with them.
	rec.SecretVersions = d.secretVersions()
	// The record holds to's files, so restoring it restores to, and the
	// containers it creates belong to the rollback.
	planned, err := d.planFor(ctx, rec, artifacts)
	if err != nil {
		return DeployResult{Release: rec}, err
	}
	if !allowNewerSchema {
		if err := d.checkSchema(ctx, planned, to.Migrations); err != nil {
			return DeployResult{Release: rec, Plan: planned.Plan}, err
		}
	}
	if err := d.Store.SaveArtifacts(ctx, rec.ID, artifacts); err != nil {
		return DeployResult{Release: rec}, err
	}
	if err := d.Store.Save(ctx, rec); err != nil {
		return DeployResult{Release: rec}, err
	}
	results, err := d.restorePlanned(ctx, planned, true)
	rec.Probes, rec.Finished, rec.Migrations = results, time.Now().UTC(), planned.Release.Migrations
	result := DeployResult{Release: rec, Failed: probe.Failures(results), Plan: planned.Plan}
	if err != nil {
		rec.Outcome, rec.Message = state.OutcomeFailed, err.Error()
		result.Release = rec
		return result, errors.Join(err, d.Store.Save(context.WithoutCancel(ctx), rec))
	}
	rec.Outcome, rec.Stable = state.OutcomeSucceeded, true
	if err := d.Store.Save(ctx, rec); err != nil {
		return result, err
	}
	result.Release = rec
	return result, d.markStable(ctx, rec.ID)
}

// restore plans a return to a release's saved files and recorded images,
// applies that plan and runs the probes: the automatic return to the
// stable release, which keeps the tags it has.
func (d *Deployer) restore(ctx context.Context, to state.Release) (*Planned, []probe.Result, error) {
	artifacts, err := d.releaseFiles(ctx, to)
	if err != nil {
		return nil, nil, err
	}
	planned, err := d.planFor(ctx, to, artifacts)
	if err != nil {
		return nil, nil, err
	}
	results, err := d.restorePlanned(ctx, planned, false)
	return planned, results, err
}

// restorePlanned applies a planned return to a recorded release and runs
// the probes. A release that becomes stable by it (a manual rollback's
// record) gets its stable tags, and its applied migrations recorded, once
// proven.
func (d *Deployer) restorePlanned(ctx context.Context, planned *Planned, becomesStable bool) ([]probe.Result, error) {
	if !becomesStable {
		planned.Plan.Tags = nil
	}
	// The only image a return may fetch is the exact one the release
	// recorded, by its registry digest: a tag may point elsewhere now.
	for _, image := range planned.Plan.Images {
		if !image.Pull || image.ID == "" {
			return nil, errors.Join(fmt.Errorf("image %s (%s) of release %s is no longer on the engine, and the release recorded no registry digest to pull it back by; load it, or roll back to another release",
				image.Image, strings.Join(image.Services, ", "), cmp.Or(planned.Release.RollbackOf, planned.Release.ID)), ErrImages)
		}
	}
	d.emitPlan(planned.Plan)
	x := d.executor(planned)
	if len(planned.Plan.Images) > 0 {
		if err := x.buildImages(ctx); err != nil {
			return nil, errors.Join(err, ErrImages)
		}
	}
	if _, err := x.converge(ctx); err != nil {
		return nil, err
	}
	results, err := d.verifyStack(ctx, d.stackOf(planned))
	if err != nil || !becomesStable {
		return results, err
	}
	if err := x.recordMigrations(ctx); err != nil {
		d.emit("schema", "", "", "the applied migrations were not recorded: %v", err)
	}
	return results, x.tagStable(ctx)
}

// stackOf is the stack a planned return's release was rendered from, so
// that its probes prove what that release runs (not a service only the
// failed release added); the stack deployed now when the release was
// saved without its model.
func (d *Deployer) stackOf(planned *Planned) *stackhcl.Stack {
	stack, recorded, err := templates.ReadStackModel(planned.Artifacts)
	if err != nil || !recorded {
		if err != nil {
			d.emit("rollback", "", "", "%v: proving it with the probes of the stack deployed now", err)
		}
		return d.Stack
	}
	return stack
}

// releaseFiles are the saved files of a release to return to, with the
// files derived from secrets rendered again from its stack model with
// today's values: the services run with today's secrets, so the roles
// and the PgBouncer userlist must hold today's verifiers, or no login
// works after a rotation.
func (d *Deployer) releaseFiles(ctx context.Context, to state.Release) ([]templates.Artifact, error) {
	saved, err := d.Store.LoadArtifacts(ctx, to.ID)
	if err != nil {
		return nil, err
	}
	files, recorded, err := templates.WithTodaysSecrets(saved, d.Secrets)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", to.ID, err)
	}
	if !recorded {
		d.emit("rollback", "", "", "release %s was saved without its stack model: its password files come back as saved, so a password rotated since then will not log in; deploy again to fix that", to.ID)
	}
	return files, nil
}

// withStackModel is what a release saves: its rendered files and the
// stack model they came from.
func withStackModel(artifacts []templates.Artifact, stack *stackhcl.Stack) ([]templates.Artifact, error) {
	model, err := templates.StackModel(stack)
	if err != nil {
		return nil, err
	}
	files := slices.DeleteFunc(slices.Clone(artifacts), func(a templates.Artifact) bool { return a.Path == templates.PathStackModel })
	return append(files, model), nil
}
