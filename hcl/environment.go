package hcl

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// hostnameLabel is one DNS label: letters, digits and hyphens, not at
// either end, at most 63 characters.
var hostnameLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// checkHostname says why name is not a hostname nginx and a certificate
// can use, or "".
func checkHostname(name string) string {
	if len(name) > 253 {
		return fmt.Sprintf("it is %d characters long, and a hostname has at most 253", len(name))
	}
	for _, label := range strings.Split(name, ".") {
		if !hostnameLabel.MatchString(label) {
			return fmt.Sprintf("%q is not a DNS label (letters, digits and inner hyphens, 1 to 63 characters)", label)
		}
	}
	return ""
}

// The tiers an environment can declare with tier = "...": what it is,
// which decides the rules that apply to it. Production-only rules apply
// to TierProduction; DEBUG may be on only in TierDevelopment.
const (
	TierProduction  = "production"
	TierStaging     = "staging"
	TierDevelopment = "development"
)

// The engines an environment can run on, with engine = "...".
const (
	EngineDocker = "docker" // containers on one Docker engine (the default)
	EngineSwarm  = "swarm"  // services of a Docker Swarm, through a manager
)

// Engines lists the engines, in the order the help gives them.
var Engines = []string{EngineDocker, EngineSwarm}

// Tiers lists the tiers, in the order the help gives them.
var Tiers = []string{TierProduction, TierStaging, TierDevelopment}

// TierByName is the tier of an environment that declares none, by its
// name: production or prod is TierProduction; development, dev, local
// or test is TierDevelopment; any other name is TierStaging.
func TierByName(name string) string {
	switch name {
	case "production", "prod":
		return TierProduction
	case "development", "dev", "local", "test":
		return TierDevelopment
	}
	return TierStaging
}

// checkEnvironment refuses an environment's domain that is not a
// hostname (it goes into nginx's server_name and the certificate) and a
// docker_host obcd cannot dial, where they are written.
func (d *decoder) checkEnvironment(content *hcl.BodyContent) {
	if attr, ok := content.Attributes["domain"]; ok {
		if why := checkHostname(d.environment["domain"].AsString()); why != "" {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid domain",
				Detail:   fmt.Sprintf("domain %q is not a hostname: %s. Write the site's name, such as obcms.example.org.", d.environment["domain"].AsString(), why),
				Subject:  attr.Expr.Range().Ptr(),
			})
		}
	}
	if attr, ok := content.Attributes["public_url"]; ok {
		if why := checkHTTPURL(d.environment["public_url"].AsString()); why != "" {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid public_url",
				Detail:   fmt.Sprintf("public_url %q: %s. Write where users reach the site, such as https://obcms.example.org/.", d.environment["public_url"].AsString(), why),
				Subject:  attr.Expr.Range().Ptr(),
			})
		}
	}
	if attr, ok := content.Attributes["tier"]; ok {
		if tier := d.environment["tier"].AsString(); !slices.Contains(Tiers, tier) {
			detail := fmt.Sprintf("tier %q is not one of %s.", tier, strings.Join(Tiers, ", "))
			if s := nameSuggestion(tier, Tiers); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid tier",
				Detail:   detail + " The tier decides which rules apply: production-only rules for production, DEBUG allowed only in development.",
				Subject:  attr.Expr.Range().Ptr(),
			})
		}
	}
	if attr, ok := content.Attributes["engine"]; ok {
		if engine := d.environment["engine"].AsString(); !slices.Contains(Engines, engine) {
			detail := fmt.Sprintf("engine %q is not one of %s.", engine, strings.Join(Engines, ", "))
			if s := nameSuggestion(engine, Engines); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid engine",
				Detail:   detail + ` "docker" runs the services as containers on docker_host; "swarm" runs them as services of the swarm whose manager docker_host is.`,
				Subject:  attr.Expr.Range().Ptr(),
			})
		}
	}
	if attr, ok := content.Attributes["docker_host"]; ok {
		host := d.environment["docker_host"].AsString()
		if problem := dockerHostProblem(host); problem != "" {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid docker_host",
				Detail:   fmt.Sprintf("docker_host %q %s: obcd reaches a Docker engine at unix:///path/docker.sock, tcp://host:2376 or ssh://user@host.", host, problem),
				Subject:  attr.Expr.Range().Ptr(),
			})
		}
	}
	if attr, ok := content.Attributes["docker_cert_path"]; ok {
		host := d.environment["docker_host"].AsString()
		path := d.environment["docker_cert_path"].AsString()
		why := ""
		switch {
		case path == "":
			why = "is empty; remove it to use DOCKER_CERT_PATH, or name the directory of ca.pem, cert.pem and key.pem"
		case !strings.HasPrefix(host, "tcp://"):
			why = fmt.Sprintf("applies to a tcp:// docker_host only, and docker_host is %q: an ssh:// engine is reached through ssh, a unix:// one through its socket", host)
		}
		if why != "" {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid docker_cert_path",
				Detail:   "docker_cert_path " + why + ".",
				Subject:  attr.Expr.Range().Ptr(),
			})
		}
	}
}

// certPath resolves a docker_cert_path: ~/ is the user's home, and a
// relative path is the stack file's directory's.
func (d *decoder) certPath(path string) string {
	switch {
	case path == "":
		return ""
	case path == "~" || strings.HasPrefix(path, "~/"):
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, strings.TrimPrefix(path[1:], "/"))
		}
	case !filepath.IsAbs(path):
		path = filepath.Join(filepath.Dir(d.filename), path)
	}
	return filepath.Clean(path)
}

// dockerHostProblem says what keeps obcd from dialing host, or "".
func dockerHostProblem(host string) string {
	u, err := url.Parse(host)
	if err != nil {
		return "is not a URL"
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" || u.Host != "" {
			return "names no socket path (unix:// takes three slashes and an absolute path)"
		}
	case "tcp":
		if checkHostPort(u.Host) != "" || (u.Path != "" && u.Path != "/") {
			return "is not tcp://host:port"
		}
	case "ssh":
		if u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
			return "names no host (ssh://user@host, or ssh://user@host:port)"
		}
	default:
		return fmt.Sprintf("has the scheme %q", u.Scheme)
	}
	return ""
}

// checkHTTPURL says why value is not an absolute http or https URL with a
// host, or "". A URL goes into settings, Alertmanager's config and
// probes, whose consumers refuse one that is not.
func checkHTTPURL(value string) string {
	u, err := url.Parse(value)
	switch {
	case err != nil:
		return "it is not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "it does not start with http:// or https://"
	case u.Hostname() == "":
		return "it names no host"
	}
	return ""
}

// checkHostPort says why value is not host:port, or "".
func checkHostPort(value string) string {
	host, port, err := net.SplitHostPort(value)
	if err != nil {
		return "it is not host:port"
	}
	if n, err := strconv.Atoi(port); host == "" || err != nil || n < 1 || n > 65535 {
		return "it is not host:port with a port from 1 to 65535"
	}
	return ""
}
