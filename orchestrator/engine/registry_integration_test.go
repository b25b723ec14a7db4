package engine_test

// Pulls from a real registry (Debian's docker-registry on loopback, with
// a login) and a real engine reached over tcp+TLS with client
// certificates (stunnel in front of the engine's socket, as dockerd
// --tlsverify would ask for them).

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/engine"
)

// writeDockerConfig makes a DOCKER_CONFIG directory holding config.
func writeDockerConfig(t *testing.T, config map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	data, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// removeImage deletes ref's image from the engine, every tag of it.
func removeImage(t *testing.T, docker *client.Client, ref string) {
	t.Helper()
	ctx := context.Background()
	inspected, err := docker.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := docker.ImageRemove(ctx, inspected.ID, client.ImageRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		t.Fatal(err)
	}
}

func TestEngine_PullsFromARegistryWithTheDockerConfigsCredentials(t *testing.T) {
	docker := engineRealDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reg := testsvc.StartRegistry(t, "deployer", "s3cret pass:word")
	local := fmt.Sprintf("obcd-pull-test:%d", time.Now().UnixNano())
	ref := reg.Addr + "/obcms/pull-test:1.0"
	// A layer no other image has (4 MB of random bytes), so that the
	// pull downloads it, with progress, rather than finding it present.
	buildDir := t.TempDir()
	unique := make([]byte, 4<<20)
	if _, err := rand.Read(unique); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(buildDir, "unique"), unique, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(buildDir, "Dockerfile"), []byte("FROM scratch\nCOPY unique /unique\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	buildContext, err := engine.TarContext(buildDir, "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if err := (&engine.Engine{API: docker}).BuildImage(ctx, buildContext, local, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeImage(t, docker, local) })
	if _, err := docker.ImageTag(ctx, client.ImageTagOptions{Source: local, Target: ref}); err != nil {
		t.Fatal(err)
	}
	auth, _ := json.Marshal(registry.AuthConfig{Username: reg.User, Password: reg.Password, ServerAddress: reg.Addr})
	pushed, err := docker.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: base64.URLEncoding.EncodeToString(auth)})
	if err != nil {
		t.Fatal(err)
	}
	if err := pushed.Wait(ctx); err != nil {
		t.Fatalf("push %s: %v\n%s", ref, err, reg.Log())
	}
	// Gone from the engine, every layer: the pull must fetch them.
	removeImage(t, docker, ref)
	if _, present, _ := (&engine.Engine{API: docker}).ImagePresent(ctx, local); present {
		t.Fatalf("%s is still on the engine", local)
	}
	t.Cleanup(func() { removeImage(t, docker, ref) })
	e := &engine.Engine{API: docker}

	pull := func(config string) (string, []string, error) {
		t.Setenv("DOCKER_CONFIG", config)
		var progress []string
		id, err := e.PullImage(ctx, ref, func(line string) { progress = append(progress, line) })
		return id, progress, err
	}
	t.Run("NoCredentials", func(t *testing.T) {
		_, _, err := pull(writeDockerConfig(t, map[string]any{}))
		if err == nil || !strings.Contains(err.Error(), "has none for it: run `docker login "+reg.Addr+"`") {
			t.Fatalf("pull without credentials: %v", err)
		}
	})
	t.Run("WrongPassword", func(t *testing.T) {
		_, _, err := pull(writeDockerConfig(t, map[string]any{"auths": map[string]any{reg.Addr: map[string]string{"auth": basicAuth(reg.User, "not it")}}}))
		if err == nil || !strings.Contains(err.Error(), "refused the credentials") {
			t.Fatalf("pull with a wrong password: %v", err)
		}
		if strings.Contains(err.Error(), "not it") {
			t.Errorf("the error shows the password: %v", err)
		}
	})
	t.Run("NoSuchTag", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", writeDockerConfig(t, map[string]any{"auths": map[string]any{reg.Addr: map[string]string{"auth": basicAuth(reg.User, reg.Password)}}}))
		_, err := e.PullImage(ctx, reg.Addr+"/obcms/pull-test:9.9", nil)
		if err == nil || !strings.Contains(err.Error(), "has no such image or tag") {
			t.Fatalf("pull of a missing tag: %v", err)
		}
	})
	for _, tc := range []struct {
		name   string
		config func(t *testing.T) string
	}{
		{"Auths", func(t *testing.T) string {
			return writeDockerConfig(t, map[string]any{"auths": map[string]any{reg.Addr: map[string]string{"auth": basicAuth(reg.User, reg.Password)}}})
		}},
		{"CredentialHelper", func(t *testing.T) string {
			// A docker-credential-* program on PATH, as `docker login`
			// with credHelpers uses: it answers `get` with the login.
			bin := t.TempDir()
			answer, _ := json.Marshal(map[string]string{"ServerURL": reg.Addr, "Username": reg.User, "Secret": reg.Password})
			script := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n[ \"$server\" = %q ] || { echo 'credentials not found in native keychain'; exit 1; }\necho '%s'\n", reg.Addr, answer)
			if err := os.WriteFile(filepath.Join(bin, "docker-credential-obcdtest"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
			return writeDockerConfig(t, map[string]any{"credHelpers": map[string]string{reg.Addr: "obcdtest"}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			removeImage(t, docker, ref)
			id, progress, err := pull(tc.config(t))
			if err != nil {
				t.Fatalf("pull: %v\n%s", err, reg.Log())
			}
			if got, present, err := e.ImagePresent(ctx, ref); err != nil || !present || got != id {
				t.Errorf("after the pull: present %v, ID %s (pull said %s), %v", present, got, id, err)
			}
			joined := strings.Join(progress, "\n")
			if !strings.Contains(joined, "layer") || !strings.Contains(joined, "pull complete (1 done)") || !strings.Contains(joined, ref+": pulled in ") {
				t.Errorf("the pull's progress reports no layer pulled, or no end:\n%s", joined)
			}
			if strings.Contains(joined, reg.Password) {
				t.Errorf("the progress shows the password:\n%s", joined)
			}
			// The registry digest a release records brings back exactly
			// this image once the engine has lost it.
			digest, err := e.RepoDigest(ctx, id)
			if err != nil || !strings.HasPrefix(digest, reg.Addr+"/obcms/pull-test@sha256:") {
				t.Fatalf("repo digest of the pulled image: %q, %v", digest, err)
			}
			removeImage(t, docker, ref)
			again, err := e.PullImage(ctx, digest, nil)
			if err != nil || again != id {
				t.Errorf("pull by digest %s: image %s, %v; want %s", digest, again, err, id)
			}
			removeImage(t, docker, id) // untagged now: by ID
		})
	}
}

func TestEngine_OverTCPWithTLSAndClientCertificates(t *testing.T) {
	engineRealDocker(t)
	tlsEngine := testsvc.StartTLSEngine(t, "/var/run/docker.sock")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Setenv("DOCKER_CERT_PATH", "")
	t.Setenv("DOCKER_TLS_VERIFY", "")

	t.Run("ClientCertificate", func(t *testing.T) {
		docker, err := engine.Dial(tlsEngine.Host, tlsEngine.CertDir)
		if err != nil {
			t.Fatal(err)
		}
		defer docker.Close()
		if _, err := docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			t.Fatalf("ping over TLS: %v\n%s", err, tlsEngine.Log())
		}
		// The stream endpoints go through the terminator too.
		if _, err := (&engine.Engine{API: docker}).Observe(ctx, "obcd-tls-none"); err != nil {
			t.Fatalf("observe over TLS: %v", err)
		}
	})
	t.Run("DockerCertPathAppliesToAnyTCPHost", func(t *testing.T) {
		t.Setenv("DOCKER_CERT_PATH", tlsEngine.CertDir)
		t.Setenv("DOCKER_TLS_VERIFY", "1")
		docker, err := engine.Dial(tlsEngine.Host, "")
		if err != nil {
			t.Fatal(err)
		}
		defer docker.Close()
		if _, err := docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			t.Fatalf("ping with DOCKER_CERT_PATH: %v", err)
		}
	})
	for _, tc := range []struct{ name, dir, hint string }{
		{"WrongCA", tlsEngine.WrongCADir, "not signed by the CA in ca.pem"},
		{"UntrustedClient", tlsEngine.UntrustedClientDir, "refused this client's certificate"},
		{"NoTLS", "", "it may speak TLS only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docker, err := engine.Dial(tlsEngine.Host, tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			defer docker.Close()
			_, err = docker.Ping(ctx, client.PingOptions{})
			if err == nil {
				t.Fatal("the engine answered")
			}
			if hint := engine.TLSHint(err); !strings.Contains(hint, tc.hint) {
				t.Errorf("error %v: hint %q, want one saying %q", err, hint, tc.hint)
			}
		})
	}
	t.Run("MissingCertificateFiles", func(t *testing.T) {
		if _, err := engine.Dial(tlsEngine.Host, t.TempDir()); err == nil || !strings.Contains(err.Error(), "ca.pem") {
			t.Errorf("a cert dir with no ca.pem: %v", err)
		}
	})
}
