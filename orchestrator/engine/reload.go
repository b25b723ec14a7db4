package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// Reload is how a running container takes a new version of one of its
// files with no restart. A file without one is part of the container's
// hash: a change to it recreates the container.
type Reload struct {
	// Exec, when set, applies the file: it runs in the container with
	// FilePlaceholder replaced by the path of the new version, and only
	// when it exits 0 does the new version take the file's place. It also
	// runs once a new container is healthy, on the file delivered into it,
	// since a container may start on data (a database volume) the file
	// has never been applied to.
	Exec []string `json:"exec,omitempty"`
	// Stage is where the new version waits while Exec applies it; it must
	// be in a directory the image has (such as /tmp).
	Stage string `json:"stage,omitempty"`
	// Signal is sent to the container's main process once the new version
	// is in place (HUP: re-read the config).
	Signal string `json:"signal,omitempty"`
	// How says what applying it does, for the plan.
	How string `json:"how"`
}

// FilePlaceholder stands for the file's path in Reload.Exec.
const FilePlaceholder = "{file}"

// reloadTimeout bounds one Exec, so a database that does not answer
// cannot hold a deploy forever.
const reloadTimeout = 2 * time.Minute

// FileDigest is the hex SHA-256 of a file's content, as ReadFileDigests
// reports it for a file in a container.
func FileDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// ReadFileDigests reads the files at paths in a container and returns
// their digests by path; a file the container lacks is "". The content
// never leaves this function.
func (e *Engine) ReadFileDigests(ctx context.Context, containerID string, paths []string) (map[string]string, error) {
	digests := map[string]string{}
	for _, p := range paths {
		digest, err := e.readFileDigest(ctx, containerID, p)
		if err != nil {
			return nil, err
		}
		digests[p] = digest
	}
	return digests, nil
}

func (e *Engine) readFileDigest(ctx context.Context, containerID, file string) (string, error) {
	copied, err := e.API.CopyFromContainer(ctx, containerID, client.CopyFromContainerOptions{SourcePath: file})
	if cerrdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s in container %s: %w", file, shortID(containerID), err)
	}
	defer copied.Content.Close()
	archive := tar.NewReader(copied.Content)
	for {
		header, err := archive.Next()
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("read %s in container %s: %w", file, shortID(containerID), err)
		}
		if header.Typeflag != tar.TypeReg {
			continue
		}
		hash := sha256.New()
		if _, err := io.Copy(hash, archive); err != nil {
			return "", fmt.Errorf("read %s in container %s: %w", file, shortID(containerID), err)
		}
		return hex.EncodeToString(hash.Sum(nil)), nil
	}
}

// ReloadFile gives a running container the new version of one of its
// files, as f.Reload says: staged, applied by Exec and then put in place,
// or put in place and signalled. A failed Exec leaves the old version in
// place, so the container's file always says what was applied.
func (e *Engine) ReloadFile(ctx context.Context, containerID string, f FileSpec, user string) error {
	r := f.Reload
	if r == nil {
		return fmt.Errorf("file %s has no reload; the container must be recreated", f.Target)
	}
	if len(r.Exec) > 0 {
		stage := FileSpec{Target: r.Stage, Mode: f.Mode, Data: f.Data}
		if err := e.putFile(ctx, containerID, stage, user); err != nil {
			return err
		}
		if err := e.execApply(ctx, containerID, r, r.Stage); err != nil {
			return fmt.Errorf("apply %s: %w", f.Target, err)
		}
	}
	if err := e.putFile(ctx, containerID, f, user); err != nil {
		return err
	}
	if r.Signal != "" {
		if _, err := e.API.ContainerKill(ctx, containerID, client.ContainerKillOptions{Signal: r.Signal}); err != nil {
			return fmt.Errorf("signal %s to container %s after replacing %s: %w", r.Signal, shortID(containerID), f.Target, err)
		}
	}
	return nil
}

// ApplyFile runs a file's Exec on the version a new container was
// created with. A file without Exec needs nothing: the container read it
// when it started.
func (e *Engine) ApplyFile(ctx context.Context, containerID string, f FileSpec) error {
	if f.Reload == nil || len(f.Reload.Exec) == 0 {
		return nil
	}
	if err := e.execApply(ctx, containerID, f.Reload, f.Target); err != nil {
		return fmt.Errorf("apply %s: %w", f.Target, err)
	}
	return nil
}

// putFile writes one file into a running container, without touching
// the directories above it (a tar with directory entries would reset
// their modes, /tmp's among them).
func (e *Engine) putFile(ctx context.Context, containerID string, f FileSpec, user string) error {
	if !path.IsAbs(f.Target) || path.Clean(f.Target) == "/" {
		return fmt.Errorf("file target %q must be an absolute file path", f.Target)
	}
	uid, gid := numericUser(user)
	mode := int64(f.Mode.Perm())
	if mode == 0 {
		mode = 0o644
	}
	var buf bytes.Buffer
	archive := tar.NewWriter(&buf)
	header := &tar.Header{Typeflag: tar.TypeReg, Name: path.Base(f.Target), Mode: mode, Size: int64(len(f.Data)), Uid: uid, Gid: gid, ModTime: time.Now()}
	if err := archive.WriteHeader(header); err != nil {
		return err
	}
	if _, err := archive.Write(f.Data); err != nil {
		return err
	}
	if err := archive.Close(); err != nil {
		return err
	}
	_, err := e.API.CopyToContainer(ctx, containerID, client.CopyToContainerOptions{DestinationPath: path.Dir(path.Clean(f.Target)), Content: &buf})
	if err != nil {
		return fmt.Errorf("write %s into container %s: %w", f.Target, shortID(containerID), err)
	}
	return nil
}

// execApply runs r.Exec on file in the container and waits for it. Its
// output is returned in the error when it fails; the commands obcd
// renders print no secret (they read the file, they never echo it).
func (e *Engine) execApply(ctx context.Context, containerID string, r *Reload, file string) error {
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	cmd := make([]string, len(r.Exec))
	for i, arg := range r.Exec {
		cmd[i] = strings.ReplaceAll(arg, FilePlaceholder, file)
	}
	created, err := e.API.ExecCreate(ctx, containerID, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", shortID(containerID), err)
	}
	attached, err := e.API.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", shortID(containerID), err)
	}
	defer attached.Close()
	// The attach stream does not watch ctx: close it when ctx ends, so a
	// command that hangs cannot hold the deploy past its deadline.
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
			attached.Close()
		case <-finished:
		}
	}()
	var output bytes.Buffer
	if _, err := stdcopy.StdCopy(&output, &output, attached.Reader); err != nil {
		return fmt.Errorf("exec in container %s: %w", shortID(containerID), errors.Join(ctx.Err(), err))
	}
	inspected, err := e.API.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", shortID(containerID), err)
	}
	if inspected.Running || inspected.ExitCode != 0 {
		return fmt.Errorf("%s exited %d in container %s: %s", cmd[0], inspected.ExitCode, shortID(containerID), RedactVerifiers(strings.TrimSpace(output.String())))
	}
	return nil
}

// verifierRE matches the password verifiers PostgreSQL and PgBouncer
// store (SCRAM and md5), which a failing psql may quote with its line.
var verifierRE = regexp.MustCompile(`SCRAM-SHA-256\$[^'"\s]*|md5[0-9a-f]{32}`)

// RedactVerifiers replaces every password verifier in s: a verifier is
// as good as a password to whoever can test guesses against it offline.
func RedactVerifiers(s string) string {
	return verifierRE.ReplaceAllString(s, "<verifier redacted>")
}

// shortID is a container ID as docker ps prints it.
func shortID(id string) string { return id[:min(len(id), 12)] }
