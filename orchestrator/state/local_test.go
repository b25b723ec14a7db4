package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/templates"
)

var t0 = time.Date(2026, 11, 23, 19, 1, 2, 0, time.UTC)

func sampleRelease(id string, created time.Time, stable bool) Release {
	return Release{
		ID: id, Environment: "staging", Created: created, Finished: created.Add(90 * time.Second),
		User: "alice", Host: "build1", Version: "1.4.2",
		Images:         map[string]string{"web": "registry.example.com/shop:1.4.2"},
		ImageDigests:   map[string]string{"web": "sha256:0123abcd"},
		ConfigHash:     "sha256:feedface",
		SecretVersions: map[string]string{"django_secret_key": SecretVersion("django_secret_key", "s3cr3t-value")},
		Probes: []probe.Result{{Name: "web-ready", Kind: "http", Target: "http://web:8000/ready/",
			Component: "web", Critical: true, Status: probe.StatusPass, Latency: 12 * time.Millisecond, Attempts: 2, Message: "200 OK"}},
		Outcome: OutcomeSucceeded, Stable: stable,
	}
}

func sampleArtifacts() []templates.Artifact {
	return []templates.Artifact{
		{Path: templates.PathManifest, Mode: templates.ModePublic, Data: []byte(`{"services":["web"]}`)},
		{Path: templates.PathPgBouncerUserlist, Mode: templates.ModeSecret, Data: []byte(`"app" "SCRAM-SHA-256$4096:..."` + "\n")},
		{Path: templates.PathBackupScript, Mode: templates.ModeScript, Data: []byte("#!/bin/sh\necho backup\n")},
		{Path: templates.EnvFilePath("staging"), Mode: templates.ModeSecret, Data: []byte("APP_VERSION=1.4.2\n")},
	}
}

func sortedByPath(artifacts []templates.Artifact) []templates.Artifact {
	out := slices.Clone(artifacts)
	slices.SortFunc(out, func(a, b templates.Artifact) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// testStoreContract runs the behaviour every Store must have. newStore
// returns an empty store for the "staging" environment.
func testStoreContract(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("DeleteRemovesTheRecordAndItsArtifactsOnly", func(t *testing.T) {
		store := newStore(t)
		gone := sampleRelease("20261123T190100Z-aaaaaa", t0, false)
		kept := sampleRelease("20261123T190200Z-bbbbbb", t0.Add(time.Minute), true)
		for _, r := range []Release{gone, kept} {
			if err := store.Save(ctx, r); err != nil {
				t.Fatal(err)
			}
			if err := store.SaveArtifacts(ctx, r.ID, sampleArtifacts()); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.Delete(ctx, gone.ID); err != nil {
			t.Fatal(err)
		}
		if err := store.Delete(ctx, gone.ID); err != nil {
			t.Errorf("deleting a missing release: %v", err)
		}
		if _, err := store.Get(ctx, gone.ID); !errors.Is(err, ErrReleaseNotFound) {
			t.Errorf("Get after Delete: %v", err)
		}
		if _, err := store.LoadArtifacts(ctx, gone.ID); !errors.Is(err, ErrNoArtifacts) {
			t.Errorf("LoadArtifacts after Delete: %v", err)
		}
		releases, err := store.List(ctx)
		if err != nil || len(releases) != 1 || releases[0].ID != kept.ID {
			t.Errorf("after Delete: %v, %v; want only %s", releases, err, kept.ID)
		}
		if artifacts, err := store.LoadArtifacts(ctx, kept.ID); err != nil || len(artifacts) == 0 {
			t.Errorf("the kept release's artifacts: %v, %v", artifacts, err)
		}
	})

	t.Run("ListIsOldestFirstAndGetReturnsWhatWasSaved", func(t *testing.T) {
		store := newStore(t)
		newest := sampleRelease("20261123T190500Z-cccccc", t0.Add(5*time.Minute), false)
		oldest := sampleRelease("20261123T190102Z-aaaaaa", t0, true)
		middle := sampleRelease("20261123T190300Z-bbbbbb", t0.Add(3*time.Minute), true)
		for _, r := range []Release{newest, oldest, middle} {
			if err := store.Save(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		releases, err := store.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []Release{oldest, middle, newest}; !reflect.DeepEqual(releases, want) {
			t.Fatalf("List:\n got %+v\nwant %+v", releases, want)
		}
		got, err := store.Get(ctx, middle.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, middle) {
			t.Fatalf("Get:\n got %+v\nwant %+v", got, middle)
		}
	})

	t.Run("SaveReplacesTheReleaseWithTheSameID", func(t *testing.T) {
		store := newStore(t)
		r := sampleRelease("20261123T190102Z-aaaaaa", t0, false)
		r.Outcome = OutcomeInProgress
		if err := store.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
		r.Outcome, r.Message = OutcomeFailed, "web-ready: 502 Bad Gateway"
		if err := store.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
		releases, err := store.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(releases) != 1 || releases[0].Outcome != OutcomeFailed || releases[0].Message != r.Message {
			t.Fatalf("after replacing, List = %+v; want the one failed release", releases)
		}
	})

	t.Run("StableIsTheNewestStableRelease", func(t *testing.T) {
		store := newStore(t)
		if _, ok, err := Stable(ctx, store); err != nil || ok {
			t.Fatalf("empty store: Stable ok=%v err=%v; want none", ok, err)
		}
		releases := []Release{
			sampleRelease("20261123T190102Z-aaaaaa", t0, true),
			sampleRelease("20261123T190300Z-bbbbbb", t0.Add(3*time.Minute), true),
			sampleRelease("20261123T190500Z-cccccc", t0.Add(5*time.Minute), false),
		}
		releases[2].Outcome = OutcomeFailed
		for _, r := range releases {
			if err := store.Save(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		stable, ok, err := Stable(ctx, store)
		if err != nil || !ok {
			t.Fatalf("Stable ok=%v err=%v", ok, err)
		}
		if stable.ID != releases[1].ID {
			t.Fatalf("Stable = %s; want the newest stable release %s", stable.ID, releases[1].ID)
		}
	})

	t.Run("GetMissingNamesTheIDAndNearbyReleases", func(t *testing.T) {
		store := newStore(t)
		_, err := store.Get(ctx, "20261123T190102Z-aaaaaa")
		if !errors.Is(err, ErrReleaseNotFound) || !strings.Contains(err.Error(), "no releases yet") {
			t.Fatalf("empty store: err = %v; want ErrReleaseNotFound saying there are none", err)
		}
		for _, id := range []string{"20261123T190102Z-aaaaaa", "20261123T190300Z-bbbbbb"} {
			if err := store.Save(ctx, sampleRelease(id, t0, false)); err != nil {
				t.Fatal(err)
			}
		}
		_, err = store.Get(ctx, "20261123T190300Z-bbbbbc")
		if !errors.Is(err, ErrReleaseNotFound) {
			t.Fatalf("err = %v; want ErrReleaseNotFound", err)
		}
		for _, want := range []string{"20261123T190300Z-bbbbbc", "20261123T190102Z-aaaaaa", "20261123T190300Z-bbbbbb"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %s", err, want)
			}
		}
	})

	t.Run("ArtifactsRoundTripWithTheirModes", func(t *testing.T) {
		store := newStore(t)
		id := "20261123T190102Z-aaaaaa"
		if _, err := store.LoadArtifacts(ctx, id); !errors.Is(err, ErrNoArtifacts) {
			t.Fatalf("before saving: err = %v; want ErrNoArtifacts", err)
		}
		if err := store.SaveArtifacts(ctx, id, sampleArtifacts()); err != nil {
			t.Fatal(err)
		}
		got, err := store.LoadArtifacts(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := sortedByPath(sampleArtifacts()); !reflect.DeepEqual(got, want) {
			t.Fatalf("LoadArtifacts:\n got %+v\nwant %+v", got, want)
		}
		// A second save replaces the set, even without a manifest.
		replacement := []templates.Artifact{{Path: templates.PathNginx, Mode: templates.ModePublic, Data: []byte("events {}\n")}}
		if err := store.SaveArtifacts(ctx, id, replacement); err != nil {
			t.Fatal(err)
		}
		got, err = store.LoadArtifacts(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, replacement) {
			t.Fatalf("after replacing: %+v; want %+v", got, replacement)
		}
		other, err := store.LoadArtifacts(ctx, "20261123T190300Z-bbbbbb")
		if !errors.Is(err, ErrNoArtifacts) {
			t.Fatalf("another release: %v, %v; want ErrNoArtifacts", other, err)
		}
	})

	t.Run("RefusesIDsAndPathsThatEscape", func(t *testing.T) {
		store := newStore(t)
		bad := sampleRelease("../../etc/passwd", t0, false)
		if err := store.Save(ctx, bad); err == nil {
			t.Fatal("Save accepted id ../../etc/passwd")
		}
		escape := []templates.Artifact{{Path: "../../outside", Mode: 0o644, Data: []byte("x")}}
		if err := store.SaveArtifacts(ctx, "20261123T190102Z-aaaaaa", escape); err == nil {
			t.Fatal("SaveArtifacts accepted path ../../outside")
		}
	})
}

func TestLocalStore_Contract(t *testing.T) {
	testStoreContract(t, func(t *testing.T) Store {
		return OpenLocalStore(filepath.Join(t.TempDir(), ".obcd", "staging"))
	})
}

func TestLocalStore_MissingDirIsAnEmptyHistory(t *testing.T) {
	store := OpenLocalStore(filepath.Join(t.TempDir(), "nowhere", "staging"))
	releases, err := store.List(context.Background())
	if err != nil || len(releases) != 0 {
		t.Fatalf("List = %v, %v; want empty, no error", releases, err)
	}
}

func TestLocalStore_FilesArePrivateAndWhereDocumented(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "staging")
	store := OpenLocalStore(dir)
	ctx := context.Background()
	r := sampleRelease("20261123T190102Z-aaaaaa", t0, true)
	if err := store.Save(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := store.SaveArtifacts(ctx, r.ID, sampleArtifacts()); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "releases", r.ID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("release file mode = %04o; want 0600 (probes may mention hosts)", mode)
	}
	userlist := filepath.Join(dir, "releases", r.ID, "artifacts", filepath.FromSlash(templates.PathPgBouncerUserlist))
	info, err = os.Stat(userlist)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("%s mode = %04o; want 0600", userlist, mode)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "releases", r.ID, ".*"))
	if len(leftovers) != 0 {
		t.Errorf("staging dirs left behind: %v", leftovers)
	}
}

func TestLocalStore_CorruptFileIsAnErrorNamingIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "staging")
	store := OpenLocalStore(dir)
	ctx := context.Background()
	if err := store.Save(ctx, sampleRelease("20261123T190102Z-aaaaaa", t0, true)); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "releases", "20261123T190300Z-bbbbbb.json")
	if err := os.WriteFile(corrupt, []byte(`{"id": "20261123T190300Z-bbbbbb", "created": `), 0o600); err != nil {
		t.Fatal(err)
	}
	_, listErr := store.List(ctx)
	_, getErr := store.Get(ctx, "20261123T190300Z-bbbbbb")
	_, _, stableErr := Stable(ctx, store)
	for name, err := range map[string]error{"List": listErr, "Get": getErr, "Stable": stableErr} {
		if !errors.Is(err, ErrCorruptRelease) || !strings.Contains(err.Error(), corrupt) {
			t.Errorf("%s: err = %v; want ErrCorruptRelease naming %s", name, err, corrupt)
		}
	}
	// A file that parses but holds another release is corrupt too.
	if err := os.WriteFile(corrupt, []byte(`{"id": "20261123T190102Z-aaaaaa"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, "20261123T190300Z-bbbbbb"); !errors.Is(err, ErrCorruptRelease) {
		t.Errorf("mismatched id: err = %v; want ErrCorruptRelease", err)
	}
}

func TestLocalStore_SaveNeverShowsAPartialFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "staging")
	store := OpenLocalStore(dir)
	ctx := context.Background()
	r := sampleRelease("20261123T190102Z-aaaaaa", t0, true)
	if err := store.Save(ctx, r); err != nil {
		t.Fatal(err)
	}
	// Big enough that a non-atomic write would be seen half done.
	r.Message = strings.Repeat("x", 1<<20)
	stop := make(chan struct{})
	var readErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := store.Get(ctx, r.ID); err != nil {
				readErr = err
				return
			}
		}
	}()
	for i := range 30 {
		r.Version = fmt.Sprintf("1.4.%d", i)
		if err := store.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if readErr != nil {
		t.Fatalf("a reader saw a partial release file: %v", readErr)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "releases"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != r.ID+".json" {
		t.Fatalf("releases dir holds %v; want only %s.json (temp files cleaned)", entries, r.ID)
	}
}

func TestLocalStore_CrashBeforeRenameLeavesTheOldRelease(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "staging")
	store := OpenLocalStore(dir)
	ctx := context.Background()
	old := sampleRelease("20261123T190102Z-aaaaaa", t0, true)
	if err := store.Save(ctx, old); err != nil {
		t.Fatal(err)
	}
	// What a crash between the temp write and the rename leaves behind.
	crashed := filepath.Join(dir, "releases", "."+old.ID+".json.tmp-123456")
	if err := os.WriteFile(crashed, []byte(`{"id": "20261123T190102Z-aaaaaa", "outcome": "fai`), 0o600); err != nil {
		t.Fatal(err)
	}
	releases, err := store.List(ctx)
	if err != nil {
		t.Fatalf("List with a leftover temp file: %v", err)
	}
	if len(releases) != 1 || !reflect.DeepEqual(releases[0], old) {
		t.Fatalf("List = %+v; want only the old release", releases)
	}
}

func TestLocalStore_FailedSaveCleansItsTempFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "staging")
	store := OpenLocalStore(dir)
	r := sampleRelease("20261123T190102Z-aaaaaa", t0, true)
	// A directory where the file should go makes the final rename fail.
	if err := os.MkdirAll(filepath.Join(dir, "releases", r.ID+".json", "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := store.Save(context.Background(), r); err == nil {
		t.Fatal("Save succeeded over a directory")
	}
	temps, _ := filepath.Glob(filepath.Join(dir, "releases", ".*"))
	if len(temps) != 0 {
		t.Fatalf("temp files left after a failed save: %v", temps)
	}
}

func TestLocalStore_ReleaseFileIsJSONWithDocumentedKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "staging")
	store := OpenLocalStore(dir)
	r := sampleRelease("20261123T190102Z-aaaaaa", t0, true)
	r.Finished = time.Time{}
	if err := store.Save(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "releases", r.ID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"id", "environment", "created", "user", "host", "version", "images",
		"image_digests", "config_hash", "secret_versions", "probes", "outcome", "stable"} {
		if _, ok := fields[key]; !ok {
			t.Errorf("release file has no %q key", key)
		}
	}
	if _, ok := fields["finished"]; ok {
		t.Errorf("an unfinished release has a finished key: %s", fields["finished"])
	}
	if strings.Contains(string(data), "s3cr3t-value") {
		t.Errorf("release file holds a secret value")
	}
}

func TestNewReleaseID_SortsByTimeAndIsUnique(t *testing.T) {
	pattern := regexp.MustCompile(`^\d{8}T\d{6}Z-[0-9a-f]{6}$`)
	first := NewReleaseID(time.Date(2026, 11, 23, 19, 1, 2, 0, time.FixedZone("CET", 3600)))
	if !strings.HasPrefix(first, "20261123T180102Z-") || !pattern.MatchString(first) {
		t.Fatalf("NewReleaseID = %q; want 20261123T180102Z-<6 hex> (UTC)", first)
	}
	later := NewReleaseID(time.Date(2026, 11, 23, 19, 1, 3, 0, time.UTC))
	if later <= first {
		t.Fatalf("%q does not sort after %q", later, first)
	}
	seen := map[string]bool{}
	for range 100 {
		id := NewReleaseID(t0)
		if seen[id] {
			t.Fatalf("NewReleaseID repeated %q", id)
		}
		seen[id] = true
	}
	r := NewRelease("staging", t0)
	if r.Outcome != OutcomeInProgress || r.User == "" || r.Host == "" || r.Environment != "staging" || !pattern.MatchString(r.ID) {
		t.Fatalf("NewRelease = %+v", r)
	}
}

func TestSecretVersion_NeverRevealsTheValue(t *testing.T) {
	values := []string{"hunter2hunter2", "correct horse battery staple", "0123456789abcdef", "S3cr3t!"}
	seen := map[string]string{}
	for _, name := range []string{"django_secret_key", "db_password"} {
		for _, value := range values {
			version := SecretVersion(name, value)
			if len(version) != 16 || strings.Trim(version, "0123456789abcdef") != "" {
				t.Errorf("SecretVersion(%q, ...) = %q; want 16 hex chars", name, version)
			}
			if version == value || strings.Contains(version, value) || strings.Contains(value, version) {
				t.Errorf("SecretVersion(%q, %q) = %q reveals the value", name, value, version)
			}
			if prev, ok := seen[version]; ok {
				t.Errorf("SecretVersion(%s/%s) = SecretVersion(%s)", name, value, prev)
			}
			seen[version] = name + "/" + value
			if again := SecretVersion(name, value); again != version {
				t.Errorf("SecretVersion is not stable: %q then %q", version, again)
			}
		}
	}
	// The documented construction (computed with Python's hmac), so
	// other tools can compute the same version.
	if got, want := SecretVersion("token", "abc"), "dc694e0fbcf4022c"; got != want {
		t.Fatalf("SecretVersion(token, abc) = %s; want %s", got, want)
	}
}
