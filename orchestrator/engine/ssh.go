package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sshDialer connects to the engine on an ssh:// host the way docker/cli's
// connhelper does: `ssh -o BatchMode=yes [-p port] [user@]host docker
// system dial-stdio`, with the command's stdin and stdout as the
// connection. BatchMode makes a missing key fail instead of prompting.
func sshDialer(hostURL *url.URL) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	if hostURL.Hostname() == "" {
		return nil, errors.New("ssh host needs a host name: ssh://[user@]host[:port]")
	}
	if hostURL.Path != "" && hostURL.Path != "/" {
		return nil, fmt.Errorf("ssh host must not have a path (%q)", hostURL.Path)
	}
	if hostURL.RawQuery != "" {
		return nil, fmt.Errorf("ssh host must not have a query (%q)", hostURL.RawQuery)
	}
	args := []string{"-o", "BatchMode=yes"}
	if port := hostURL.Port(); port != "" {
		args = append(args, "-p", port)
	}
	target := hostURL.Hostname()
	if hostURL.User != nil && hostURL.User.Username() != "" {
		target = hostURL.User.Username() + "@" + target
	}
	// "--" ends ssh's options, so a host name cannot pass as one.
	args = append(args, "--", target, "docker", "system", "dial-stdio")
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return startSSHCommandConn(target, "ssh", args...)
	}, nil
}

// sshCommandConn is a net.Conn over a command's stdin and stdout. Closing
// it kills the command, which ends any Read; deadlines are not supported
// (the HTTP client closes the connection when a request's context ends).
type sshCommandConn struct {
	target  string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stdout  *os.File // our end of the command's stdout; Wait leaves it open
	stderr  *sshStderrBuffer
	exited  chan struct{}
	closing sync.Once
}

func startSSHCommandConn(target, name string, args ...string) (*sshCommandConn, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's ^C is not for it
	cmd.WaitDelay = 2 * time.Second                       // a child holding stderr open cannot stall Close
	conn := &sshCommandConn{target: target, cmd: cmd, stderr: &sshStderrBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = conn.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cmd.Stdout = stdoutW
	err = cmd.Start()
	stdoutW.Close() // the command holds its own copy
	if err != nil {
		stdoutR.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	conn.stdin, conn.stdout = stdin, stdoutR
	go func() {
		_ = cmd.Wait()
		close(conn.exited)
	}()
	return conn, nil
}

// Read reads from the command's stdout. When that ends, the command's
// stderr (ssh's "Permission denied", "Could not resolve hostname") is
// the error.
func (c *sshCommandConn) Read(p []byte) (int, error) {
	n, err := c.stdout.Read(p)
	if errors.Is(err, io.EOF) {
		select {
		case <-c.exited: // its stderr has been copied
		case <-time.After(time.Second):
		}
		if msg := strings.TrimSpace(c.stderr.String()); msg != "" {
			return n, fmt.Errorf("ssh %s: %s: %w", c.target, msg, io.ErrUnexpectedEOF)
		}
	}
	return n, err
}

// Write writes to the command's stdin. A command that has already exited
// (ssh refused the host or the key) breaks the pipe; its stderr says why.
func (c *sshCommandConn) Write(p []byte) (int, error) {
	n, err := c.stdin.Write(p)
	if err != nil && errors.Is(err, syscall.EPIPE) {
		select {
		case <-c.exited:
		case <-time.After(time.Second):
		}
		if msg := strings.TrimSpace(c.stderr.String()); msg != "" {
			return n, fmt.Errorf("ssh %s: %s: %w", c.target, msg, err)
		}
	}
	return n, err
}

// Close ends the command; closing twice is a no-op.
func (c *sshCommandConn) Close() error {
	c.closing.Do(func() {
		_ = c.stdin.Close()
		_ = c.cmd.Process.Kill()
		<-c.exited
		_ = c.stdout.Close()
	})
	return nil
}

func (c *sshCommandConn) LocalAddr() net.Addr { return sshCommandAddr("obcd") }

func (c *sshCommandConn) RemoteAddr() net.Addr { return sshCommandAddr(c.target) }

func (c *sshCommandConn) SetDeadline(time.Time) error { return nil }

func (c *sshCommandConn) SetReadDeadline(time.Time) error { return nil }

func (c *sshCommandConn) SetWriteDeadline(time.Time) error { return nil }

type sshCommandAddr string

func (a sshCommandAddr) Network() string { return "ssh" }

func (a sshCommandAddr) String() string { return string(a) }

// sshStderrBuffer collects a command's stderr, up to 4 KiB, safely across
// the goroutine that copies it and the one that reads the connection.
type sshStderrBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *sshStderrBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 4096 - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *sshStderrBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
