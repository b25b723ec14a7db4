package testsvc

import (
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

// SSHDBin is Debian's OpenSSH server (package openssh-server).
const SSHDBin = "/usr/sbin/sshd"

// SSHD is a running OpenSSH server on a loopback port that accepts one
// client key, and a client home dir set up to reach it strictly: its
// known_hosts holds the server's host key and StrictHostKeyChecking is yes.
//
// OpenSSH's client finds ~/.ssh through the passwd entry, not $HOME
// (`HOME=/x ssh -G host` still reads /root/.ssh/config), so a changed
// HOME alone does not make a plain `ssh` use Home. BinDir holds an `ssh`
// wrapper that runs the real client with -F Home/.ssh/config; Use puts it
// first on PATH, so code that runs "ssh" from PATH (checks.DialDocker)
// talks to this server without touching the real ~/.ssh.
type SSHD struct {
	Host       string // 127.0.0.1
	Port       int
	User       string // the login user: the test's own (root when tests run as root)
	Home       string // client home: .ssh/config, .ssh/known_hosts, .ssh/id_ed25519
	ConfigFile string // Home/.ssh/config
	KeyFile    string // the client's private key, in authorized_keys
	BinDir     string // holds the `ssh` wrapper (ssh -F ConfigFile "$@")
	Dir        string // server dir: sshd_config, host key, authorized_keys, log

	proc *process
}

// StartSSHD starts sshd on a free loopback port that accepts only the new
// client key (no passwords, no PAM), and waits until it accepts TCP
// connections. It runs as the test's user (sshd must be root to log in
// as root), writes the client home dir, and stops when the test ends. The
// test is skipped only when sshd is not installed.
//
// With UsePAM no, sshd refuses an account whose password is locked ("!"
// in /etc/shadow) even for a key; the failure then carries sshd's log.
func StartSSHD(t testing.TB) *SSHD {
	t.Helper()
	RequireBinaries(t, SSHDBin)
	srv := newSSHD(t)
	hostKey, knownHosts := srv.keys(t)
	serverConfig := srv.writeServerConfig(t, hostKey)
	srv.writeClient(t, knownHosts)
	// sshd re-execs itself, so it needs its absolute path; -D stays in
	// the foreground, -e logs to stderr (the log file).
	cmd := exec.Command(SSHDBin, "-D", "-e", "-f", serverConfig)
	cmd.Dir = srv.Dir
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	srv.proc = startProcess(t, "sshd on "+srv.Addr(), cmd, filepath.Join(srv.Dir, "sshd.log"), syscall.SIGTERM)
	srv.proc.waitReady(t, 15*time.Second, dialProbe(srv.Addr()))
	return srv
}

// newSSHD lays out a server's directories, for the current user on a free
// loopback port.
func newSSHD(t testing.TB) *SSHD {
	t.Helper()
	account, err := user.Current()
	if err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	// sshd's privilege separation needs this dir, as root owns it.
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("testsvc: %v", err)
		}
	}
	root, err := os.MkdirTemp("", "testsvc-sshd-")
	if err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	srv := &SSHD{
		Host: "127.0.0.1", Port: FreePort(t), User: account.Username,
		Dir: filepath.Join(root, "server"), Home: filepath.Join(root, "home"), BinDir: filepath.Join(root, "bin"),
	}
	sshDir := filepath.Join(srv.Home, ".ssh")
	for _, dir := range []string{srv.Dir, sshDir, srv.BinDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatalf("testsvc: %v", err)
		}
	}
	srv.ConfigFile = filepath.Join(sshDir, "config")
	srv.KeyFile = filepath.Join(sshDir, "id_ed25519")
	return srv
}

// keys makes the host key and the client key, authorizes the client and
// pins the host; it returns the host key and the known_hosts file.
func (srv *SSHD) keys(t testing.TB) (hostKey, knownHosts string) {
	t.Helper()
	hostKey = filepath.Join(srv.Dir, "ssh_host_ed25519_key")
	sshKeygen(t, hostKey)
	sshKeygen(t, srv.KeyFile)
	hostPub := readPublicKey(t, hostKey+".pub")
	clientPub := readPublicKey(t, srv.KeyFile+".pub")
	writePrivate(t, filepath.Join(srv.Dir, "authorized_keys"), clientPub+"\n")
	knownHosts = filepath.Join(filepath.Dir(srv.ConfigFile), "known_hosts")
	writePrivate(t, knownHosts, fmt.Sprintf("[%s]:%d %s\n", srv.Host, srv.Port, hostPub))
	return hostKey, knownHosts
}

// writeServerConfig writes sshd_config: keys only, on loopback.
func (srv *SSHD) writeServerConfig(t testing.TB, hostKey string) string {
	t.Helper()
	serverConfig := filepath.Join(srv.Dir, "sshd_config")
	writePrivate(t, serverConfig, strings.Join([]string{
		"Port " + strconv.Itoa(srv.Port),
		"ListenAddress " + srv.Host,
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + filepath.Join(srv.Dir, "authorized_keys"),
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"StrictModes no",
		"UsePAM no",
		"PrintMotd no",
		"PidFile " + filepath.Join(srv.Dir, "sshd.pid"),
		"LogLevel INFO",
		"",
	}, "\n"))
	return serverConfig
}

// writeClient writes the client's config and an ssh on BinDir that uses
// only it.
func (srv *SSHD) writeClient(t testing.TB, knownHosts string) {
	t.Helper()
	sshPath, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatalf("testsvc: sshd is installed but the ssh client is not: %v", err)
	}
	if sshPath, err = filepath.Abs(sshPath); err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	writePrivate(t, srv.ConfigFile, strings.Join([]string{
		"Host " + srv.Host,
		"  Port " + strconv.Itoa(srv.Port),
		"  User " + srv.User,
		"  IdentityFile " + srv.KeyFile,
		"  IdentitiesOnly yes",
		"  UserKnownHostsFile " + knownHosts,
		"  GlobalKnownHostsFile /dev/null",
		"  StrictHostKeyChecking yes",
		"  ConnectTimeout 10",
		"",
	}, "\n"))
	wrapper := fmt.Sprintf("#!/bin/sh\n# The test's ssh client: the real one with the test's config only.\nexec %s -F %s \"$@\"\n",
		shellQuote(sshPath), shellQuote(srv.ConfigFile))
	if err := os.WriteFile(filepath.Join(srv.BinDir, "ssh"), []byte(wrapper), 0o755); err != nil {
		t.Fatalf("testsvc: %v", err)
	}
}

// Addr is host:port.
func (s *SSHD) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// URL is the server as a Docker host: ssh://user@127.0.0.1:port.
func (s *SSHD) URL() string { return fmt.Sprintf("ssh://%s@%s", s.User, s.Addr()) }

// Use points the test's process at the client home: HOME is Home and
// BinDir's ssh wrapper comes first on PATH. Like t.Setenv, it cannot be
// used in parallel tests, and both are restored when the test ends.
func (s *SSHD) Use(t testing.TB) {
	t.Helper()
	t.Setenv("HOME", s.Home)
	t.Setenv("PATH", s.BinDir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// Log is sshd's log so far.
func (s *SSHD) Log() string { return s.proc.logTail(16000) }

// Stop stops sshd now; the test's cleanup then does nothing more.
func (s *SSHD) Stop(t testing.TB) {
	t.Helper()
	if err := s.proc.stop(30 * time.Second); err != nil {
		t.Errorf("testsvc: %v", err)
	}
}

// sshKeygen writes a new passphrase-less ed25519 key pair at path and
// path.pub.
func sshKeygen(t testing.TB, path string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-C", "testsvc", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("testsvc: ssh-keygen -f %s: %v\n%s", path, err, out)
	}
}

func readPublicKey(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	return strings.TrimSpace(string(data))
}

// writePrivate writes a file only its owner can read or write, as ssh
// demands of its config.
func writePrivate(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("testsvc: %v", err)
	}
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
