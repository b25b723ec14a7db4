package orchestrator

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/obcd/obcd/orchestrator/state"
)

// manageStack is memStack with Django's own migrate command: manage.py,
// so obcd reads and records the applied migrations.
var manageStack = strings.Replace(memStack, "django {\n  migrate_command = [\"migrate\"]\n}\n", "", 1)

// TestRollback_RefusedWhenTheSchemaIsNewerThanTheTarget: each release
// records what the database had applied when it became stable; a
// rollback to one that never had a migration the database holds is
// refused before any change, listing it and the manage.py command that
// reverses it, unless --allow-newer-schema.
func TestRollback_RefusedWhenTheSchemaIsNewerThanTheTarget(t *testing.T) {
	if manageStack == memStack {
		t.Fatal("manageStack still sets migrate_command")
	}
	mem, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	ctx := context.Background()
	deploy := func(version string, applied ...string) state.Release {
		mem.applied = applied
		d := memDeployerFrom(t, mem, manageStack, version)
		d.Store = store
		result, err := d.Deploy(ctx, DeployOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return result.Release
	}
	first := deploy("v1", "communities.0001_initial", "auth.0001_initial")
	second := deploy("v2", "communities.0001_initial", "communities.0002_leaders", "auth.0001_initial")
	if !slices.Equal(first.Migrations, []string{"communities.0001_initial", "auth.0001_initial"}) || len(second.Migrations) != 3 {
		t.Fatalf("recorded migrations: %v and %v", first.Migrations, second.Migrations)
	}
	before, _ := store.List(ctx)
	mem.steps()
	rollback := func(allow bool) (DeployResult, error) {
		d := memDeployerFrom(t, mem, manageStack, "v2")
		d.Store = store
		return d.Rollback(ctx, RollbackOptions{To: first.ID, AllowNewerSchema: allow})
	}
	_, err := rollback(false)
	if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "communities.0002_leaders") ||
		!strings.Contains(err.Error(), "python3 manage.py migrate communities 0001_initial") || strings.Contains(err.Error(), "auth") {
		t.Fatalf("rollback to a release older than the schema: %v, want ErrNewerSchema listing communities.0002_leaders and how to reverse it", err)
	}
	for _, step := range mem.steps() {
		if !strings.HasPrefix(step, "list migrations") {
			t.Errorf("a refused rollback changed the engine: %s", step)
		}
	}
	if after, _ := store.List(ctx); len(after) != len(before) {
		t.Errorf("a refused rollback was recorded: %d releases, were %d", len(after), len(before))
	}
	result, err := rollback(true)
	if err != nil || result.Release.RollbackOf != first.ID {
		t.Fatalf("rollback --allow-newer-schema: %v, release %+v", err, result.Release)
	}
	if len(result.Release.Migrations) != 3 {
		t.Errorf("the rollback recorded %v, want what the database holds now", result.Release.Migrations)
	}
}
