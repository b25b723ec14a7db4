package templates

import (
	"bytes"
	_ "embed"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/hashicorp/hcl/v2"

	stackhcl "github.com/obcd/obcd/hcl"
)

// ContainerACMEDir is the webroot nginx serves /.well-known/acme-challenge/
// from on plain HTTP (certbot --webroot -w ContainerACMEDir).
const ContainerACMEDir = "/var/www/acme"

// nginxStatusPath is the stub_status location the nginx exporter scrapes.
const nginxStatusPath = "/nginx_status"

// nginxStatusAllow are the networks allowed to read stub_status: loopback
// for the container's healthcheck and the private ranges Docker networks
// are allocated from, for the exporter.
var nginxStatusAllow = []string{"127.0.0.1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}

//go:embed files/nginx.conf.tmpl
var nginxConfTemplateText string

var nginxConfTemplate = template.Must(template.New("nginx.conf").
	Option("missingkey=error").Parse(nginxConfTemplateText))

// nginxConf is everything nginx.conf.tmpl prints. Every string in it has
// been validated so that it cannot break out of its directive.
type nginxConf struct {
	Source, Environment string

	ServerNames []string
	HTTPPort    int
	HTTPSPort   int
	StatusPort  int
	// HTTPSSuffix is ":<port>" in the redirect when HTTPS is not on 443.
	HTTPSSuffix string

	TLSCert, TLSKey string
	HSTS            string // Strict-Transport-Security value; "" sends none

	UpstreamURL      string // http://<web service>:<port>
	ProxyReadTimeout int    // seconds
	BodySize         string // client_max_body_size; "" keeps nginx's default

	StaticDir, MediaDir, ACMEDir string // MediaDir is "" unless media is local
	AdminAllow                   []string
	MetricsPath                  string // exact path, without a trailing slash
	StatusPath                   string
	StatusAllow                  []string
	ResolveTTL                   string // resolver valid=, NginxResolveTTL
}

// renderNginx renders nginx.conf for the first nginx service of the stack,
// or nothing when the stack has none.
func renderNginx(s *stackhcl.Stack) ([]Artifact, error) {
	svc := s.First(stackhcl.KindNginx)
	if svc == nil || svc.Nginx == nil {
		return nil, nil
	}
	conf, err := newNginxConf(s, svc)
	if err != nil {
		return nil, fmt.Errorf("nginx service %q: %w", svc.Name, err)
	}
	var buf bytes.Buffer
	if err := nginxConfTemplate.Execute(&buf, conf); err != nil {
		return nil, fmt.Errorf("nginx service %q: execute nginx.conf template: %w", svc.Name, err)
	}
	return []Artifact{{Path: PathNginx, Mode: ModePublic, Data: buf.Bytes()}}, nil
}

// NginxExporterScrapeURI is the stub_status URL the nginx exporter scrapes
// on the stack network (its -nginx.scrape-uri flag). A nil nginx means the
// stack's first nginx service; "" when there is none.
func NginxExporterScrapeURI(s *stackhcl.Stack, nginx *stackhcl.Service) string {
	if nginx == nil {
		nginx = s.First(stackhcl.KindNginx)
	}
	if nginx == nil || nginx.Nginx == nil {
		return ""
	}
	return fmt.Sprintf("http://%s:%d%s", nginx.Name, nginx.Nginx.StatusPort, nginxStatusPath)
}

// httpsSuffix is the port part of the HTTP-to-HTTPS redirect: where users
// reach HTTPS. That is the public URL's port when it names one (nginx may
// listen on 443 behind a published 18443), else nginx's own HTTPS port
// when it is not 443.
func httpsSuffix(publicURL string, httpsPort int) string {
	if u, err := url.Parse(publicURL); err == nil && u.Scheme == "https" && u.Port() != "" {
		if u.Port() == "443" {
			return ""
		}
		return ":" + u.Port()
	}
	if httpsPort != 443 {
		return ":" + strconv.Itoa(httpsPort)
	}
	return ""
}

// NginxResolveTTL is how long nginx keeps the web service's addresses
// before it asks Docker's DNS again. A replica leaving the alias may still
// be sent requests for this long, so a deploy drains retired replicas for
// longer than this.
const NginxResolveTTL = 5 * time.Second

func newNginxConf(s *stackhcl.Stack, svc *stackhcl.Service) (*nginxConf, error) {
	ng, dj := svc.Nginx, &s.Django
	conf := &nginxConf{
		Source: path.Base(s.File), Environment: s.Environment,
		HTTPPort: ng.HTTPPort, HTTPSPort: ng.HTTPSPort, StatusPort: ng.StatusPort,
		TLSCert: ng.TLSCert, TLSKey: ng.TLSKey,
		StaticDir: ContainerStaticDir, ACMEDir: ContainerACMEDir,
		StatusPath: nginxStatusPath, StatusAllow: nginxStatusAllow,
		BodySize:   nginxSize(dj.UploadMaxBytes),
		ResolveTTL: fmt.Sprintf("%ds", int(NginxResolveTTL/time.Second)),
	}
	svcAttr := func(attr string) (string, hcl.Range) {
		return fmt.Sprintf("service %q %q %s", svc.Kind, svc.Name, attr), rangeOf(svc.Ranges, attr, svc.DeclRange)
	}
	if err := checkNginxPorts(conf, svcAttr); err != nil {
		return nil, err
	}
	conf.HTTPSSuffix = httpsSuffix(s.PublicURL, conf.HTTPSPort)
	for _, f := range []struct{ attr, value string }{{"tls_cert", ng.TLSCert}, {"tls_key", ng.TLSKey}} {
		if err := checkConfigPath(f.value); err != nil {
			attr, at := svcAttr(f.attr)
			return nil, &InvalidValueError{Attr: attr, Value: f.value, Reason: err.Error(), Subject: at}
		}
	}
	var err error
	if conf.ServerNames, err = allowedHosts(s); err != nil {
		return nil, err
	}
	if len(conf.ServerNames) == 0 {
		return nil, &InvalidValueError{Attr: "django.allowed_hosts", Reason: "nginx needs a server name: set allowed_hosts or the environment's domain",
			Subject: rangeOf(dj.Ranges, "allowed_hosts", dj.DeclRange)}
	}
	if conf.UpstreamURL, conf.ProxyReadTimeout, err = nginxUpstream(s, svc); err != nil {
		return nil, err
	}
	if conf.AdminAllow, err = adminAllowedIPs(s); err != nil {
		return nil, err
	}
	if conf.MetricsPath, err = nginxMetricsPath(dj); err != nil {
		return nil, err
	}
	if conf.HSTS, err = hstsValue(dj); err != nil {
		return nil, err
	}
	if dj.UploadMaxBytes < 0 {
		return nil, &InvalidValueError{Attr: "django.upload_max_size", Value: strconv.FormatInt(dj.UploadMaxBytes, 10),
			Reason: "must not be negative", Subject: rangeOf(dj.Ranges, "upload_max_size", dj.DeclRange)}
	}
	if dj.MediaStorage == "local" {
		conf.MediaDir = ContainerMediaDir
	}
	return conf, nil
}

func checkNginxPorts(conf *nginxConf, svcAttr func(string) (string, hcl.Range)) error {
	seen := map[int]string{}
	for _, p := range []struct {
		attr string
		port int
	}{{"http_port", conf.HTTPPort}, {"https_port", conf.HTTPSPort}, {"status_port", conf.StatusPort}} {
		attr, at := svcAttr(p.attr)
		if p.port < 1 || p.port > 65535 {
			return &InvalidValueError{Attr: attr, Value: strconv.Itoa(p.port), Reason: "is not a TCP port (1-65535)", Subject: at}
		}
		if other, dup := seen[p.port]; dup {
			return &InvalidValueError{Attr: attr, Value: strconv.Itoa(p.port), Reason: "is already used by " + other, Subject: at}
		}
		seen[p.port] = p.attr
	}
	return nil
}

// nginxUpstream returns the URL nginx proxies to and the proxy read
// timeout: gunicorn's worker timeout plus a margin, so gunicorn gives up
// on a stuck request first.
func nginxUpstream(s *stackhcl.Stack, svc *stackhcl.Service) (string, int, error) {
	attr := fmt.Sprintf("service %q %q upstream", svc.Kind, svc.Name)
	at := rangeOf(svc.Ranges, "upstream", svc.DeclRange)
	web := s.Service(svc.Nginx.Upstream)
	if web == nil {
		return "", 0, &InvalidValueError{Attr: attr, Value: svc.Nginx.Upstream, Reason: "names no service of the stack", Subject: at}
	}
	if !serviceName.MatchString(web.Name) {
		return "", 0, &InvalidValueError{Attr: attr, Value: web.Name, Reason: "is not a DNS name nginx can resolve", Subject: at}
	}
	if web.Port < 1 || web.Port > 65535 {
		return "", 0, &InvalidValueError{Attr: fmt.Sprintf("service %q %q port", web.Kind, web.Name), Value: strconv.Itoa(web.Port),
			Reason: "is not a TCP port (1-65535)", Subject: rangeOf(web.Ranges, "port", web.DeclRange)}
	}
	timeout := 60
	if web.Web != nil && web.Web.Timeout > 0 {
		timeout = web.Web.Timeout + 5
	}
	return fmt.Sprintf("http://%s:%d", web.Name, web.Port), timeout, nil
}

// nginxMetricsPath returns the metrics path nginx refuses publicly, without
// its trailing slash; the template denies both it and everything below.
func nginxMetricsPath(dj *stackhcl.Django) (string, error) {
	metricsPath := dj.Metrics.Path
	base := strings.TrimSuffix(metricsPath, "/")
	invalid := func(reason string) error {
		return &InvalidValueError{Attr: "django.metrics.path", Value: metricsPath, Reason: reason, Subject: dj.DeclRange}
	}
	if err := checkConfigPath(metricsPath); err != nil {
		return "", invalid(err.Error())
	}
	switch base {
	case "", "/static", "/media", "/admin", "/.well-known":
		return "", invalid("must not be / or a path nginx already routes (/static/, /media/, /admin/, /.well-known/)")
	}
	return base, nil
}

// hstsValue is the Strict-Transport-Security header nginx sends, or "" when
// django.security.hsts_seconds is 0.
func hstsValue(dj *stackhcl.Django) (string, error) {
	sec := dj.Security
	if sec.HSTSSeconds < 0 {
		return "", &InvalidValueError{Attr: "django.security.hsts_seconds", Value: strconv.Itoa(sec.HSTSSeconds),
			Reason: "must not be negative", Subject: dj.DeclRange}
	}
	if sec.HSTSSeconds == 0 {
		return "", nil
	}
	value := fmt.Sprintf("max-age=%d; includeSubDomains", sec.HSTSSeconds)
	if sec.HSTSPreload {
		value += "; preload"
	}
	return value, nil
}

// nginxSize writes a byte count in nginx's size syntax, exactly: "100m"
// for 104857600. 0 gives "", which keeps nginx's default.
func nginxSize(n int64) string {
	switch {
	case n <= 0:
		return ""
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "m"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// InvalidValueError says that a stack value cannot be written into an
// artifact's syntax. Attr names the stack attribute to fix.
type InvalidValueError struct {
	Attr    string // e.g. django.security.admin_allowed_ips[1]
	Value   string
	Reason  string
	Subject hcl.Range // where the attribute is set, when known
}

func (e *InvalidValueError) Error() string {
	loc := ""
	if e.Subject.Filename != "" {
		loc = e.Subject.String() + ": "
	}
	if e.Value == "" {
		return fmt.Sprintf("%s%s: %s", loc, e.Attr, e.Reason)
	}
	return fmt.Sprintf("%s%s = %q: %s", loc, e.Attr, e.Value, e.Reason)
}

func rangeOf(ranges map[string]hcl.Range, attr string, fallback hcl.Range) hcl.Range {
	if r, ok := ranges[attr]; ok {
		return r
	}
	return fallback
}

var (
	// hostName is a Django ALLOWED_HOSTS entry nginx accepts as a
	// server_name: a DNS name or IPv4 address, optionally with a leading
	// dot (the domain and all its subdomains, in both programs).
	hostName = regexp.MustCompile(`^\.?[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$`)
	// serviceName is a service name on the stack network.
	serviceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// allowedHosts returns django.allowed_hosts, or the environment's domain
// when the list is empty, each checked to be a plain host name.
func allowedHosts(s *stackhcl.Stack) ([]string, error) {
	dj := &s.Django
	if len(dj.AllowedHosts) == 0 {
		if s.Domain == "" {
			return nil, nil
		}
		if !hostName.MatchString(s.Domain) {
			return nil, &InvalidValueError{Attr: fmt.Sprintf("environment %q domain", s.Environment), Value: s.Domain,
				Reason: "is not a host name", Subject: s.EnvRange}
		}
		return []string{s.Domain}, nil
	}
	for i, host := range dj.AllowedHosts {
		if !hostName.MatchString(host) {
			return nil, &InvalidValueError{Attr: fmt.Sprintf("django.allowed_hosts[%d]", i), Value: host,
				Reason:  `is not a host name; write names such as "example.org" or ".example.org" ("*" is not supported)`,
				Subject: rangeOf(dj.Ranges, "allowed_hosts", dj.DeclRange)}
		}
	}
	return dj.AllowedHosts, nil
}

// adminAllowedIPs parses django.security.admin_allowed_ips into canonical
// addresses and prefixes; a prefix with host bits set is refused because
// it usually means a typo.
func adminAllowedIPs(s *stackhcl.Stack) ([]string, error) {
	dj := &s.Django
	out := make([]string, 0, len(dj.Security.AdminAllowedIPs))
	for i, entry := range dj.Security.AdminAllowedIPs {
		invalid := func(reason string) error {
			return &InvalidValueError{Attr: fmt.Sprintf("django.security.admin_allowed_ips[%d]", i), Value: entry,
				Reason: reason, Subject: dj.DeclRange}
		}
		if strings.Contains(entry, "/") {
			prefix, err := netip.ParsePrefix(entry)
			if err != nil {
				return nil, invalid(`is not a CIDR such as "10.0.0.0/8"`)
			}
			if prefix != prefix.Masked() {
				return nil, invalid(fmt.Sprintf("has host bits set; did you mean %s?", prefix.Masked()))
			}
			out = append(out, prefix.String())
			continue
		}
		addr, err := netip.ParseAddr(entry)
		if err != nil || addr.Zone() != "" {
			return nil, invalid(`is not an IP address such as "203.0.113.7" or a CIDR such as "10.0.0.0/8"`)
		}
		out = append(out, addr.String())
	}
	return out, nil
}

// checkConfigPath accepts an absolute path that needs no quoting in
// nginx.conf.
func checkConfigPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("must be an absolute path")
	}
	if i := strings.IndexFunc(p, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune(`;'"{}$#\`, r)
	}); i >= 0 {
		return fmt.Errorf("must not contain whitespace, quotes, or any of ; { } $ # \\ (found %q)", p[i:i+1])
	}
	return nil
}
