package orchestrator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/obcd/obcd/orchestrator/state"
	"github.com/obcd/obcd/templates"
)

// newRelease starts the record of a release: who, when, what config and
// which secret versions (never their values).
func (d *Deployer) newRelease(artifacts []templates.Artifact) state.Release {
	rel := state.NewRelease(d.Stack.Environment, time.Now())
	rel.Version, rel.ConfigHash = d.Stack.Version, configHash(artifacts)
	rel.Images, rel.ImageDigests, rel.SecretVersions = map[string]string{}, map[string]string{}, d.secretVersions()
	return rel
}

// configHash is the digest of the rendered manifest, which lists the
// digest of every other rendered file.
func configHash(artifacts []templates.Artifact) string {
	for _, a := range artifacts {
		if a.Path == templates.PathManifest {
			sum := sha256.Sum256(a.Data)
			return hex.EncodeToString(sum[:])
		}
	}
	return ""
}

// secretVersions identifies each secret's value now, without it.
func (d *Deployer) secretVersions() map[string]string {
	versions := map[string]string{}
	for _, s := range d.Stack.Secrets {
		if v, err := d.Secrets.Value(s.Name); err == nil {
			versions[s.Name] = state.SecretVersion(s.Name, v)
		}
	}
	return versions
}

// rollbackRecord is the release a manual rollback to `to` makes: to's
// version, images and config, with its own ID, time, user and host.
func rollbackRecord(to state.Release) state.Release {
	rec := state.NewRelease(to.Environment, time.Now())
	rec.Version, rec.Images, rec.ImageDigests, rec.RepoDigests, rec.ConfigHash = to.Version, to.Images, to.ImageDigests, to.RepoDigests, to.ConfigHash
	rec.SecretVersions, rec.RollbackOf = to.SecretVersions, to.ID
	return rec
}

// markInterrupted closes the records of operations whose process died:
// the caller holds the lock, so nothing else can be in progress.
func (d *Deployer) markInterrupted(ctx context.Context) error {
	releases, err := d.Store.List(ctx)
	if err != nil {
		return err
	}
	for _, r := range releases {
		if r.Outcome != state.OutcomeInProgress {
			continue
		}
		r.Outcome, r.Finished = state.OutcomeInterrupted, time.Now().UTC()
		r.Message = "the deploy process ended before it finished; the next deploy converged from what it left"
		d.emit("state", "", "", "release %s was interrupted", r.ID)
		if err := d.Store.Save(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// failedOutcomes are the outcomes of a release that did not work.
var failedOutcomes = []state.Outcome{state.OutcomeFailed, state.OutcomeRolledBack, state.OutcomeRollbackFailed}

// refuseFailed stops a deploy of a configuration that failed before.
func (d *Deployer) refuseFailed(ctx context.Context, rel state.Release, force bool) error {
	if force {
		return nil
	}
	history, err := d.Store.List(ctx)
	if err != nil {
		return err
	}
	for _, old := range history {
		if old.ConfigHash == rel.ConfigHash && slices.Contains(failedOutcomes, old.Outcome) {
			return errors.Join(fmt.Errorf("release %s with this exact configuration failed (%s); fix it, or deploy again with --force", old.ID, firstLine(old.Message)), ErrRefused)
		}
	}
	return nil
}

// succeed records a release that passed its probes as the stable one.
func (d *Deployer) succeed(ctx context.Context, result DeployResult, rel state.Release) (DeployResult, error) {
	rel.Outcome, rel.Stable, rel.Finished = state.OutcomeSucceeded, true, time.Now().UTC()
	if err := d.Store.Save(ctx, rel); err != nil {
		return result, err
	}
	if err := d.markStable(ctx, rel.ID); err != nil {
		return result, err
	}
	result.Release = rel
	d.emit("done", "", "", "release %s is live and stable", rel.ID)
	if d.Keep > 0 {
		// Retention is housekeeping: the release is live whatever it finds.
		if _, err := d.prune(ctx, d.Keep, false); err != nil {
			d.emit("prune", "", "", "retention failed (run obcd prune %s to retry): %v", d.Stack.Environment, err)
		}
	}
	return result, nil
}

// markStable makes id the only stable release: the one that runs now,
// and the one the next failed deploy returns to.
func (d *Deployer) markStable(ctx context.Context, id string) error {
	releases, err := d.Store.List(ctx)
	if err != nil {
		return err
	}
	for _, r := range releases {
		if r.Stable && r.ID != id {
			r.Stable = false
			if err := d.Store.Save(ctx, r); err != nil {
				return err
			}
		}
	}
	return nil
}
