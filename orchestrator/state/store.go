package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/obcd/obcd/templates"
)

// Store keeps an environment's release history and each release's
// rendered files.
type Store interface {
	// Save creates or replaces a release, atomically.
	Save(ctx context.Context, r Release) error
	// Get returns one release; a missing one is ErrReleaseNotFound.
	Get(ctx context.Context, id string) (Release, error)
	// List returns every release, oldest first.
	List(ctx context.Context) ([]Release, error)
	// SaveArtifacts keeps the rendered files of a release, with their
	// modes, so a rollback restores that release's config.
	SaveArtifacts(ctx context.Context, id string, artifacts []templates.Artifact) error
	// LoadArtifacts returns what SaveArtifacts kept; none is ErrNoArtifacts.
	LoadArtifacts(ctx context.Context, id string) ([]templates.Artifact, error)
	// Delete removes a release and its artifacts (obcd prune); a missing
	// one is not an error.
	Delete(ctx context.Context, id string) error
}

// Errors of a Store.
var (
	ErrReleaseNotFound = errors.New("release not found")
	ErrNoArtifacts     = errors.New("no artifacts saved for release")
	ErrCorruptRelease  = errors.New("release record is corrupt")
)

// releaseIDPattern accepts IDs that are safe as file names: no path
// separators and no leading dot (temp files start with one).
var releaseIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func checkReleaseID(id string) error {
	if !releaseIDPattern.MatchString(id) || strings.Contains(id, "..") {
		return fmt.Errorf("%q is not a release id (want one like 20261123T190102Z-a1b2c3)", id)
	}
	return nil
}

// checkArtifactPaths refuses paths that would escape the artifact dir.
func checkArtifactPaths(artifacts []templates.Artifact) error {
	for _, a := range artifacts {
		if a.Path == "" || !filepath.IsLocal(filepath.FromSlash(a.Path)) {
			return fmt.Errorf("artifact path %q is not a relative path inside the release", a.Path)
		}
	}
	return nil
}

// sortReleases orders releases oldest first; the ID breaks ties.
func sortReleases(releases []Release) {
	slices.SortStableFunc(releases, func(a, b Release) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// Stable returns the store's newest release marked stable: the one that
// runs now, and the one a failed deploy returns to.
func Stable(ctx context.Context, store Store) (Release, bool, error) {
	releases, err := store.List(ctx)
	if err != nil {
		return Release{}, false, err
	}
	r, ok := newestStable(releases)
	return r, ok, nil
}

// Live is the release that runs now: the newest one marked stable.
func Live(releases []Release) (Release, bool) { return newestStable(releases) }

// Previous is the previous good release of a sorted history: the newest
// release older than the live one that succeeded and runs something else
// (another configuration, or other images), as helm rollback without a
// revision goes to the one before. None when nothing is live.
func Previous(releases []Release, live Release) (Release, bool) {
	at := slices.IndexFunc(releases, func(r Release) bool { return r.ID == live.ID })
	for i := at - 1; i >= 0; i-- {
		if r := releases[i]; r.Outcome == OutcomeSucceeded && !SameRun(r, live) {
			return r, true
		}
	}
	return Release{}, false
}

// SameRun reports whether two releases run the same thing: the same
// rendered configuration and the same image IDs.
func SameRun(a, b Release) bool {
	return a.ConfigHash == b.ConfigHash && maps.Equal(a.ImageDigests, b.ImageDigests)
}

// newestStable returns the newest stable release of a sorted history.
func newestStable(releases []Release) (Release, bool) {
	for i := len(releases) - 1; i >= 0; i-- {
		if releases[i].Stable {
			return releases[i], true
		}
	}
	return Release{}, false
}

// notFound says which release is missing from where, and which IDs are
// near it, so a typo is easy to see.
func notFound(id, where string, ids []string) error {
	if len(ids) == 0 {
		return fmt.Errorf("%w: %q in %s, which has no releases yet", ErrReleaseNotFound, id, where)
	}
	return fmt.Errorf("%w: %q in %s; nearby releases: %s", ErrReleaseNotFound, id, where,
		strings.Join(nearbyIDs(ids, id, 3), ", "))
}

// nearbyIDs returns up to n IDs on each side of where id would sort.
func nearbyIDs(ids []string, id string, n int) []string {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	at, _ := slices.BinarySearch(sorted, id)
	return sorted[max(0, at-n):min(len(sorted), at+n)]
}

func decodeRelease(data []byte, source string) (Release, error) {
	var r Release
	if err := json.Unmarshal(data, &r); err != nil {
		return Release{}, fmt.Errorf("%w: %s: %w; move it aside or restore it from a backup", ErrCorruptRelease, source, err)
	}
	if r.ID == "" {
		return Release{}, fmt.Errorf("%w: %s has no id; move it aside or restore it from a backup", ErrCorruptRelease, source)
	}
	return r, nil
}
