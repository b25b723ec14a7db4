package checks

// live_docker.go reaches the Docker engine: deploy.D001 (unreachable),
// D005 (missing images), D006 and D008 (free disk).

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/obcd/obcd/orchestrator/engine"

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
		cli, err := engine.Dial(host, run.stack.DockerCertPath)
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
		message := fmt.Sprintf("Docker engine at %s unreachable: %s", c.hostName(), liveStepError(err, c.timeout))
		if hint := engine.TLSHint(err); hint != "" {
			message += "; " + hint
		}
		return "", &Finding{Rule: liveDockerUnreachable, Range: c.stack.EnvRange, Message: message}
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
