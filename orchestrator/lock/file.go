package lock

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/obcd/obcd/internal/atomicfile"
	"github.com/obcd/obcd/internal/who"
)

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
	beat := func(info Info) error { return l.beat(info) }
	check := func() error { return l.owned(info.Token) }
	unlock := func() error { return l.release(info.Token) }
	return newHeld(info, l.heartbeat, beat, check, unlock), false, nil
}

func (l *FileLocker) lockedError() error {
	info, err := readLockFile(lockPath(l.dir))
	if err != nil {
		return fmt.Errorf("read lock: %w", err)
	}
	stale, reason := staleness(info, l.now(), who.Host())
	return &LockedError{Environment: filepath.Base(l.dir), Info: info, Stale: stale, StaleReason: reason}
}

// readLockFile reads a lock file. One that does not parse (its writer
// died between create and write) is described by its mtime, so that it
// turns stale like any other.
func readLockFile(path string) (Info, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Info{}, err
	}
	var info Info
	if json.Unmarshal(data, &info) == nil && !info.Heartbeat.IsZero() {
		return info, nil
	}
	stat, err := os.Stat(path)
	if err != nil {
		return Info{}, err
	}
	return Info{Operation: "unknown (unreadable lock file)", Started: stat.ModTime(), Heartbeat: stat.ModTime()}, nil
}

// owned checks that the lock file is still the one with token.
func (l *FileLocker) owned(token string) error {
	current, err := readLockFile(lockPath(l.dir))
	if errors.Is(err, fs.ErrNotExist) {
		if breach, ok := l.breach(token); ok {
			return fmt.Errorf("%w: %s was %s (obcd unlock)", ErrLockLost, lockPath(l.dir), breach)
		}
		return fmt.Errorf("%w: %s was removed (obcd unlock?)", ErrLockLost, lockPath(l.dir))
	}
	if err != nil {
		return err
	}
	if current.Token != token {
		return fmt.Errorf("%w: %s is now held by %s (pid %d on %s)", ErrLockLost, lockPath(l.dir),
			cmp.Or(current.Holder, "unknown"), current.PID, cmp.Or(current.Host, "unknown"))
	}
	return nil
}

func (l *FileLocker) beat(info Info) error {
	if err := l.owned(info.Token); err != nil {
		return err
	}
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(lockPath(l.dir), data, 0o600)
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

// Break implements Locker: it removes the lock file and returns what it
// held.
func (l *FileLocker) Break(context.Context) (Info, error) {
	dir := l.dir
	path := lockPath(dir)
	info, err := readLockFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("%w: %s has no lock (%s does not exist); nothing to unlock",
			ErrNotLocked, filepath.Base(dir), path)
	}
	if err != nil {
		return Info{}, fmt.Errorf("unlock: %w", err)
	}
	// Who broke it is written first, so the holder can say so.
	breach, err := json.Marshal(newBreach(info))
	if err == nil {
		err = atomicfile.WriteFile(breachPath(dir), breach, 0o600)
	}
	if err != nil {
		return Info{}, fmt.Errorf("unlock: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return Info{}, fmt.Errorf("unlock: %w", err)
	}
	return info, nil
}

func breachPath(dir string) string { return filepath.Join(dir, "lock.broken") }

// breach is the record of who broke the lock with token, if Break left one.
func (l *FileLocker) breach(token string) (Breach, bool) {
	data, err := os.ReadFile(breachPath(l.dir))
	var breach Breach
	if err != nil || json.Unmarshal(data, &breach) != nil || breach.Token != token {
		return Breach{}, false
	}
	return breach, true
}
