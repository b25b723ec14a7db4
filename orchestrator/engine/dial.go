package engine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/client"
)

// Dial makes a client for a Docker host; it does no I/O.
//   - "" uses DOCKER_HOST, else the local socket;
//   - unix:// is used as given;
//   - tcp:// is reached over TLS when certPath names a directory of
//     ca.pem, cert.pem and key.pem (the engine's certificate verified
//     against ca.pem, the client's presented); with no certPath,
//     DOCKER_CERT_PATH and DOCKER_TLS_VERIFY apply as they do for the
//     docker CLI's -H, and with neither it is plain TCP;
//   - ssh://[user@]host[:port] runs `docker system dial-stdio` on the host
//     over ssh (see sshDialer).
//
// When host is DOCKER_HOST, the rest of the client's environment
// (DOCKER_API_VERSION) applies too.
func Dial(host, certPath string) (*client.Client, error) {
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
	if certPath != "" && hostURL.Scheme != "tcp" {
		return nil, fmt.Errorf("docker host %q: a certificate directory (%s) applies to tcp:// hosts only", host, certPath)
	}
	switch hostURL.Scheme {
	case "ssh":
		dial, err := sshDialer(hostURL)
		if err != nil {
			return nil, fmt.Errorf("docker host %q: %w", host, err)
		}
		// The URL only names the HTTP requests' host; dial connects.
		return newClient(host, client.WithHost("http://docker.example.com"), client.WithDialContext(dial))
	case "unix":
		if host == os.Getenv(client.EnvOverrideHost) {
			return newClient(host, client.FromEnv)
		}
		return newClient(host, client.WithHost(host))
	case "tcp":
		if certPath != "" {
			for _, name := range []string{"ca.pem", "cert.pem", "key.pem"} {
				if _, err := os.Stat(filepath.Join(certPath, name)); err != nil {
					return nil, fmt.Errorf("docker host %s: docker_cert_path %s: %w; it must hold ca.pem (the CA that signed the engine's certificate), cert.pem and key.pem (this client's)", host, certPath, err)
				}
			}
			return newClient(host,
				client.WithTLSClientConfig(filepath.Join(certPath, "ca.pem"), filepath.Join(certPath, "cert.pem"), filepath.Join(certPath, "key.pem")),
				client.WithHost(host), client.WithAPIVersionFromEnv())
		}
		if host == os.Getenv(client.EnvOverrideHost) {
			return newClient(host, client.FromEnv)
		}
		return newClient(host, client.WithTLSClientConfigFromEnv(), client.WithHost(host), client.WithAPIVersionFromEnv())
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

// TLSHint says how to mend an error of a TLS handshake with an engine,
// or "" when err is not one: which side refused whom, and what to change.
func TLSHint(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var record tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.As(err, &unknownCA):
		return "the engine's TLS certificate is not signed by the CA in ca.pem: give docker_cert_path (or DOCKER_CERT_PATH) the directory whose ca.pem signed the engine's certificate"
	case errors.As(err, &hostname):
		return "the engine's TLS certificate is not for this host name: dial the name the certificate was made for, or have a certificate made for " + hostname.Host
	case errors.As(err, &invalid):
		return "the engine's TLS certificate is not valid now (expired, not yet valid, or not for a server): renew it"
	case errors.As(err, &record):
		return "the engine answered without TLS: it listens for plain TCP (port 2375, say), so drop docker_cert_path, or use the port where it speaks TLS (2376)"
	case errors.As(err, &alert) || strings.Contains(err.Error(), "remote error: tls:"):
		return "the engine refused this client's certificate: give docker_cert_path a cert.pem and key.pem signed by the CA the engine trusts (--tlscacert)"
	case strings.Contains(err.Error(), `"http://`) && strings.Contains(err.Error(), "connection reset by peer"):
		return "the engine closed a plain-HTTP connection: it may speak TLS only (port 2376); give docker_cert_path (or DOCKER_CERT_PATH and DOCKER_TLS_VERIFY) the directory of ca.pem, cert.pem and key.pem"
	}
	return ""
}
