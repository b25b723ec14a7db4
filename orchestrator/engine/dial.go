package engine

import (
	"fmt"
	"net/url"
	"os"

	"github.com/moby/moby/client"
)

// Dial makes a client for a Docker host; it does no I/O.
//   - "" uses DOCKER_HOST, else the local socket;
//   - unix:// and tcp:// are used as given; when host is DOCKER_HOST, the
//     client is configured from the environment (client.FromEnv), so
//     DOCKER_TLS_VERIFY and DOCKER_CERT_PATH apply;
//   - ssh://[user@]host[:port] runs `docker system dial-stdio` on the host
//     over ssh (see sshDialer).
func Dial(host string) (*client.Client, error) {
	if host == "" {
		host = os.Getenv(client.EnvOverrideHost)
	}
	if host == "" {
		return newClient("the default Docker host", client.FromEnv)
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
		return newClient(host, client.WithHost("http://docker.example.com"), client.WithDialContext(dial))
	case "unix", "tcp":
		if host == os.Getenv(client.EnvOverrideHost) {
			return newClient(host, client.FromEnv)
		}
		return newClient(host, client.WithHost(host))
	default:
		return nil, fmt.Errorf("docker host %q: scheme %q is not supported; use unix://, tcp:// or ssh://", host, hostURL.Scheme)
	}
}

func newClient(host string, opts ...client.Opt) (*client.Client, error) {
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker host %s: %w", host, err)
	}
	return cli, nil
}
