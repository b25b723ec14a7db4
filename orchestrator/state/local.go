package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/obcd/obcd/internal/atomicfile"
	"github.com/obcd/obcd/templates"
)

// LocalStore keeps releases in files under <stateDir>/<env>/:
// releases/<id>.json (0600) and releases/<id>/artifacts/...
type LocalStore struct {
	dir string
}

var _ Store = (*LocalStore)(nil)

// OpenLocalStore returns the store in dir, which is <stateDir>/<env>. A
// missing dir is an empty history; it is created on the first save.
func OpenLocalStore(dir string) *LocalStore {
	return &LocalStore{dir: dir}
}

func (s *LocalStore) releasesDir() string { return filepath.Join(s.dir, "releases") }

func (s *LocalStore) releasePath(id string) string {
	return filepath.Join(s.releasesDir(), id+".json")
}

func (s *LocalStore) artifactsDir(id string) string {
	return filepath.Join(s.releasesDir(), id, "artifacts")
}

// Save implements Store: the file is replaced in one rename.
func (s *LocalStore) Save(_ context.Context, r Release) error {
	if err := checkReleaseID(r.ID); err != nil {
		return fmt.Errorf("save release: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("save release %s: %w", r.ID, err)
	}
	if err := atomicfile.WriteFile(s.releasePath(r.ID), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save release %s: %w", r.ID, err)
	}
	return nil
}

// Get implements Store.
func (s *LocalStore) Get(_ context.Context, id string) (Release, error) {
	if err := checkReleaseID(id); err != nil {
		return Release{}, fmt.Errorf("%w: %w", ErrReleaseNotFound, err)
	}
	path := s.releasePath(id)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		ids, listErr := s.ids()
		if listErr != nil {
			return Release{}, listErr
		}
		return Release{}, notFound(id, s.releasesDir(), ids)
	}
	if err != nil {
		return Release{}, fmt.Errorf("read release: %w", err)
	}
	r, err := decodeRelease(data, path)
	if err != nil {
		return Release{}, err
	}
	if r.ID != id {
		return Release{}, fmt.Errorf("%w: %s holds release %q, not %q", ErrCorruptRelease, path, r.ID, id)
	}
	return r, nil
}

// ids lists the release IDs that have a file, skipping temp files.
func (s *LocalStore) ids() ([]string, error) {
	entries, err := os.ReadDir(s.releasesDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	var ids []string
	for _, entry := range entries {
		id, ok := strings.CutSuffix(entry.Name(), ".json")
		if ok && entry.Type().IsRegular() && checkReleaseID(id) == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// List implements Store.
func (s *LocalStore) List(_ context.Context) ([]Release, error) {
	ids, err := s.ids()
	if err != nil {
		return nil, err
	}
	releases := make([]Release, 0, len(ids))
	for _, id := range ids {
		path := s.releasePath(id)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read release: %w", err)
		}
		r, err := decodeRelease(data, path)
		if err != nil {
			return nil, err
		}
		releases = append(releases, r)
	}
	sortReleases(releases)
	return releases, nil
}

// SaveArtifacts implements Store. The files are written with their modes
// to a staging dir that then replaces releases/<id>/artifacts
// (atomicfile.ReplaceDir), so it is never half-written.
func (s *LocalStore) SaveArtifacts(_ context.Context, id string, artifacts []templates.Artifact) error {
	if err := checkReleaseID(id); err != nil {
		return fmt.Errorf("save artifacts: %w", err)
	}
	if err := checkArtifactPaths(artifacts); err != nil {
		return fmt.Errorf("save artifacts of %s: %w", id, err)
	}
	releaseDir := filepath.Dir(s.artifactsDir(id))
	if err := os.MkdirAll(releaseDir, 0o700); err != nil {
		return fmt.Errorf("save artifacts of %s: %w", id, err)
	}
	if err := atomicfile.ReplaceDir(s.artifactsDir(id), templates.Files(artifacts)); err != nil {
		return fmt.Errorf("save artifacts of %s: %w", id, err)
	}
	return nil
}

// LoadArtifacts implements Store.
func (s *LocalStore) LoadArtifacts(_ context.Context, id string) ([]templates.Artifact, error) {
	if err := checkReleaseID(id); err != nil {
		return nil, fmt.Errorf("load artifacts: %w", err)
	}
	root := s.artifactsDir(id)
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s: %s does not exist", ErrNoArtifacts, id, root)
	}
	var artifacts []templates.Artifact
	err := filepath.WalkDir(root, func(path string, entry fs.DirEntry, err error) error {
		if err != nil || entry.IsDir() {
			return err
		}
		if !entry.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		info, err := entry.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		artifacts = append(artifacts, templates.Artifact{Path: filepath.ToSlash(rel), Mode: info.Mode().Perm(), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load artifacts of %s: %w", id, err)
	}
	return artifacts, nil
}

// Delete implements Store: the record goes first, so a release is never
// listed without its files.
func (s *LocalStore) Delete(_ context.Context, id string) error {
	if err := checkReleaseID(id); err != nil {
		return fmt.Errorf("delete release: %w", err)
	}
	if err := os.Remove(s.releasePath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete release %s: %w", id, err)
	}
	if err := os.RemoveAll(filepath.Dir(s.artifactsDir(id))); err != nil {
		return fmt.Errorf("delete the artifacts of release %s: %w", id, err)
	}
	return nil
}
