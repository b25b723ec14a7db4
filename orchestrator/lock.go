package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Lock timing.
const (
	// HeartbeatInterval is how often a held lock says it is still alive.
	HeartbeatInterval = 2 * time.Second
	// StaleAfter is how old a heartbeat may get before the lock is stale.
	StaleAfter = 30 * time.Second
	// lockPollInterval is how often Acquire retries while waiting.
	lockPollInterval = 250 * time.Millisecond
)

// LockInfo says who holds an environment's lock.
type LockInfo struct {
	Holder    string    `json:"holder"` // the user
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	Operation string    `json:"operation"` // deploy, rollback, ...
	// Token is random per acquisition, so a holder can tell its own lock
	// from one taken after it was broken.
	Token string `json:"token"`
}

// Locker lets one deploy or rollback at a time run on an environment.
type Locker interface {
	// Acquire takes the lock for op. With wait > 0 it retries until wait
	// elapses; a lock it cannot take is a *LockedError (ErrLocked).
	Acquire(ctx context.Context, op string, wait time.Duration) (*Held, error)
}

// Errors of locking.
var (
	ErrLocked    = errors.New("environment is locked")
	ErrNotLocked = errors.New("environment is not locked")
	ErrLockLost  = errors.New("lock was lost while held")
)

// LockedError says who holds the lock, and how to break it when stale.
type LockedError struct {
	Environment string
	Info        LockInfo
	Stale       bool
	StaleReason string // why it looks stale, e.g. "pid 42 is not running on web1"
}

func (e *LockedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s is running %q since %s (%s ago) from %s, pid %d; last heartbeat %s ago",
		ErrLocked, orUnknown(e.Info.Holder), e.Info.Operation, e.Info.Started.UTC().Format(time.RFC3339),
		roundAgo(e.Info.Started), orUnknown(e.Info.Host), e.Info.PID, roundAgo(e.Info.Heartbeat))
	if e.Stale {
		fmt.Fprintf(&b, "; the lock looks stale (%s): if no obcd is running there, break it with `obcd unlock %s`",
			e.StaleReason, e.Environment)
	} else {
		b.WriteString("; wait for it to finish, or retry with a wait")
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrLocked) hold.
func (e *LockedError) Unwrap() error { return ErrLocked }

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func roundAgo(t time.Time) time.Duration {
	return time.Since(t).Round(time.Second)
}

// staleness says whether a lock's holder looks gone: an old heartbeat,
// or a pid that is dead on this same host.
func staleness(info LockInfo, now time.Time, host string) (bool, string) {
	if age := now.Sub(info.Heartbeat); age > StaleAfter {
		return true, fmt.Sprintf("no heartbeat for %s", age.Round(time.Second))
	}
	if info.Host == host && info.PID > 0 && !processAlive(info.PID) {
		return true, fmt.Sprintf("pid %d is not running on %s", info.PID, host)
	}
	return false, ""
}

// processAlive reports whether pid runs on this host. A process of
// another user (EPERM) is alive.
func processAlive(pid int) bool {
	process, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = process.Signal(syscall.Signal(0))
	return err == nil || !(errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH))
}

func newLockInfo(op string, now time.Time) LockInfo {
	token := make([]byte, 8)
	_, _ = rand.Read(token)
	return LockInfo{
		Holder: currentUserName(), Host: currentHostName(), PID: os.Getpid(),
		Started: now.UTC(), Heartbeat: now.UTC(), Operation: op, Token: hex.EncodeToString(token),
	}
}

// Held is a lock this process holds; it heartbeats until released.
type Held struct {
	info    LockInfo
	beat    func(LockInfo) error // records a heartbeat; an ErrLockLost error stops it
	unlock  func() error
	every   time.Duration
	stop    chan struct{}
	stopped chan struct{}
	lost    chan struct{}

	mu      sync.Mutex
	lostErr error
	once    sync.Once
	err     error
}

func newHeld(info LockInfo, every time.Duration, beat func(LockInfo) error, unlock func() error) *Held {
	h := &Held{info: info, beat: beat, unlock: unlock, every: every,
		stop: make(chan struct{}), stopped: make(chan struct{}), lost: make(chan struct{})}
	go h.heartbeat()
	return h
}

// Info returns the lock's details as last recorded.
func (h *Held) Info() LockInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.info
}

// Lost is closed when the lock was broken or taken by someone else while
// held; a deploy should stop at its next safe point.
func (h *Held) Lost() <-chan struct{} { return h.lost }

func (h *Held) heartbeat() {
	defer close(h.stopped)
	ticker := time.NewTicker(h.every)
	defer ticker.Stop()
	for {
		select {
		case <-h.stop:
			return
		case now := <-ticker.C:
			h.mu.Lock()
			h.info.Heartbeat = now.UTC()
			info := h.info
			h.mu.Unlock()
			if err := h.beat(info); errors.Is(err, ErrLockLost) {
				h.mu.Lock()
				h.lostErr = err
				h.mu.Unlock()
				close(h.lost)
				return
			}
			// Other errors are transient (a full disk, a network blip): the
			// next beat tries again, and StaleAfter leaves room for it.
		}
	}
}

// Release stops the heartbeat and frees the lock. It is safe to call more
// than once; a lock lost while held is reported as ErrLockLost.
func (h *Held) Release() error {
	h.once.Do(func() {
		close(h.stop)
		<-h.stopped
		h.mu.Lock()
		lostErr := h.lostErr
		h.mu.Unlock()
		if lostErr != nil {
			h.err = lostErr
			return
		}
		h.err = h.unlock()
	})
	return h.err
}

// acquireLoop calls try until it succeeds, fails with something other
// than ErrLocked, or wait elapses.
func acquireLoop(ctx context.Context, wait time.Duration, try func() (*Held, error)) (*Held, error) {
	deadline := time.Now().Add(wait)
	for {
		held, err := try()
		if err == nil || !errors.Is(err, ErrLocked) || wait <= 0 || time.Now().After(deadline) {
			return held, err
		}
		pause := min(lockPollInterval+time.Duration(mrand.Int64N(int64(lockPollInterval/2))), time.Until(deadline)+time.Millisecond)
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, errors.Join(err, ctx.Err())
		case <-timer.C:
		}
	}
}

// FileLocker locks an environment with the file <dir>/lock.
type FileLocker struct {
	dir       string
	heartbeat time.Duration
	now       func() time.Time
}

// NewFileLocker returns the locker of the environment whose state lives
// in dir (<stateDir>/<env>).
func NewFileLocker(dir string) Locker {
	return &FileLocker{dir: dir, heartbeat: HeartbeatInterval, now: time.Now}
}

func lockPath(dir string) string { return filepath.Join(dir, "lock") }

// Acquire implements Locker: the lock file is created with O_EXCL, so
// exactly one of several racing processes wins. A stale lock is refused
// too, marked Stale, never taken over.
func (l *FileLocker) Acquire(ctx context.Context, op string, wait time.Duration) (*Held, error) {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", l.dir, err)
	}
	return acquireLoop(ctx, wait, func() (*Held, error) { return l.try(op) })
}

func (l *FileLocker) try(op string) (*Held, error) {
	for {
		held, gone, err := l.tryOnce(op)
		if !gone {
			return held, err
		}
		// The holder released between our create and our read: try again.
	}
}

// tryOnce makes one attempt; gone reports that the lock it found had
// disappeared before it could say whose it was.
func (l *FileLocker) tryOnce(op string) (held *Held, gone bool, err error) {
	path := lockPath(l.dir)
	info := newLockInfo(op, l.now())
	data, err := json.Marshal(info)
	if err != nil {
		return nil, false, err
	}
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		err := l.lockedError()
		return nil, errors.Is(err, fs.ErrNotExist), err
	}
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	_, err = file.Write(data)
	if err == nil {
		err = file.Sync()
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	beat := func(info LockInfo) error { return l.beat(info) }
	unlock := func() error { return l.release(info.Token) }
	return newHeld(info, l.heartbeat, beat, unlock), false, nil
}

func (l *FileLocker) lockedError() error {
	info, err := readLockFile(lockPath(l.dir))
	if err != nil {
		return fmt.Errorf("read lock: %w", err)
	}
	stale, reason := staleness(info, l.now(), currentHostName())
	return &LockedError{Environment: filepath.Base(l.dir), Info: info, Stale: stale, StaleReason: reason}
}

// readLockFile reads a lock file. One that does not parse (its writer
// died between create and write) is described by its mtime, so that it
// turns stale like any other.
func readLockFile(path string) (LockInfo, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return LockInfo{}, err
	}
	var info LockInfo
	if json.Unmarshal(data, &info) == nil && !info.Heartbeat.IsZero() {
		return info, nil
	}
	stat, err := os.Stat(path)
	if err != nil {
		return LockInfo{}, err
	}
	return LockInfo{Operation: "unknown (unreadable lock file)", Started: stat.ModTime(), Heartbeat: stat.ModTime()}, nil
}

// owned checks that the lock file is still the one with token.
func (l *FileLocker) owned(token string) error {
	current, err := readLockFile(lockPath(l.dir))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s was removed (obcd unlock?)", ErrLockLost, lockPath(l.dir))
	}
	if err != nil {
		return err
	}
	if current.Token != token {
		return fmt.Errorf("%w: %s is now held by %s (pid %d on %s)", ErrLockLost, lockPath(l.dir),
			orUnknown(current.Holder), current.PID, orUnknown(current.Host))
	}
	return nil
}

func (l *FileLocker) beat(info LockInfo) error {
	if err := l.owned(info.Token); err != nil {
		return err
	}
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return WriteFileAtomic(lockPath(l.dir), data, 0o600)
}

func (l *FileLocker) release(token string) error {
	if err := l.owned(token); err != nil {
		return err
	}
	if err := os.Remove(lockPath(l.dir)); err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	return nil
}

// Unlock breaks the file lock in dir (obcd unlock <env>) and returns what
// it removed. No lock is ErrNotLocked.
func Unlock(dir string) (LockInfo, error) {
	path := lockPath(dir)
	info, err := readLockFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return LockInfo{}, fmt.Errorf("%w: %s has no lock (%s does not exist); nothing to unlock",
			ErrNotLocked, filepath.Base(dir), path)
	}
	if err != nil {
		return LockInfo{}, fmt.Errorf("unlock: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return LockInfo{}, fmt.Errorf("unlock: %w", err)
	}
	return info, nil
}
