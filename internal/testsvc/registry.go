package testsvc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// RegistryBin is Debian's docker-registry (the distribution project's
// registry, 2.8).
const RegistryBin = "/usr/bin/docker-registry"

// Registry is a running docker-registry on loopback that asks for a
// login (htpasswd). The engine pulls from a loopback registry over plain
// HTTP without being told to: it treats 127.0.0.0/8 as insecure-allowed.
type Registry struct {
	Addr     string // 127.0.0.1:port, the registry part of its image references
	User     string
	Password string
	Dir      string

	proc *process
}

// StartRegistry starts docker-registry on a free loopback port with
// htpasswd auth for user and password, storing in a temp dir, and waits
// until it answers /v2/ (with 401: it asks for the login). It stops when
// the test ends.
func StartRegistry(t testing.TB, user, password string) *Registry {
	t.Helper()
	RequireBinaries(t, RegistryBin)
	dir := Dir(t)
	reg := &Registry{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t))), User: user, Password: password, Dir: dir}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, filepath.Join(dir, "htpasswd"), []byte(user+":"+string(hash)+"\n"), 0o600)
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
auth:
  htpasswd:
    realm: obcd-test
    path: %s
`, filepath.Join(dir, "data"), reg.Addr, filepath.Join(dir, "htpasswd"))
	WriteFile(t, filepath.Join(dir, "config.yml"), []byte(config), 0o644)
	cmd := command(t, dir, nil, RegistryBin, "serve", filepath.Join(dir, "config.yml"))
	reg.proc = startProcess(t, "docker-registry on "+reg.Addr, cmd, filepath.Join(dir, "registry.log"), syscall.SIGTERM)
	reg.proc.waitReady(t, 15*time.Second, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+reg.Addr+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("/v2/ answered %d, want 401 (a login asked for)", resp.StatusCode)
		}
		return nil
	})
	return reg
}

// Log is the end of the registry's log.
func (r *Registry) Log() string { return r.proc.logTail(8000) }
