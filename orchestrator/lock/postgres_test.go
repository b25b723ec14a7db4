package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/internal/who"
)

func advisoryHolderPIDs(t *testing.T, dsn, environment string) []int32 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pids, err := advisoryHolders(ctx, conn, environment)
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

func TestPostgresLock_AgainstARealServer(t *testing.T) {
	pg := testsvc.StartPostgres(t)
	dsn := pg.DSN(pg.Superuser, pg.Password, "postgres")
	ctx := context.Background()

	t.Run("SecondLockerIsRefusedUntilRelease", func(t *testing.T) {
		held, err := NewPostgresLocker(dsn, "staging").Acquire(ctx, "deploy", 0)
		if err != nil {
			t.Fatal(err)
		}
		if pids := advisoryHolderPIDs(t, dsn, "staging"); len(pids) != 1 {
			t.Fatalf("advisory lock holders = %v; want one session", pids)
		}
		began := time.Now()
		_, err = NewPostgresLocker(dsn, "staging").Acquire(ctx, "rollback", 0)
		if time.Since(began) > 2*time.Second {
			t.Errorf("refusal took %s", time.Since(began))
		}
		locked := lockedError(t, err)
		if locked.Info.Token != held.Info().Token || locked.Info.Operation != "deploy" ||
			locked.Info.PID != held.Info().PID || locked.Stale {
			t.Fatalf("LockedError = %+v; want the live deploy lock %+v", locked, held.Info())
		}
		// Another environment is independent.
		other, err := NewPostgresLocker(dsn, "prod").Acquire(ctx, "deploy", 0)
		if err != nil {
			t.Fatalf("prod is blocked by staging: %v", err)
		}
		if err := other.Release(); err != nil {
			t.Fatal(err)
		}
		if err := held.Release(); err != nil {
			t.Fatal(err)
		}
		if pids := advisoryHolderPIDs(t, dsn, "staging"); len(pids) != 0 {
			t.Fatalf("after Release, sessions %v still hold the lock", pids)
		}
		again, err := NewPostgresLocker(dsn, "staging").Acquire(ctx, "rollback", 0)
		if err != nil {
			t.Fatalf("after Release: %v", err)
		}
		if err := again.Release(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("WaitSucceedsWhenTheHolderReleases", func(t *testing.T) {
		held, err := NewPostgresLocker(dsn, "wait").Acquire(ctx, "deploy", 0)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(400 * time.Millisecond)
			_ = held.Release()
		}()
		second, err := NewPostgresLocker(dsn, "wait").Acquire(ctx, "rollback", 10*time.Second)
		if err != nil {
			t.Fatalf("Acquire with wait: %v", err)
		}
		if err := second.Release(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("KillingTheHoldersConnectionFreesIt", func(t *testing.T) {
		locker := NewPostgresLocker(dsn, "killed").(*PostgresLocker)
		locker.heartbeat = 50 * time.Millisecond
		held, err := locker.Acquire(ctx, "deploy", 0)
		if err != nil {
			t.Fatal(err)
		}
		pids := advisoryHolderPIDs(t, dsn, "killed")
		if len(pids) != 1 {
			t.Fatalf("holders = %v; want one", pids)
		}
		// What happens when the holding process dies: its session ends.
		pg.Exec("postgres", fmt.Sprintf("SELECT pg_terminate_backend(%d, 5000)", pids[0]))
		second, err := NewPostgresLocker(dsn, "killed").Acquire(ctx, "rollback", 5*time.Second)
		if err != nil {
			t.Fatalf("after the holder's connection died: %v", err)
		}
		defer second.Release()
		select {
		case <-held.Lost():
		case <-time.After(5 * time.Second):
			t.Fatal("the first holder was not told it lost the lock")
		}
		if err := held.Release(); !errors.Is(err, ErrLockLost) {
			t.Fatalf("Release after the connection died: %v; want ErrLockLost", err)
		}
	})

	t.Run("CheckSaysWhoBrokeTheLock", func(t *testing.T) {
		held, err := NewPostgresLocker(dsn, "broken").Acquire(ctx, "deploy", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Release()
		if err := held.Check(); err != nil {
			t.Fatalf("a held lock checks as %v", err)
		}
		if _, err := NewPostgresLocker(dsn, "broken").Break(ctx); err != nil {
			t.Fatal(err)
		}
		err = held.Check()
		want := fmt.Sprintf("broken by %s on %s (pid %d)", who.User(), who.Host(), os.Getpid())
		if !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), want) {
			t.Fatalf("check after the break: %v, want ErrLockLost saying %q", err, want)
		}
	})

	t.Run("HeartbeatAdvancesInTheLockRow", func(t *testing.T) {
		locker := NewPostgresLocker(dsn, "beat").(*PostgresLocker)
		locker.heartbeat = 50 * time.Millisecond
		held, err := locker.Acquire(ctx, "deploy", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Release()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		first, err := readLockRow(ctx, conn, "beat")
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			current, err := readLockRow(ctx, conn, "beat")
			if err != nil {
				t.Fatal(err)
			}
			if current.Heartbeat.After(first.Heartbeat) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("heartbeat still %s after 3s", current.Heartbeat)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("OldHeartbeatIsStaleButStillRefused", func(t *testing.T) {
		// A hung holder: its session keeps the lock, its heartbeat stopped.
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext('obcd:hung'))"); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-5 * time.Minute)
		if err := writeLockRow(ctx, conn, "hung", Info{Holder: "dave", Host: "ci-9", PID: 77, Started: old, Heartbeat: old, Operation: "deploy"}); err != nil {
			t.Fatal(err)
		}
		_, err = NewPostgresLocker(dsn, "hung").Acquire(ctx, "deploy", 0)
		locked := lockedError(t, err)
		if !locked.Stale || locked.Info.Holder != "dave" || !strings.Contains(err.Error(), "obcd unlock hung") {
			t.Fatalf("err = %v; want a stale lock by dave and how to break it", err)
		}
		info, err := NewPostgresLocker(dsn, "hung").Break(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Holder != "dave" {
			t.Fatalf("UnlockPostgres returned %+v; want dave's lock", info)
		}
		held, err := NewPostgresLocker(dsn, "hung").Acquire(ctx, "deploy", 0)
		if err != nil {
			t.Fatalf("after UnlockPostgres: %v", err)
		}
		if err := held.Release(); err != nil {
			t.Fatal(err)
		}
		if _, err := NewPostgresLocker(dsn, "hung").Break(ctx); !errors.Is(err, ErrNotLocked) {
			t.Fatalf("UnlockPostgres with no holder: %v; want ErrNotLocked", err)
		}
	})

	t.Run("ConcurrentAcquireExactlyOneWins", func(t *testing.T) {
		const racers = 10
		var wg sync.WaitGroup
		start := make(chan struct{})
		var mu sync.Mutex
		var winners []*Held
		for range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				held, err := NewPostgresLocker(dsn, "race").Acquire(ctx, "deploy", 0)
				if err != nil && !errors.Is(err, ErrLocked) {
					t.Errorf("a loser got %v; want ErrLocked", err)
				}
				if err == nil {
					mu.Lock()
					winners = append(winners, held)
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()
		for _, held := range winners {
			if err := held.Release(); err != nil {
				t.Error(err)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("%d of %d racers acquired the lock; want exactly 1", len(winners), racers)
		}
	})
}
