package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obcd/obcd/internal/who"
)

func newTestFileLocker(t *testing.T, heartbeat time.Duration) (*FileLocker, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), ".obcd", "staging")
	locker := NewFileLocker(dir).(*FileLocker)
	if heartbeat > 0 {
		locker.heartbeat = heartbeat
	}
	return locker, dir
}

func mustAcquire(t *testing.T, locker Locker, op string) *Held {
	t.Helper()
	held, err := locker.Acquire(context.Background(), op, 0)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", op, err)
	}
	t.Cleanup(func() { _ = held.Release() })
	return held
}

func writeLockInfo(t *testing.T, dir string, info Info) {
	t.Helper()
	data, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lock"), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func lockedError(t *testing.T, err error) *LockedError {
	t.Helper()
	var locked *LockedError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &locked) {
		t.Fatalf("err = %v; want a *LockedError wrapping ErrLocked", err)
	}
	return locked
}

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "0")
	if err := cmd.Run(); err != nil {
		t.Fatalf("sleep 0: %v", err)
	}
	return cmd.Process.Pid
}

func TestFileLock_SecondAcquireFailsFastWithTheHoldersDetails(t *testing.T) {
	locker, _ := newTestFileLocker(t, 0)
	held := mustAcquire(t, locker, "deploy")
	began := time.Now()
	_, err := locker.Acquire(context.Background(), "rollback", 0)
	if elapsed := time.Since(began); elapsed > time.Second {
		t.Errorf("second Acquire took %s; want an immediate refusal", elapsed)
	}
	locked := lockedError(t, err)
	info := held.Info()
	if locked.Info.Holder != who.User() || locked.Info.Host != who.Host() ||
		locked.Info.PID != os.Getpid() || locked.Info.Operation != "deploy" || locked.Info.Token != info.Token {
		t.Errorf("LockedError.Info = %+v; want this process's deploy lock %+v", locked.Info, info)
	}
	if locked.Stale {
		t.Errorf("a live lock is marked stale: %s", locked.StaleReason)
	}
	for _, want := range []string{who.User(), who.Host(), "pid " + strconv.Itoa(os.Getpid()),
		`"deploy"`, info.Started.Format(time.RFC3339), "last heartbeat", "wait for it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "obcd unlock") {
		t.Errorf("message for a live lock suggests breaking it: %q", err)
	}
}

func TestFileLock_ReleaseFreesIt(t *testing.T) {
	locker, dir := newTestFileLocker(t, 0)
	held := mustAcquire(t, locker, "deploy")
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "lock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file after Release: %v; want it gone", err)
	}
	if err := held.Release(); err != nil {
		t.Fatalf("second Release: %v; want nil", err)
	}
	mustAcquire(t, locker, "rollback")
}

func TestFileLock_WaitSucceedsWhenTheHolderReleasesInTime(t *testing.T) {
	locker, _ := newTestFileLocker(t, 0)
	held := mustAcquire(t, locker, "deploy")
	go func() {
		time.Sleep(400 * time.Millisecond)
		_ = held.Release()
	}()
	began := time.Now()
	second, err := locker.Acquire(context.Background(), "rollback", 5*time.Second)
	if err != nil {
		t.Fatalf("Acquire with wait: %v", err)
	}
	defer second.Release()
	if elapsed := time.Since(began); elapsed < 300*time.Millisecond {
		t.Errorf("Acquire returned after %s, before the holder released", elapsed)
	}
	if second.Info().Operation != "rollback" {
		t.Errorf("held %+v; want the rollback lock", second.Info())
	}
}

func TestFileLock_WaitGivesUpWithErrLocked(t *testing.T) {
	locker, _ := newTestFileLocker(t, 0)
	mustAcquire(t, locker, "deploy")
	began := time.Now()
	_, err := locker.Acquire(context.Background(), "rollback", 600*time.Millisecond)
	elapsed := time.Since(began)
	lockedError(t, err)
	if elapsed < 600*time.Millisecond || elapsed > 3*time.Second {
		t.Errorf("gave up after %s; want about 600ms", elapsed)
	}
}

func TestFileLock_WaitStopsWhenTheContextEnds(t *testing.T) {
	locker, _ := newTestFileLocker(t, 0)
	mustAcquire(t, locker, "deploy")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := locker.Acquire(ctx, "rollback", time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v; want ErrLocked joined with the context's error", err)
	}
}

func TestFileLock_OldHeartbeatIsStaleButNeverStolen(t *testing.T) {
	locker, dir := newTestFileLocker(t, 0)
	old := time.Now().Add(-2 * time.Minute).UTC()
	stuck := Info{Holder: "bob", Host: "ci-runner-7", PID: 4242, Started: old, Heartbeat: old, Operation: "deploy", Token: "bobs"}
	writeLockInfo(t, dir, stuck)
	_, err := locker.Acquire(context.Background(), "deploy", 0)
	locked := lockedError(t, err)
	if !locked.Stale || !strings.Contains(locked.StaleReason, "no heartbeat for") {
		t.Fatalf("Stale = %v (%q); want stale for an old heartbeat", locked.Stale, locked.StaleReason)
	}
	for _, want := range []string{"bob", "ci-runner-7", "pid 4242", "obcd unlock staging", "stale"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}
	current, err := readLockFile(filepath.Join(dir, "lock"))
	if err != nil || current.Token != "bobs" {
		t.Fatalf("lock file now %+v (%v); a stale lock must not be taken over", current, err)
	}
}

func TestFileLock_DeadPIDOnThisHostIsStale(t *testing.T) {
	locker, dir := newTestFileLocker(t, 0)
	pid := deadPID(t)
	now := time.Now().UTC()
	writeLockInfo(t, dir, Info{Holder: "bob", Host: who.Host(), PID: pid, Started: now, Heartbeat: now, Operation: "deploy", Token: "bobs"})
	locked := lockedError(t, func() error { _, err := locker.Acquire(context.Background(), "deploy", 0); return err }())
	if !locked.Stale || !strings.Contains(locked.StaleReason, "pid "+strconv.Itoa(pid)+" is not running") {
		t.Fatalf("Stale = %v (%q); want stale for dead pid %d", locked.Stale, locked.StaleReason, pid)
	}

	// The same pid on another host says nothing about that host.
	writeLockInfo(t, dir, Info{Holder: "bob", Host: "elsewhere", PID: pid, Started: now, Heartbeat: now, Operation: "deploy", Token: "bobs"})
	locked = lockedError(t, func() error { _, err := locker.Acquire(context.Background(), "deploy", 0); return err }())
	if locked.Stale {
		t.Fatalf("a fresh lock from another host is marked stale: %s", locked.StaleReason)
	}
}

func TestFileLock_UnreadableLockFileTurnsStaleWithAge(t *testing.T) {
	locker, dir := newTestFileLocker(t, 0)
	path := filepath.Join(dir, "lock")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil { // its writer died before writing
		t.Fatal(err)
	}
	locked := lockedError(t, func() error { _, err := locker.Acquire(context.Background(), "deploy", 0); return err }())
	if locked.Stale {
		t.Fatalf("a just-created empty lock is stale: %s", locked.StaleReason)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	locked = lockedError(t, func() error { _, err := locker.Acquire(context.Background(), "deploy", 0); return err }())
	if !locked.Stale {
		t.Fatal("an hour-old empty lock file is not stale")
	}
}

func TestUnlock_BreaksTheLockAndSaysWhatItRemoved(t *testing.T) {
	locker, dir := newTestFileLocker(t, 0)
	held := mustAcquire(t, locker, "deploy")
	info, err := NewFileLocker(dir).Break(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Token != held.Info().Token || info.Operation != "deploy" {
		t.Fatalf("Unlock returned %+v; want the deploy lock", info)
	}
	second := mustAcquire(t, locker, "rollback")
	if err := held.Release(); !errors.Is(err, ErrLockLost) {
		t.Fatalf("Release of a broken lock: %v; want ErrLockLost", err)
	}
	// The first holder's release must not remove the second's lock.
	current, err := readLockFile(filepath.Join(dir, "lock"))
	if err != nil || current.Token != second.Info().Token {
		t.Fatalf("lock now %+v (%v); want the second holder's", current, err)
	}
}

func TestUnlock_NoLockIsAClearError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "staging")
	_, err := NewFileLocker(dir).Break(context.Background())
	if !errors.Is(err, ErrNotLocked) || !strings.Contains(err.Error(), "nothing to unlock") ||
		!strings.Contains(err.Error(), "staging") {
		t.Fatalf("err = %v; want ErrNotLocked saying staging has nothing to unlock", err)
	}
}

func TestFileLock_HeartbeatAdvances(t *testing.T) {
	if locker := NewFileLocker(t.TempDir()).(*FileLocker); locker.heartbeat != 2*time.Second {
		t.Fatalf("default heartbeat every %s; want 2s", locker.heartbeat)
	}
	locker, dir := newTestFileLocker(t, 50*time.Millisecond)
	held := mustAcquire(t, locker, "deploy")
	first, err := readLockFile(filepath.Join(dir, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		current, err := readLockFile(filepath.Join(dir, "lock"))
		if err != nil {
			t.Fatal(err)
		}
		if current.Heartbeat.After(first.Heartbeat) {
			if current.Started != first.Started || current.Token != first.Token {
				t.Fatalf("heartbeat changed more than the heartbeat: %+v -> %+v", first, current)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heartbeat still %s after 3s", current.Heartbeat)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
	temps, _ := filepath.Glob(filepath.Join(dir, ".lock*"))
	if len(temps) != 0 {
		t.Fatalf("heartbeat temp files left: %v", temps)
	}
}

func TestFileLock_BrokenLockIsReportedAsLostAndNotOverwritten(t *testing.T) {
	locker, dir := newTestFileLocker(t, 30*time.Millisecond)
	held := mustAcquire(t, locker, "deploy")
	if _, err := NewFileLocker(dir).Break(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := mustAcquire(t, NewFileLocker(dir), "rollback")
	select {
	case <-held.Lost():
	case <-time.After(3 * time.Second):
		t.Fatal("Lost() not closed after the lock was broken")
	}
	time.Sleep(100 * time.Millisecond) // several of the first holder's heartbeat periods
	current, err := readLockFile(filepath.Join(dir, "lock"))
	if err != nil || current.Token != second.Info().Token {
		t.Fatalf("lock now %+v (%v); the first holder's heartbeat overwrote the second's lock", current, err)
	}
	if err := held.Release(); !errors.Is(err, ErrLockLost) {
		t.Fatalf("Release: %v; want ErrLockLost", err)
	}
}

func TestFileLock_ConcurrentAcquireExactlyOneWins(t *testing.T) {
	_, dir := newTestFileLocker(t, 0)
	const racers = 10
	var wg sync.WaitGroup
	start := make(chan struct{})
	results := make(chan error, racers)
	helds := make(chan *Held, racers)
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			held, err := NewFileLocker(dir).Acquire(context.Background(), "deploy", 0)
			if err == nil {
				helds <- held
			}
			results <- err
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	close(helds)
	winners := 0
	for err := range results {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, ErrLocked):
			t.Errorf("a loser got %v; want ErrLocked", err)
		}
	}
	for held := range helds {
		_ = held.Release()
	}
	if winners != 1 {
		t.Fatalf("%d of %d racers acquired the lock; want exactly 1", winners, racers)
	}
}

func TestLockedError_IsFoundWithErrorsAs(t *testing.T) {
	var err error = &LockedError{Environment: "prod", Info: Info{Holder: "carol"}, Stale: true, StaleReason: "no heartbeat for 1m0s"}
	wrapped := errors.Join(errors.New("deploy prod"), err)
	var locked *LockedError
	if !errors.As(wrapped, &locked) || !errors.Is(wrapped, ErrLocked) || locked.Info.Holder != "carol" {
		t.Fatalf("errors.As/Is failed on %v", wrapped)
	}
	if !strings.Contains(err.Error(), "obcd unlock prod") {
		t.Fatalf("stale message %q does not say how to break it", err)
	}
}

// TestFileLock_CheckSaysAtOnceWhoBrokeTheLock: after obcd unlock, the
// holder learns at its next check, before any heartbeat, that the lock is
// lost, and who broke it, from where and when.
func TestFileLock_CheckSaysAtOnceWhoBrokeTheLock(t *testing.T) {
	dir := t.TempDir()
	held, err := NewFileLocker(dir).Acquire(context.Background(), "deploy", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	if err := held.Check(); err != nil {
		t.Fatalf("a held lock checks as %v", err)
	}
	if _, err := NewFileLocker(dir).Break(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = held.Check()
	want := fmt.Sprintf("broken by %s on %s (pid %d)", who.User(), who.Host(), os.Getpid())
	if !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), want) {
		t.Fatalf("check after the break: %v, want ErrLockLost saying %q", err, want)
	}
	select {
	case <-held.Lost():
	default:
		t.Error("Lost() is not closed after the check found the lock broken")
	}
	if !errors.Is(held.Err(), ErrLockLost) {
		t.Errorf("Err() = %v", held.Err())
	}
}
