// Package testsvc starts real servers from Debian packages for tests:
// each on a loopback port, in its own temp dir, stopped by t.Cleanup.
//
// Servers that refuse to run as root (PostgreSQL, PgBouncer) run as the
// unprivileged ServiceUser. A test is skipped only when a server's binary
// is not installed; every other problem fails it, with the server's log.
package testsvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ServiceUser is the OS user that servers run as when tests run as root.
const ServiceUser = "postgres"

// RequireBinaries skips the test when one of the binaries is missing.
func RequireBinaries(t testing.TB, paths ...string) {
	t.Helper()
	for _, path := range paths {
		if _, err := os.Stat(path); err != nil {
			// In CI (.ci/run installs every package) a skip would prove
			// nothing: a missing binary fails the test there.
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed (%v), and CI is set: .ci/deps installs its Debian package", path, err)
			}
			t.Skipf("%s is not installed (%v); install its Debian package to run this test", path, err)
		}
	}
}

// credential is the user a server runs as: ServiceUser when the test runs
// as root, nil (the test's own user) otherwise.
func credential(t testing.TB) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	account, err := user.Lookup(ServiceUser)
	if err != nil {
		t.Fatalf("testsvc: tests run as root, so servers run as %q, which does not exist: %v", ServiceUser, err)
	}
	uid, errUID := strconv.ParseUint(account.Uid, 10, 32)
	gid, errGID := strconv.ParseUint(account.Gid, 10, 32)
	if errUID != nil || errGID != nil {
		t.Fatalf("testsvc: user %q has uid %q, gid %q", ServiceUser, account.Uid, account.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
}

// chownToService gives path to the user servers run as.
func chownToService(t testing.TB, path string) {
	t.Helper()
	cred := credential(t)
	if cred == nil {
		return
	}
	if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatalf("testsvc: %v", err)
	}
}

// Dir returns a new directory the service user owns, removed when the test
// ends. It is not under t.TempDir, whose parent only root can enter, and
// its path is short enough for unix sockets.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "testsvc-")
	if err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	chownToService(t, dir)
	return dir
}

// WriteFile writes a file the service user owns, with the given mode.
func WriteFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	chownToService(t, path)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testsvc: no free port: %v", err)
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port
}

// serviceEnv is a clean environment for a server: nothing inherited, so
// PG* variables of the developer's shell cannot leak in.
func serviceEnv(dir string, extra map[string]string) []string {
	env := []string{
		"PATH=" + PostgresBinDir + ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
		"HOME=" + dir,
		"LC_ALL=C",
		"TZ=UTC",
	}
	for key, value := range extra {
		env = append(env, key+"="+value)
	}
	return env
}

// command prepares name to run as the service user, in its own process
// group so that a stuck server can be killed with its children.
func command(t testing.TB, dir string, env map[string]string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = serviceEnv(dir, env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: credential(t), Setpgid: true}
	return cmd
}

// run runs a short command as the service user and returns its output.
func run(t testing.TB, dir string, env map[string]string, name string, args ...string) (string, error) {
	t.Helper()
	out, err := command(t, dir, env, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// process is a long-running server started by a test.
type process struct {
	name    string // for messages, e.g. "postgres on 127.0.0.1:5433"
	cmd     *exec.Cmd
	logPath string
	stopSig syscall.Signal
	exited  chan struct{}
	waitErr error
}

// startProcess starts cmd with its output in logPath and registers its
// stop with t.Cleanup. On a failed test, the cleanup prints the log.
func startProcess(t testing.TB, name string, cmd *exec.Cmd, logPath string, stopSig syscall.Signal) *process {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("testsvc: starting %s: %v", name, err)
	}
	proc := &process{name: name, cmd: cmd, logPath: logPath, stopSig: stopSig, exited: make(chan struct{})}
	go func() {
		proc.waitErr = cmd.Wait()
		close(proc.exited)
	}()
	t.Cleanup(func() {
		if err := proc.stop(30 * time.Second); err != nil {
			t.Errorf("testsvc: %v", err)
		}
		if t.Failed() {
			t.Logf("testsvc: log of %s:\n%s", name, proc.logTail(8000))
		}
	})
	return proc
}

// stop signals the server and waits for it to exit; past the timeout it
// kills its whole process group. Stopping a stopped server is a no-op.
func (p *process) stop(timeout time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(p.stopSig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping %s: %w", p.name, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(timeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("%s did not stop within %s after %v; killed", p.name, timeout, p.stopSig)
	}
}

// waitReady polls probe until it succeeds, the server exits, or the
// deadline passes. Each probe gets its own short timeout.
func (p *process) waitReady(t testing.TB, timeout time.Duration, probe func(context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	lastErr := errors.New("not probed yet")
	for {
		select {
		case <-p.exited:
			t.Fatalf("testsvc: %s exited before it was ready (%v):\n%s", p.name, p.waitErr, p.logTail(8000))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		lastErr = probe(ctx)
		cancel()
		if lastErr == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testsvc: %s not ready within %s: %v\n%s", p.name, timeout, lastErr, p.logTail(8000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logTail returns the last max bytes of the server's log.
func (p *process) logTail(max int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return string(data)
}

// dialProbe succeeds once something accepts TCP connections on addr.
func dialProbe(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var dialer net.Dialer
		conn, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}
