package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"

	"github.com/obcd/obcd/orchestrator/engine"
)

// ImageRepository names the agent's images: obcd-agent:<version>-<digest>.
const ImageRepository = "obcd-agent"

// binary is obcd's own executable as the agent image needs it.
type binary struct {
	path   string
	arch   string // GOARCH of the ELF machine
	digest string // sha256, hex
}

// readBinary checks that path is a static Linux executable and returns
// its architecture and digest. A dynamically linked obcd (built with cgo)
// cannot run in a FROM-scratch image.
func readBinary(path string) (binary, error) {
	f, err := elf.Open(path)
	if err != nil {
		return binary{}, fmt.Errorf("%w: obcd's binary %s is not a Linux executable: %v", ErrUnavailable, path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return binary{}, fmt.Errorf("%w: obcd's binary %s is dynamically linked; build it with CGO_ENABLED=0 (make build does)", ErrUnavailable, path)
		}
	}
	arch, ok := elfArch[f.Machine]
	if !ok {
		return binary{}, fmt.Errorf("%w: obcd's binary %s is for %s, which the agent does not know", ErrUnavailable, path, f.Machine)
	}
	raw, err := os.Open(path)
	if err != nil {
		return binary{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer raw.Close()
	h := sha256.New()
	if _, err := io.Copy(h, raw); err != nil {
		return binary{}, fmt.Errorf("%w: reading %s: %v", ErrUnavailable, path, err)
	}
	return binary{path: path, arch: arch, digest: hex.EncodeToString(h.Sum(nil))}, nil
}

var elfArch = map[elf.Machine]string{
	elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386", elf.EM_ARM: "arm",
	elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x", elf.EM_RISCV: "riscv64",
}

var tagUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// imageTag is the agent image of this obcd: its version and the first
// twelve hex digits of its binary's digest, so that two builds of one
// version never share an image.
func imageTag(version string, bin binary) string {
	v := strings.Trim(tagUnsafe.ReplaceAllString(version, "-"), ".-")
	if v == "" {
		v = "dev"
	}
	if len(v) > 100 {
		v = v[:100]
	}
	return ImageRepository + ":" + v + "-" + bin.digest[:12]
}

const agentDockerfile = `FROM scratch
COPY obcd /obcd
USER 65534:65534
ENTRYPOINT ["/obcd", "agent"]
`

// ensureImage builds the agent image unless the engine has it, and then
// removes the agent images of other obcd builds that no container uses.
func (a *Agent) ensureImage(ctx context.Context, bin binary) (string, error) {
	tag := imageTag(a.Version, bin)
	if _, err := a.API.ImageInspect(ctx, tag); err == nil {
		return tag, nil
	} else if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("inspect image %s: %w", tag, err)
	}
	a.note("building the in-network agent image %s", tag)
	buildContext, err := agentContext(bin.path)
	if err != nil {
		return "", err
	}
	built, err := a.API.ImageBuild(ctx, buildContext, client.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true, Version: build.BuilderV1,
		Labels: map[string]string{LabelAgent + ".version": a.Version},
	})
	if err != nil {
		return "", fmt.Errorf("build the agent image %s: %w", tag, err)
	}
	defer built.Body.Close()
	if _, err := engine.ReadBuildOutput(built.Body); err != nil {
		return "", fmt.Errorf("build the agent image %s: %w", tag, err)
	}
	a.removeOtherImages(ctx, tag)
	return tag, nil
}

// agentContext is the build context: the Dockerfile and obcd's binary.
func agentContext(path string) (io.Reader, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read obcd's binary for the agent image: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(agentDockerfile)}, {"obcd", 0o755, data}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// removeOtherImages removes the agent images of other obcd builds. One
// that a container still uses (another obcd's agent, running now) is
// refused by the engine and kept. Failures are only noted: the agent
// works regardless.
func (a *Agent) removeOtherImages(ctx context.Context, keep string) {
	images, err := a.API.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("reference", ImageRepository)})
	if err != nil {
		return
	}
	for _, img := range images.Items {
		for _, ref := range img.RepoTags {
			if ref == keep || !strings.HasPrefix(ref, ImageRepository+":") {
				continue
			}
			if _, err := a.API.ImageRemove(ctx, ref, client.ImageRemoveOptions{}); err == nil {
				a.note("removed the agent image of another obcd build, %s", ref)
			}
		}
	}
}
