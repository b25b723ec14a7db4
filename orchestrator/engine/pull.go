package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/cli/cli/config"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
)

// pullProgressEvery is how often a pull reports its progress at most,
// besides a line for each layer done.
const pullProgressEvery = 2 * time.Second

// RegistryAuth is the X-Registry-Auth value for ref's registry, from the
// user's Docker config ($DOCKER_CONFIG/config.json, else
// ~/.docker/config.json) as `docker login` left it: its auths, its
// credsStore and its credHelpers (docker-credential-* programs). It is ""
// when the config holds nothing for that registry: the pull is then
// anonymous. The value carries a password: it goes to the engine only.
func RegistryAuth(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image %q is not a valid reference: %w", ref, err)
	}
	dir := dockerConfigDir()
	cfg, err := config.Load(dir)
	if err != nil {
		return "", fmt.Errorf("docker config in %s: %w", dir, err)
	}
	server := reference.Domain(named)
	if server == "docker.io" {
		server = "https://index.docker.io/v1/"
	}
	auth, err := cfg.GetAuthConfig(server)
	if err != nil {
		return "", fmt.Errorf("credentials for %s from the docker config in %s: %w", server, dir, err)
	}
	if auth.Username == "" && auth.Password == "" && auth.IdentityToken == "" && auth.RegistryToken == "" && auth.Auth == "" {
		return "", nil
	}
	encoded, err := json.Marshal(registry.AuthConfig{
		Username: auth.Username, Password: auth.Password, Auth: auth.Auth, ServerAddress: auth.ServerAddress,
		IdentityToken: auth.IdentityToken, RegistryToken: auth.RegistryToken,
	})
	if err != nil {
		return "", err
	}
	return base64.URLEncoding.EncodeToString(encoded), nil
}

// PullImage pulls ref onto the engine with the user's credentials for its
// registry (RegistryAuth), and returns the image's ID. progress, when
// set, gets a line when the pull starts, for each layer pulled, at most
// every two seconds in between with the bytes so far, and at its end.
func (e *Engine) PullImage(ctx context.Context, ref string, progress func(string)) (string, error) {
	auth, err := RegistryAuth(ref)
	if err != nil {
		return "", err
	}
	if progress == nil {
		progress = func(string) {}
	}
	started := time.Now()
	pulling, err := e.API.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: auth})
	if err != nil {
		return "", pullError(ref, auth, err)
	}
	layers := &pullLayers{current: map[string]int64{}, total: map[string]int64{}, done: map[string]bool{}}
	last := time.Now()
	for message, err := range pulling.JSONMessages(ctx) {
		if err != nil {
			return "", pullError(ref, auth, err)
		}
		if message.Error != nil {
			return "", pullError(ref, auth, fmt.Errorf("%s", message.Error.Message))
		}
		if line := layers.add(message); line != "" {
			progress(ref + ": " + line)
		} else if time.Since(last) >= pullProgressEvery && layers.bytes() > 0 {
			progress(ref + ": " + layers.summary())
			last = time.Now()
		}
	}
	id, present, err := e.ImagePresent(ctx, ref)
	if err == nil && !present {
		err = fmt.Errorf("image %s is not on the engine after its pull", ref)
	}
	if err != nil {
		return "", err
	}
	progress(fmt.Sprintf("%s: pulled in %s (%s)", ref, time.Since(started).Round(100*time.Millisecond), shortID(strings.TrimPrefix(id, "sha256:"))))
	return id, nil
}

// pullError says what a failed pull means and how to mend it: a registry
// that refuses the credentials (or asks for some), one that is not
// reached, or a reference it does not have.
func pullError(ref, auth string, err error) error {
	text := err.Error()
	lower := strings.ToLower(text)
	hint := ""
	switch {
	case strings.Contains(lower, "unauthorized") || strings.Contains(lower, "authentication required") || strings.Contains(lower, "no basic auth credentials"):
		if auth == "" {
			hint = fmt.Sprintf("the registry asks for credentials and the docker config (%s) has none for it: run `docker login %s`", dockerConfigDir(), registryOf(ref))
		} else {
			hint = fmt.Sprintf("the registry refused the credentials the docker config (%s) has for it: run `docker login %s` again", dockerConfigDir(), registryOf(ref))
		}
	case strings.Contains(lower, "manifest unknown") || strings.Contains(lower, "not found") || strings.Contains(lower, "does not exist"):
		hint = "the registry has no such image or tag: push it first, or correct the service's image (or deploy --image)"
	case strings.Contains(lower, "connection refused") || strings.Contains(lower, "no such host") || strings.Contains(lower, "i/o timeout") || strings.Contains(lower, "dial tcp"):
		hint = "the engine cannot reach the registry: the pull runs on the engine's machine, so the registry must be reachable from there"
	case strings.Contains(lower, "http response to https client") || strings.Contains(lower, "server gave http response"):
		hint = fmt.Sprintf("the registry speaks plain HTTP: give it TLS, or list it in the engine's insecure-registries (daemon.json) as %s", registryOf(ref))
	}
	if hint == "" {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return fmt.Errorf("pull %s: %w; %s", ref, err, hint)
}

// dockerConfigDir is where the docker CLI keeps its config: $DOCKER_CONFIG,
// else ~/.docker. It is read anew each time (config.Dir reads it once per
// process).
func dockerConfigDir() string {
	if dir := os.Getenv(config.EnvOverrideConfigDir); dir != "" {
		return dir
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return config.Dir()
	}
	return filepath.Join(home, ".docker")
}

// registryOf is the registry host of ref, as `docker login` takes it.
func registryOf(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.Domain(named)
}

// pullLayers follows a pull's layers from its message stream.
type pullLayers struct {
	current, total map[string]int64
	done           map[string]bool
}

// add takes one message and returns a line worth printing now: a layer
// pulled, or the status of the image ("Downloaded newer image", "Image is
// up to date").
func (p *pullLayers) add(m jsonstream.Message) string {
	switch {
	case m.ID != "" && m.Progress != nil && m.Progress.Total > 0 && m.Status == "Downloading":
		p.current[m.ID], p.total[m.ID] = m.Progress.Current, m.Progress.Total
	case m.ID != "" && (m.Status == "Pull complete" || m.Status == "Already exists"):
		if p.done[m.ID] {
			return ""
		}
		p.done[m.ID] = true
		if p.total[m.ID] > 0 {
			p.current[m.ID] = p.total[m.ID]
		}
		return fmt.Sprintf("layer %s %s (%d done)", m.ID, strings.ToLower(m.Status), len(p.done))
	case m.ID == "" && strings.HasPrefix(m.Status, "Status: "):
		return strings.TrimPrefix(m.Status, "Status: ")
	}
	return ""
}

func (p *pullLayers) bytes() int64 {
	var n int64
	for _, c := range p.current {
		n += c
	}
	return n
}

func (p *pullLayers) summary() string {
	var total int64
	for _, t := range p.total {
		total += t
	}
	return fmt.Sprintf("downloading %d layer(s): %.1f MB of %.1f MB", len(p.total), float64(p.bytes())/1e6, float64(total)/1e6)
}
