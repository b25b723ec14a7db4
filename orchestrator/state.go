package orchestrator

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/templates"
)

// Outcome is where a release ended up.
type Outcome string

// Outcomes of a release.
const (
	OutcomeInProgress Outcome = "in-progress"
	OutcomeSucceeded  Outcome = "succeeded"
	OutcomeFailed     Outcome = "failed"
	OutcomeRolledBack Outcome = "rolled-back"
	// OutcomeInterrupted: the deploy process ended (killed, host lost)
	// before it finished; the next deploy marks it so and converges.
	OutcomeInterrupted Outcome = "interrupted"
)

// Release is the record of one deploy or rollback of an environment:
// what was deployed, by whom, and how it ended.
type Release struct {
	ID             string            `json:"id"` // sortable: 20261123T190102Z-<6 hex>
	Environment    string            `json:"environment"`
	Created        time.Time         `json:"created"`
	Finished       time.Time         `json:"finished,omitzero"`
	User           string            `json:"user"`
	Host           string            `json:"host"`
	Version        string            `json:"version"`         // the stack's APP_VERSION
	Images         map[string]string `json:"images"`          // service -> image reference deployed
	ImageDigests   map[string]string `json:"image_digests"`   // service -> image ID or digest
	ConfigHash     string            `json:"config_hash"`     // sha256 of the rendered manifest
	SecretVersions map[string]string `json:"secret_versions"` // secret name -> SecretVersion, never the value
	Probes         []probe.Result    `json:"probes"`
	Outcome        Outcome           `json:"outcome"`
	Stable         bool              `json:"stable"`            // the release rollbacks return to
	Message        string            `json:"message,omitempty"` // why it failed, or what was rolled back to
	RolledBackTo   string            `json:"rolled_back_to,omitempty"`
	// RollbackOf is the release a manual rollback returned to: the
	// rollback is a release of its own, with that release's images and
	// config, so history says who rolled back, when, and to what.
	RollbackOf string `json:"rollback_of,omitempty"`
}

// releaseIDLayout is the time part of a release ID: UTC, to the second,
// so that IDs sort in creation order.
const releaseIDLayout = "20060102T150405Z"

// NewReleaseID returns a new sortable release ID for now, such as
// 20261123T190102Z-a1b2c3.
func NewReleaseID(now time.Time) string {
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix) // crypto/rand.Read never fails on supported platforms
	return now.UTC().Format(releaseIDLayout) + "-" + hex.EncodeToString(suffix)
}

// NewRelease starts the record of a release of environment at now, by
// this user on this host, in progress.
func NewRelease(environment string, now time.Time) Release {
	return Release{
		ID:          NewReleaseID(now),
		Environment: environment,
		Created:     now.UTC(),
		User:        currentUserName(),
		Host:        currentHostName(),
		Outcome:     OutcomeInProgress,
	}
}

// SecretVersion identifies a secret's value without revealing it: the
// first 16 hex chars of HMAC-SHA256 keyed by "obcd secret version\x00"+name
// over the value. The same value under two names gives two versions.
func SecretVersion(name, value string) string {
	mac := hmac.New(sha256.New, []byte("obcd secret version\x00"+name))
	mac.Write([]byte(value))
	return hex.EncodeToString(mac.Sum(nil))[:16]
}

// Store keeps an environment's release history and each release's
// rendered files.
type Store interface {
	// Save creates or replaces a release, atomically.
	Save(ctx context.Context, r Release) error
	// Get returns one release; a missing one is ErrReleaseNotFound.
	Get(ctx context.Context, id string) (Release, error)
	// List returns every release, oldest first.
	List(ctx context.Context) ([]Release, error)
	// Stable returns the newest release marked stable.
	Stable(ctx context.Context) (Release, bool, error)
	// SaveArtifacts keeps the rendered files of a release, with their
	// modes, so a rollback restores that release's config.
	SaveArtifacts(ctx context.Context, id string, artifacts []templates.Artifact) error
	// LoadArtifacts returns what SaveArtifacts kept; none is ErrNoArtifacts.
	LoadArtifacts(ctx context.Context, id string) ([]templates.Artifact, error)
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

// currentUserName is $USER, or the OS account name.
func currentUserName() string {
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	if account, err := user.Current(); err == nil {
		return account.Username
	}
	return "unknown"
}

func currentHostName() string {
	if name, err := os.Hostname(); err == nil {
		return name
	}
	return "unknown"
}

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
	if err := WriteFileAtomic(s.releasePath(r.ID), append(data, '\n'), 0o600); err != nil {
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

// Stable implements Store.
func (s *LocalStore) Stable(ctx context.Context) (Release, bool, error) {
	releases, err := s.List(ctx)
	if err != nil {
		return Release{}, false, err
	}
	r, ok := newestStable(releases)
	return r, ok, nil
}

// SaveArtifacts implements Store. The files are written with their modes
// to a staging dir that then replaces releases/<id>/artifacts.
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
	if err := replaceDir(s.artifactsDir(id), artifacts); err != nil {
		return fmt.Errorf("save artifacts of %s: %w", id, err)
	}
	return nil
}

// replaceDir writes artifacts to a new dir beside target with
// templates.WriteDir, then swaps it in: target is never half-written.
func replaceDir(target string, artifacts []templates.Artifact) error {
	staging, err := os.MkdirTemp(filepath.Dir(target), "."+filepath.Base(target)+".new-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	fresh := filepath.Join(staging, "files")
	if err := templates.WriteDir(fresh, artifacts); err != nil {
		return err
	}
	old := filepath.Join(staging, "old")
	hadOld := true
	if err := os.Rename(target, old); errors.Is(err, fs.ErrNotExist) {
		hadOld = false
	} else if err != nil {
		return fmt.Errorf("move previous %s aside: %w", target, err)
	}
	if err := os.Rename(fresh, target); err != nil {
		if hadOld {
			_ = os.Rename(old, target)
		}
		return fmt.Errorf("move new files into %s: %w", target, err)
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
