package testsvc

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sshRun runs the SSHD's ssh wrapper with HOME set to its client home, as
// checks.DialDocker would run ssh, bounded so that a hang fails the test.
func sshRun(t *testing.T, srv *SSHD, args ...string) (string, error) {
	t.Helper()
	return sshRunBinary(t, srv, filepath.Join(srv.BinDir, "ssh"), args...)
}

func sshRunBinary(t *testing.T, srv *SSHD, binary string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"-o", "BatchMode=yes"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+srv.Home)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("ssh %s did not finish within 20s:\n%s\nsshd log:\n%s", strings.Join(args, " "), out, srv.Log())
	}
	return string(out), err
}

func TestStartSSHD_LogsInWithTheClientKeyAndChecksTheHostKey(t *testing.T) {
	srv := StartSSHD(t)
	if srv.URL() != "ssh://"+srv.User+"@127.0.0.1:"+strconv.Itoa(srv.Port) {
		t.Fatalf("URL() = %q", srv.URL())
	}
	known, err := os.ReadFile(filepath.Join(srv.Home, ".ssh", "known_hosts"))
	if err != nil || !strings.HasPrefix(string(known), "[127.0.0.1]:"+strconv.Itoa(srv.Port)+" ssh-ed25519 ") {
		t.Fatalf("known_hosts = %q, %v", known, err)
	}

	// The config supplies port, user, key and known_hosts: "ssh 127.0.0.1"
	// is all a caller needs.
	out, err := sshRun(t, srv, "127.0.0.1", "echo", "over-ssh", "$(id -un)")
	if err != nil || strings.TrimSpace(out) != "over-ssh "+srv.User {
		t.Fatalf("ssh echo = %q, %v\nsshd log:\n%s", out, err, srv.Log())
	}
	// And as checks.DialDocker calls it: -p port -- user@host.
	out, err = sshRun(t, srv, "-p", strconv.Itoa(srv.Port), "--", srv.User+"@127.0.0.1", "true")
	if err != nil {
		t.Fatalf("ssh -p %d %s@127.0.0.1 true: %v\n%s", srv.Port, srv.User, err, out)
	}

	// A key the server does not know is refused. The real ssh without the
	// config: an IdentityFile option would add to the config's key.
	stranger := filepath.Join(t.TempDir(), "stranger")
	sshKeygen(t, stranger)
	out, err = sshRunBinary(t, srv, "ssh", "-F", "/dev/null", "-i", stranger, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile="+filepath.Join(srv.Home, ".ssh", "known_hosts"), "-o", "StrictHostKeyChecking=yes",
		"-p", strconv.Itoa(srv.Port), "--", srv.User+"@127.0.0.1", "true")
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("login with an unknown key: %v\n%s", err, out)
	}
	// A host key that is not in known_hosts is refused, not accepted.
	out, err = sshRun(t, srv, "-o", "UserKnownHostsFile=/dev/null", "127.0.0.1", "true")
	if err == nil || !strings.Contains(out, "Host key verification failed") {
		t.Fatalf("login without the host key in known_hosts: %v\n%s", err, out)
	}
}

func TestStartSSHD_StopsWhenTheTestEnds(t *testing.T) {
	var addr string
	t.Run("server", func(t *testing.T) {
		addr = StartSSHD(t).Addr()
	})
	if t.Failed() {
		return
	}
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("sshd still accepts connections on %s after its test ended", addr)
	}
}
