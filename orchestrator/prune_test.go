package orchestrator

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/obcd/obcd/orchestrator/state"
)

// TestPrune_KeepsTheNewestTheLiveAndThePrevious: after eight deploys
// with retention of five, five records remain; what goes takes its
// stable-<release> tags and the images only it recorded with it.
func TestPrune_KeepsTheNewestTheLiveAndThePrevious(t *testing.T) {
	mem, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	ctx := context.Background()
	var ids []string
	for i := 1; i <= 8; i++ {
		d := memDeployer(t, mem, store, "v"+string(rune('0'+i)))
		d.Keep = DefaultKeep
		result, err := d.Deploy(ctx, DeployOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, result.Release.ID)
	}
	releases, _ := store.List(ctx)
	var left []string
	for _, r := range releases {
		left = append(left, r.ID)
	}
	if want := ids[3:]; !slices.Equal(left, want) {
		t.Fatalf("releases left: %v, want the newest five %v", left, want)
	}
	steps := strings.Join(mem.steps(), "\n")
	for _, id := range ids[:3] {
		if _, err := store.LoadArtifacts(ctx, id); err == nil {
			t.Errorf("the artifacts of pruned release %s are still there", id)
		}
		if !strings.Contains(steps, "untag mem/app:stable-"+id) {
			t.Errorf("the stable tag of pruned release %s was not removed:\n%s", id, steps)
		}
	}
	for _, image := range []string{"sha256:mem/app:v1", "sha256:mem/app:v2", "sha256:mem/app:v3"} {
		if !strings.Contains(steps, "remove image "+image) {
			t.Errorf("image %s of a pruned release was not removed:\n%s", image, steps)
		}
	}
	if strings.Contains(steps, "remove image sha256:mem/app:v4") {
		t.Errorf("an image of a kept release was removed:\n%s", steps)
	}
}

// TestPrune_DryRunRemovesNothingAndNeverTheLiveOrPrevious: a live
// release older than the newest ones, and the one before it, stay.
func TestPrune_DryRunRemovesNothingAndNeverTheLiveOrPrevious(t *testing.T) {
	mem, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	ctx := context.Background()
	var ids []string
	for _, version := range []string{"v1", "v2", "v3", "v4"} {
		result, err := memDeployer(t, mem, store, version).Deploy(ctx, DeployOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, result.Release.ID)
	}
	// A rollback to v2 is the newest release and the live one; with only
	// the newest kept, the previous good release (v4) stays too.
	if _, err := memDeployer(t, mem, store, "v4").Rollback(ctx, RollbackOptions{To: ids[1]}); err != nil {
		t.Fatal(err)
	}
	mem.steps()
	dry, err := memDeployer(t, mem, store, "v4").Prune(ctx, PruneOptions{Keep: 1, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if steps := mem.steps(); len(steps) != 0 {
		t.Errorf("a dry run changed the engine: %v", steps)
	}
	if releases, _ := store.List(ctx); len(releases) != 5 {
		t.Errorf("a dry run removed records: %d left", len(releases))
	}
	// Kept: the newest (the rollback, live), and the previous good one (v4).
	if !slices.Contains(dry.Kept, ids[3]) || len(dry.Kept) != 2 || slices.Contains(dry.Releases, ids[3]) {
		t.Errorf("dry run keeps %v and prunes %v; want the live rollback and the previous release %s", dry.Kept, dry.Releases, ids[3])
	}
	if !slices.Contains(dry.Releases, ids[0]) || !slices.Contains(dry.Tags, "mem/app:stable-"+ids[0]) {
		t.Errorf("dry run: releases %v, tags %v; want v1's release and tag listed", dry.Releases, dry.Tags)
	}
}
