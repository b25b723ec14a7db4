package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/obcd/obcd/internal/testsvc"
)

func TestPostgresStore_AgainstARealServer(t *testing.T) {
	pg := testsvc.StartPostgres(t)
	dsn := pg.DSN(pg.Superuser, pg.Password, "postgres")
	ctx := context.Background()
	var environments atomic.Int64
	open := func(t *testing.T, dsn string) Store {
		t.Helper()
		// Each subtest gets its own environment: environments must not see
		// each other's releases.
		env := fmt.Sprintf("staging%d", environments.Add(1))
		store, err := OpenPostgresStore(ctx, dsn, env)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close(ctx) })
		return environmentFixer{Store: store, environment: env}
	}

	t.Run("Contract", func(t *testing.T) {
		testStoreContract(t, func(t *testing.T) Store { return open(t, dsn) })
	})
	t.Run("ContractWithExecMode", func(t *testing.T) {
		// The mode PgBouncer 1.18 in transaction pooling needs.
		testStoreContract(t, func(t *testing.T) Store { return open(t, dsn+" default_query_exec_mode=exec") })
	})

	t.Run("EnvironmentsAreSeparate", func(t *testing.T) {
		staging, err := OpenPostgresStore(ctx, dsn, "staging")
		if err != nil {
			t.Fatal(err)
		}
		defer staging.Close(ctx)
		prod, err := OpenPostgresStore(ctx, dsn, "prod")
		if err != nil {
			t.Fatal(err)
		}
		defer prod.Close(ctx)
		r := sampleRelease("20261123T190102Z-aaaaaa", t0, true)
		if err := staging.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
		if releases, err := prod.List(ctx); err != nil || len(releases) != 0 {
			t.Fatalf("prod sees %v (%v); want nothing", releases, err)
		}
		if err := prod.Save(ctx, r); err == nil || !strings.Contains(err.Error(), `"staging"`) {
			t.Fatalf("prod saved a staging release: %v", err)
		}
	})

	t.Run("CorruptRowIsAnErrorNamingIt", func(t *testing.T) {
		store, err := OpenPostgresStore(ctx, dsn, "corrupt")
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close(ctx)
		r := sampleRelease("20261123T190102Z-aaaaaa", t0, true)
		r.Environment = "corrupt"
		if err := store.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
		pg.Exec("postgres", `UPDATE obcd_releases SET body = '{"id": 5}' WHERE environment = 'corrupt'`)
		_, getErr := store.Get(ctx, r.ID)
		_, listErr := store.List(ctx)
		for name, err := range map[string]error{"Get": getErr, "List": listErr} {
			if !errors.Is(err, ErrCorruptRelease) || !strings.Contains(err.Error(), r.ID) || !strings.Contains(err.Error(), "obcd_releases") {
				t.Errorf("%s: err = %v; want ErrCorruptRelease naming the row", name, err)
			}
		}
	})

	t.Run("ReconnectsAfterTheConnectionIsKilled", func(t *testing.T) {
		store, err := OpenPostgresStore(ctx, dsn, "reconnect")
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close(ctx)
		pg.Exec("postgres", `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'`)
		// The first call may see the dead connection; the next reconnects.
		_, _ = store.List(ctx)
		if _, err := store.List(ctx); err != nil {
			t.Fatalf("List after the connection was killed: %v", err)
		}
	})

	t.Run("BadDSNFailsAtOpen", func(t *testing.T) {
		_, err := OpenPostgresStore(ctx, pg.DSN(pg.Superuser, "wrong", "postgres"), "staging")
		if err == nil {
			t.Fatal("OpenPostgresStore with a wrong password succeeded")
		}
	})
}

// environmentFixer sets the environment of saved releases to the store's,
// so the shared contract's "staging" releases fit any store.
type environmentFixer struct {
	Store
	environment string
}

func (f environmentFixer) Save(ctx context.Context, r Release) error {
	r.Environment = f.environment
	return f.Store.Save(ctx, r)
}

func (f environmentFixer) Get(ctx context.Context, id string) (Release, error) {
	r, err := f.Store.Get(ctx, id)
	r.Environment = "staging"
	return r, err
}

func (f environmentFixer) List(ctx context.Context) ([]Release, error) {
	releases, err := f.Store.List(ctx)
	for i := range releases {
		releases[i].Environment = "staging"
	}
	return releases, err
}
