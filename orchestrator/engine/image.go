package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
)

// ImagePresent says whether the engine has the image, and its ID.
func (e *Engine) ImagePresent(ctx context.Context, ref string) (string, bool, error) {
	inspected, err := e.API.ImageInspect(ctx, ref)
	switch {
	case cerrdefs.IsNotFound(err):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return inspected.ID, true, nil
}

// RepoDigest is a registry digest (repo@sha256:…) the image id is known
// by, "" when it has none (built here, never pushed or pulled).
func (e *Engine) RepoDigest(ctx context.Context, id string) (string, error) {
	inspected, err := e.API.ImageInspect(ctx, id)
	switch {
	case cerrdefs.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("inspect image %s: %w", id, err)
	}
	if len(inspected.RepoDigests) == 0 {
		return "", nil
	}
	return inspected.RepoDigests[0], nil
}

// TagImage gives the image src the reference dst.
func (e *Engine) TagImage(ctx context.Context, src, dst string) error {
	if _, err := e.API.ImageTag(ctx, client.ImageTagOptions{Source: src, Target: dst}); err != nil {
		return fmt.Errorf("tag image %s as %s: %w", src, dst, err)
	}
	return nil
}

// BuildImage builds a tar build context with the classic builder and tags
// the result. The build's own error, with the output before it, is the
// error.
func (e *Engine) BuildImage(ctx context.Context, contextTar io.Reader, tag string, buildArgs map[string]*string) error {
	built, err := e.API.ImageBuild(ctx, contextTar, client.ImageBuildOptions{
		Tags: []string{tag}, BuildArgs: buildArgs, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	defer built.Body.Close()
	if _, err := ReadBuildOutput(built.Body); err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	return nil
}

// buildOutputLines is how much of the build's output an error keeps.
const buildOutputLines = 20

// ReadBuildOutput reads the classic builder's JSON message stream to its
// end and returns the ID of the image it built ("" when it reports none),
// or the error message in it with the output lines before it.
func ReadBuildOutput(body io.Reader) (string, error) {
	decoder := json.NewDecoder(body)
	var output []string
	imageID := ""
	for {
		var message struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
			Aux *struct {
				ID string `json:"ID"`
			} `json:"aux"`
		}
		if err := decoder.Decode(&message); errors.Is(err, io.EOF) {
			return imageID, nil
		} else if err != nil {
			return "", fmt.Errorf("reading the build output: %w", err)
		}
		if line := strings.TrimRight(message.Stream, "\n"); line != "" {
			output = append(output, strings.Split(line, "\n")...)
			output = output[max(0, len(output)-buildOutputLines):]
		}
		if message.Aux != nil && message.Aux.ID != "" {
			imageID = message.Aux.ID
		}
		errorMessage := message.Error
		if message.ErrorDetail != nil && message.ErrorDetail.Message != "" {
			errorMessage = message.ErrorDetail.Message
		}
		if errorMessage != "" {
			if len(output) == 0 {
				return "", errors.New(errorMessage)
			}
			return "", fmt.Errorf("%s\n  %s", errorMessage, strings.Join(output, "\n  "))
		}
	}
}

// RemoveImage deletes an image by ID with every tag it has, unless a
// container (running or not) was created from it: then it is kept, and
// removed is false. An image already gone is not an error.
func (e *Engine) RemoveImage(ctx context.Context, id string) (removed bool, err error) {
	users, err := e.API.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("ancestor", id)})
	if err != nil {
		return false, fmt.Errorf("containers of image %s: %w", id, err)
	}
	if len(users.Items) > 0 {
		return false, nil
	}
	inspected, err := e.API.ImageInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect image %s: %w", id, err)
	}
	refs := inspected.RepoTags
	if len(refs) == 0 {
		refs = []string{id}
	}
	for _, ref := range refs {
		if _, err := e.API.ImageRemove(ctx, ref, client.ImageRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			return false, fmt.Errorf("remove image %s (%s): %w", id, ref, err)
		}
	}
	return true, nil
}

// Untag removes the tag ref from its image, when the image has another
// tag besides: an image is never deleted by losing its last tag here.
func (e *Engine) Untag(ctx context.Context, ref string) (bool, error) {
	inspected, err := e.API.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if len(inspected.RepoTags) < 2 {
		return false, nil
	}
	if _, err := e.API.ImageRemove(ctx, ref, client.ImageRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return false, fmt.Errorf("untag %s: %w", ref, err)
	}
	return true, nil
}
