package orchestrator

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/obcd/obcd/orchestrator/state"
)

// DefaultKeep is how many of the newest releases retention keeps.
const DefaultKeep = 5

// PruneOptions are the choices of obcd prune.
type PruneOptions struct {
	Keep     int  // the newest releases kept; DefaultKeep when 0
	DryRun   bool // say what would go, remove nothing
	LockWait time.Duration
}

// PruneResult is what a prune removed, or would remove.
type PruneResult struct {
	Releases []string `json:"releases"` // release records, with their saved artifacts
	Tags     []string `json:"tags"`     // their <repo>:stable-<release> tags
	Images   []string `json:"images"`   // image IDs only they recorded
	// InUse are image IDs only pruned releases recorded, kept because a
	// container was created from them.
	InUse []string `json:"in_use"`
	// Kept are the releases that stay: the newest, the live one, the
	// previous good one.
	Kept []string `json:"kept"`
}

// Prune removes, under the lock, old releases: their records and saved
// artifacts, their stable-<release> tags, and the images no kept release
// recorded and no container uses. It never removes the newest Keep
// releases, the live or the previous good release, nor any volume.
func (d *Deployer) Prune(ctx context.Context, opts PruneOptions) (PruneResult, error) {
	var result PruneResult
	err := d.locked(ctx, "prune", opts.LockWait, func(ctx context.Context) (err error) {
		result, err = d.prune(ctx, opts.Keep, opts.DryRun)
		return err
	})
	return result, err
}

func (d *Deployer) prune(ctx context.Context, keep int, dryRun bool) (PruneResult, error) {
	releases, err := d.Store.List(ctx)
	if err != nil {
		return PruneResult{}, err
	}
	result, pruned := pruneCandidates(releases, keep)
	result.Images = imagesOnlyIn(pruned, releases)
	if d.OnSwarm() {
		// Each node keeps the images it pulled, and obcd tags none on a
		// swarm: only the records go.
		result.Images, result.Tags = nil, nil
		pruned = recordsOnly(pruned)
	}
	if dryRun {
		return result, nil
	}
	var errs []error
	result.Tags = nil
	for _, r := range pruned {
		for _, tag := range stableTagsOf(r) {
			untagged, err := d.Engine.Untag(ctx, tag)
			errs = append(errs, err)
			if untagged {
				result.Tags = append(result.Tags, tag)
			}
		}
	}
	images := result.Images
	result.Images = nil
	for _, id := range images {
		removed, err := d.Engine.RemoveImage(ctx, id)
		errs = append(errs, err)
		if removed {
			result.Images = append(result.Images, id)
		} else if err == nil {
			result.InUse = append(result.InUse, id)
		}
	}
	for _, r := range pruned {
		errs = append(errs, d.Store.Delete(ctx, r.ID))
	}
	if len(result.Releases) > 0 {
		d.emit("prune", "", "", "removed %d old releases, %d tags and %d images (%d in use kept)",
			len(result.Releases), len(result.Tags), len(result.Images), len(result.InUse))
	}
	return result, errors.Join(errs...)
}

// recordsOnly are releases without the tags and images a prune would
// remove with them.
func recordsOnly(releases []state.Release) []state.Release {
	out := make([]state.Release, len(releases))
	for i, r := range releases {
		r.ImageDigests, r.Images = nil, nil
		out[i] = r
	}
	return out
}

// pruneCandidates splits a sorted history into what stays (the newest
// keep, the live and the previous good release, and any still in
// progress) and what goes.
func pruneCandidates(releases []state.Release, keep int) (PruneResult, []state.Release) {
	if keep <= 0 {
		keep = DefaultKeep
	}
	live, _ := state.Live(releases)
	previous, _ := state.Previous(releases, live)
	var result PruneResult
	var pruned []state.Release
	for i, r := range releases {
		newest := i >= len(releases)-keep
		if newest || r.ID == live.ID || r.ID == previous.ID || r.Outcome == state.OutcomeInProgress {
			result.Kept = append(result.Kept, r.ID)
			continue
		}
		pruned = append(pruned, r)
		result.Releases = append(result.Releases, r.ID)
		result.Tags = append(result.Tags, stableTagsOf(r)...)
	}
	return result, pruned
}

// stableTagsOf are the stable-<release> tags a release's images got.
func stableTagsOf(r state.Release) []string {
	var tags []string
	for _, ref := range r.Images {
		if repo := imageRepo(ref); repo != "" && !slices.Contains(tags, repo+":stable-"+r.ID) {
			tags = append(tags, repo+":stable-"+r.ID)
		}
	}
	slices.Sort(tags)
	return tags
}

// imagesOnlyIn are the image IDs the pruned releases recorded that no
// kept release recorded too.
func imagesOnlyIn(pruned, all []state.Release) []string {
	keptIDs := map[string]bool{}
	for _, r := range all {
		if !slices.ContainsFunc(pruned, func(p state.Release) bool { return p.ID == r.ID }) {
			for _, id := range r.ImageDigests {
				keptIDs[id] = true
			}
		}
	}
	var images []string
	for _, r := range pruned {
		for _, id := range r.ImageDigests {
			if id != "" && !keptIDs[id] && !slices.Contains(images, id) {
				images = append(images, id)
			}
		}
	}
	slices.Sort(images)
	return images
}
