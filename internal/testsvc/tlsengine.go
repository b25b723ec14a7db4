package testsvc

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/obcd/obcd/internal/testcert"
)

// StunnelBin is Debian's stunnel4.
const StunnelBin = "/usr/bin/stunnel4"

// TLSEngine is the machine's Docker engine behind a TLS terminator that
// asks for client certificates, as a dockerd started with --tlsverify
// does: stunnel on a loopback port, in front of the engine's socket.
type TLSEngine struct {
	Host string // tcp://127.0.0.1:port
	// CertDir is a DOCKER_CERT_PATH-style directory (ca.pem, cert.pem,
	// key.pem) whose client certificate the terminator accepts.
	CertDir string
	// WrongCADir holds a client certificate and a ca.pem of another CA:
	// the engine's certificate does not verify against it.
	WrongCADir string
	// UntrustedClientDir has the right ca.pem, but a client certificate
	// of another CA: the terminator refuses it.
	UntrustedClientDir string

	proc *process
}

// StartTLSEngine starts stunnel on a free loopback port with a server
// certificate for 127.0.0.1, requiring client certificates signed by the
// same CA, and forwarding to socket (the engine's unix socket). stunnel
// runs as the test's user, who must be able to open socket.
func StartTLSEngine(t testing.TB, socket string) *TLSEngine {
	t.Helper()
	RequireBinaries(t, StunnelBin)
	dir := t.TempDir()
	ca, err := testcert.NewCA("obcd test engine CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testcert.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	e := &TLSEngine{CertDir: filepath.Join(dir, "client"), WrongCADir: filepath.Join(dir, "wrong-ca")}
	if err := ca.WriteClientDir(e.CertDir); err != nil {
		t.Fatal(err)
	}
	if err := other.WriteClientDir(e.WrongCADir); err != nil {
		t.Fatal(err)
	}
	e.UntrustedClientDir = filepath.Join(dir, "untrusted")
	if err := other.WriteClientDir(e.UntrustedClientDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.UntrustedClientDir, "ca.pem"), ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	serverCert, serverKey := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	if err := ca.Issue(serverCert, serverKey, "127.0.0.1", "127.0.0.1", "localhost"); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
	e.Host = "tcp://" + addr
	config := "foreground = yes\npid =\ndebug = notice\n\n[docker]\n" +
		"accept = " + addr + "\n" +
		"connect = " + socket + "\n" +
		"cert = " + serverCert + "\nkey = " + serverKey + "\n" +
		"CAfile = " + filepath.Join(e.CertDir, "ca.pem") + "\n" +
		"verifyChain = yes\nrequireCert = yes\n"
	configPath := filepath.Join(dir, "stunnel.conf")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(StunnelBin, configPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	e.proc = startProcess(t, "stunnel on "+addr, cmd, filepath.Join(dir, "stunnel.log"), syscall.SIGTERM)
	e.proc.waitReady(t, 15*time.Second, dialProbe(addr))
	return e
}

// Log is the end of stunnel's log: the handshakes it refused.
func (e *TLSEngine) Log() string { return e.proc.logTail(8000) }
