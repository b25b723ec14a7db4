package lock

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/obcd/obcd/internal/who"
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

// Info says who holds an environment's lock.
type Info struct {
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
	// Break frees a lock someone else holds (obcd unlock) and returns what
	// it held; no lock is ErrNotLocked. Use it only when the holder is gone.
	Break(ctx context.Context) (Info, error)
}

// Errors of locking.
var (
	ErrLocked    = errors.New("environment is locked")
	ErrNotLocked = errors.New("environment is not locked")
	ErrLockLost  = errors.New("lock was lost while held")
)

// Breach says who broke a lock with Break, from where and when; the
// holder that lost it reports it.
type Breach struct {
	By    string    `json:"by"`
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	At    time.Time `json:"at"`
	Token string    `json:"token"` // the token of the lock it broke
}

func newBreach(broken Info) Breach {
	return Breach{By: who.User(), Host: who.Host(), PID: os.Getpid(), At: time.Now().UTC(), Token: broken.Token}
}

func (b Breach) String() string {
	return fmt.Sprintf("broken by %s on %s (pid %d) at %s", b.By, b.Host, b.PID, b.At.Format(time.RFC3339))
}

// LockedError says who holds the lock, and how to break it when stale.
type LockedError struct {
	Environment string
	Info        Info
	Stale       bool
	StaleReason string // why it looks stale, e.g. "pid 42 is not running on web1"
}

func (e *LockedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s is running %q since %s (%s ago) from %s, pid %d; last heartbeat %s ago",
		ErrLocked, cmp.Or(e.Info.Holder, "unknown"), e.Info.Operation, e.Info.Started.UTC().Format(time.RFC3339),
		roundAgo(e.Info.Started), cmp.Or(e.Info.Host, "unknown"), e.Info.PID, roundAgo(e.Info.Heartbeat))
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

func roundAgo(t time.Time) time.Duration {
	return time.Since(t).Round(time.Second)
}

// staleness says whether a lock's holder looks gone: an old heartbeat,
// or a pid that is dead on this same host.
func staleness(info Info, now time.Time, host string) (bool, string) {
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

func newLockInfo(op string, now time.Time) Info {
	token := make([]byte, 8)
	_, _ = rand.Read(token)
	return Info{
		Holder: who.User(), Host: who.Host(), PID: os.Getpid(),
		Started: now.UTC(), Heartbeat: now.UTC(), Operation: op, Token: hex.EncodeToString(token),
	}
}

// Held is a lock this process holds; it heartbeats until released.
type Held struct {
	info    Info
	beat    func(Info) error // records a heartbeat; an ErrLockLost error stops it
	check   func() error     // says, now, whether the lock is still held
	unlock  func() error
	every   time.Duration
	stop    chan struct{}
	stopped chan struct{}
	lost    chan struct{}

	mu       sync.Mutex
	lostErr  error
	lostOnce sync.Once
	once     sync.Once
	err      error
}

func newHeld(info Info, every time.Duration, beat func(Info) error, check func() error, unlock func() error) *Held {
	h := &Held{info: info, beat: beat, check: check, unlock: unlock, every: every,
		stop: make(chan struct{}), stopped: make(chan struct{}), lost: make(chan struct{})}
	go h.heartbeat()
	return h
}

// Info returns the lock's details as last recorded.
func (h *Held) Info() Info {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.info
}

// Lost is closed when the lock was broken or taken by someone else while
// held; a deploy should stop at its next safe point. Err says how.
func (h *Held) Lost() <-chan struct{} { return h.lost }

// Err is how the lock was lost (an ErrLockLost, naming who broke it when
// that is known), or nil while it is held.
func (h *Held) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lostErr
}

// Check asks now, without waiting for the next heartbeat, whether the
// lock is still held: a deploy calls it before each change. A lost lock is
// an ErrLockLost; a check that could not tell is not.
func (h *Held) Check() error {
	if err := h.Err(); err != nil {
		return err
	}
	err := h.check()
	if errors.Is(err, ErrLockLost) {
		h.markLost(err)
		return h.Err()
	}
	return nil
}

func (h *Held) markLost(err error) {
	h.lostOnce.Do(func() {
		h.mu.Lock()
		h.lostErr = err
		h.mu.Unlock()
		close(h.lost)
	})
}

func (h *Held) heartbeat() {
	defer close(h.stopped)
	ticker := time.NewTicker(h.every)
	defer ticker.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.lost:
			return
		case now := <-ticker.C:
			h.mu.Lock()
			h.info.Heartbeat = now.UTC()
			info := h.info
			h.mu.Unlock()
			if err := h.beat(info); errors.Is(err, ErrLockLost) {
				h.markLost(err)
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
		if lostErr := h.Err(); lostErr != nil {
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
