package checks

// live_docker.go reaches the Docker engine: deploy.D001 (unreachable),
// D005 (missing images), D006 and D008 (free disk), and DialDocker.

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

	cerrdefs "github.com/containerd/errdefs"
	"github.com/hashicorp/hcl/v2"
	"github.com/moby/moby/client"

	stackhcl "github.com/obcd/obcd/hcl"
)

// MinFreeDockerDisk is the free space under Docker's root dir below which
// deploy.D006 warns.
const MinFreeDockerDisk uint64 = 5 << 30

// liveImageInspectParallelism bounds concurrent ImageInspect calls.
const liveImageInspectParallelism = 4

// DockerAPI is the part of the Docker client the live checks use.
type DockerAPI interface {
	Ping(ctx context.Context, options client.PingOptions) (client.PingResult, error)
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
}

var _ DockerAPI = (*client.Client)(nil)

// docker runs the Docker checks against api, or against a client dialled
// from the stack's docker_host when api is nil, and returns the engine's
// API version ("" when unreachable).
func (run *liveRun) docker(ctx context.Context, api DockerAPI) ([]Finding, string) {
	host := run.stack.DockerHost
	if api == nil {
		cli, err := DialDocker(host)
		if err != nil {
			return []Finding{{Rule: liveDockerUnreachable, Range: run.stack.EnvRange,
				Message: fmt.Sprintf("Docker engine unreachable: %v", err)}}, ""
		}
		defer cli.Close()
		api = cli
	}
	check := &liveDockerCheck{
		api: api, stack: run.stack, timeout: run.timeout,
		local: liveIsLocalDockerHost(host), statfs: liveFreeBytes,
	}
	return check.run(ctx)
}

// liveDockerCheck holds what the Docker checks decide with; tests fake api
// and statfs.
type liveDockerCheck struct {
	api     DockerAPI
	stack   *stackhcl.Stack
	timeout time.Duration
	local   bool // the engine runs on this machine, so its root dir is ours to statfs
	statfs  func(path string) (free uint64, err error)
}

func (c *liveDockerCheck) run(ctx context.Context) ([]Finding, string) {
	version, finding := c.ping(ctx)
	if finding != nil {
		return []Finding{*finding}, ""
	}
	var (
		mu       sync.Mutex
		findings []Finding
		wg       sync.WaitGroup
	)
	add := func(more []Finding) {
		mu.Lock()
		defer mu.Unlock()
		findings = append(findings, more...)
	}
	wg.Go(func() { add(c.disk(ctx)) })
	wg.Go(func() { add(c.images(ctx)) })
	wg.Wait()
	return findings, version
}

// ping is deploy.D001: it negotiates the API version and returns the
// engine's, or a finding.
func (c *liveDockerCheck) ping(ctx context.Context) (string, *Finding) {
	stepCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ping, err := c.api.Ping(stepCtx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return "", &Finding{Rule: liveDockerUnreachable, Range: c.stack.EnvRange, Message: fmt.Sprintf(
			"Docker engine at %s unreachable: %s", c.hostName(), liveStepError(err, c.timeout))}
	}
	if ping.APIVersion == "" {
		return "unknown", nil
	}
	return ping.APIVersion, nil
}

// disk is deploy.D006 for a local engine, D008 when free disk cannot be
// measured.
func (c *liveDockerCheck) disk(ctx context.Context) []Finding {
	unmeasured := func(format string, args ...any) []Finding {
		return []Finding{{Rule: liveDiskUnmeasured, Range: c.stack.EnvRange, Message: fmt.Sprintf(format, args...)}}
	}
	if !c.local {
		return unmeasured("free disk not measurable on a remote engine (%s): check Docker's root dir on the host yourself", c.hostName())
	}
	stepCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	info, err := c.api.Info(stepCtx, client.InfoOptions{})
	if err != nil {
		return unmeasured("free disk not measured: the engine at %s did not say where its root dir is: %s", c.hostName(), liveStepError(err, c.timeout))
	}
	root := info.Info.DockerRootDir
	if root == "" {
		return unmeasured("free disk not measured: the engine at %s reports no root dir", c.hostName())
	}
	free, err := c.statfs(root)
	if err != nil {
		return unmeasured("free disk not measured: Docker's root dir %s is not visible here (%v); the engine may run in a VM", root, err)
	}
	if free < MinFreeDockerDisk {
		return []Finding{{Rule: liveDiskLow, Range: c.stack.EnvRange, Message: fmt.Sprintf(
			"only %s free under Docker's root dir %s; deploying needs at least %s", liveHumanBytes(free), root, liveHumanBytes(MinFreeDockerDisk))}}
	}
	return nil
}

// images is deploy.D005: one finding per distinct service image the
// engine does not have.
func (c *liveDockerCheck) images(ctx context.Context) []Finding {
	images := liveImages(c.stack)
	results := make([]*Finding, len(images))
	slots := make(chan struct{}, liveImageInspectParallelism)
	var wg sync.WaitGroup
	for i, img := range images {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			results[i] = c.inspect(ctx, img)
		})
	}
	wg.Wait()
	var findings []Finding
	for _, finding := range results {
		if finding != nil {
			findings = append(findings, *finding)
		}
	}
	return findings
}

func (c *liveDockerCheck) inspect(ctx context.Context, img liveImage) *Finding {
	stepCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.api.ImageInspect(stepCtx, img.ref)
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsNotFound(err):
		return &Finding{Rule: liveImageMissing, Range: img.at, Message: fmt.Sprintf(
			"image %s (%s) is not on the engine: pull or build it before deploying", img.ref, img.usedBy())}
	default:
		return &Finding{Rule: liveImageMissing, Range: img.at, Message: fmt.Sprintf(
			"image %s (%s) could not be inspected: %s", img.ref, img.usedBy(), liveStepError(err, c.timeout))}
	}
}

func (c *liveDockerCheck) hostName() string {
	if c.stack.DockerHost == "" {
		return "the default Docker host"
	}
	return c.stack.DockerHost
}

// liveImage is one distinct image and the services that run it.
type liveImage struct {
	ref      string
	services []string
	at       hcl.Range // the first service's image attribute, else its block
}

func (img liveImage) usedBy() string {
	return "service " + strings.Join(img.services, ", ")
}

// liveImages lists the distinct images of the stack's services in
// declaration order.
func liveImages(stack *stackhcl.Stack) []liveImage {
	var images []liveImage
	index := map[string]int{}
	for _, svc := range stack.Services {
		if svc.Image == "" {
			continue
		}
		if i, ok := index[svc.Image]; ok {
			images[i].services = append(images[i].services, svc.Name)
			continue
		}
		at := svc.DeclRange
		if r, ok := svc.Ranges["image"]; ok && r.Filename != "" {
			at = r
		}
		index[svc.Image] = len(images)
		images = append(images, liveImage{ref: svc.Image, services: []string{svc.Name}, at: at})
	}
	return images
}

// liveIsLocalDockerHost says whether the engine at host runs on this machine:
// a unix socket, or the default (DOCKER_HOST or the local socket).
func liveIsLocalDockerHost(host string) bool {
	if host == "" {
		host = os.Getenv(client.EnvOverrideHost)
	}
	return host == "" || strings.HasPrefix(host, "unix://")
}

// liveFreeBytes is the space available to unprivileged users under path.
func liveFreeBytes(path string) (uint64, error) {
	var stat syscall.Statfs_t
	if err := syscall.Statfs(path, &stat); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return stat.Bavail * uint64(stat.Bsize), nil
}

func liveHumanBytes(n uint64) string {
	const gib = 1 << 30
	if n >= gib {
		return fmt.Sprintf("%.1f GiB", float64(n)/gib)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// DialDocker makes a client for a Docker host; it does no I/O.
//   - "" uses DOCKER_HOST, else the local socket;
//   - unix:// and tcp:// are used as given; when host is DOCKER_HOST, the
//     client is configured from the environment (client.FromEnv), so
//     DOCKER_TLS_VERIFY and DOCKER_CERT_PATH apply;
//   - ssh://[user@]host[:port] runs `docker system dial-stdio` on the host
//     over ssh (see sshDialer).
func DialDocker(host string) (*client.Client, error) {
	if host == "" {
		host = os.Getenv(client.EnvOverrideHost)
	}
	if host == "" {
		return newLiveDockerClient("the default Docker host", client.FromEnv)
	}
	hostURL, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	switch hostURL.Scheme {
	case "ssh":
		dial, err := sshDialer(hostURL)
		if err != nil {
			return nil, fmt.Errorf("docker host %q: %w", host, err)
		}
		// The URL only names the HTTP requests' host; dial connects.
		return newLiveDockerClient(host, client.WithHost("http://docker.example.com"), client.WithDialContext(dial))
	case "unix", "tcp":
		if host == os.Getenv(client.EnvOverrideHost) {
			return newLiveDockerClient(host, client.FromEnv)
		}
		return newLiveDockerClient(host, client.WithHost(host))
	default:
		return nil, fmt.Errorf("docker host %q: scheme %q is not supported; use unix://, tcp:// or ssh://", host, hostURL.Scheme)
	}
}

func newLiveDockerClient(host string, opts ...client.Opt) (*client.Client, error) {
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker host %s: %w", host, err)
	}
	return cli, nil
}

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

func (c *sshCommandConn) LocalAddr() net.Addr              { return sshCommandAddr("obcd") }
func (c *sshCommandConn) RemoteAddr() net.Addr             { return sshCommandAddr(c.target) }
func (c *sshCommandConn) SetDeadline(time.Time) error      { return nil }
func (c *sshCommandConn) SetReadDeadline(time.Time) error  { return nil }
func (c *sshCommandConn) SetWriteDeadline(time.Time) error { return nil }

type sshCommandAddr string

func (a sshCommandAddr) Network() string { return "ssh" }
func (a sshCommandAddr) String() string  { return string(a) }

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
