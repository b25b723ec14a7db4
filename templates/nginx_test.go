package templates

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/internal/testcert"
)

func renderNginxConf(t *testing.T, stack *stackhcl.Stack) string {
	t.Helper()
	artifacts, err := renderNginx(stack)
	if err != nil {
		t.Fatalf("renderNginx: %v", err)
	}
	if len(artifacts) != 1 || artifacts[0].Path != PathNginx || artifacts[0].Mode != ModePublic {
		t.Fatalf("renderNginx gave %d artifacts, want one %s (0644): %+v", len(artifacts), PathNginx, artifacts)
	}
	return string(artifacts[0].Data)
}

// nginxBlock returns the body of the block that starts with header, up to
// its closing brace at the same depth.
func nginxBlock(t *testing.T, conf, header string) string {
	t.Helper()
	start := strings.Index(conf, header+" {")
	if start < 0 {
		t.Fatalf("no %q block in nginx.conf:\n%s", header, conf)
	}
	depth := 0
	for i := start; i < len(conf); i++ {
		switch conf[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return conf[start : i+1]
			}
		}
	}
	t.Fatalf("unterminated %q block", header)
	return ""
}

// nginxDirectiveLines returns the directive lines of a block, trimmed, without
// comments and blank lines.
func nginxDirectiveLines(block string) []string {
	var out []string
	for _, line := range strings.Split(block, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// nginxSizeBytes reads an nginx size ("100m", "512k", "1048576") back.
func nginxSizeBytes(t *testing.T, size string) int64 {
	t.Helper()
	n, err := stackhcl.ParseSize(size)
	if err != nil {
		t.Fatalf("client_max_body_size %q: %v", size, err)
	}
	return n
}

// writeNginxTestCert writes an ECDSA P-256 certificate for hosts and its
// key as PEM.
func writeNginxTestCert(t *testing.T, certPath, keyPath string, hosts []string) {
	t.Helper()
	if err := testcert.Write(certPath, keyPath, hosts); err != nil {
		t.Fatal(err)
	}
}

// nginxTest renders the stack with its certificate moved into a temp
// prefix, and runs the real `nginx -t` on it.
func nginxTest(t *testing.T, nginxBin string, stack *stackhcl.Stack) string {
	t.Helper()
	prefix := t.TempDir()
	ng := stack.First(stackhcl.KindNginx).Nginx
	ng.TLSCert = filepath.Join(prefix, "tls", "fullchain.pem")
	ng.TLSKey = filepath.Join(prefix, "tls", "privkey.pem")
	writeNginxTestCert(t, ng.TLSCert, ng.TLSKey, []string{stack.Domain})
	conf := renderNginxConf(t, stack)
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nginxBin, "-t", "-e", "stderr", "-p", prefix+"/", "-c", confPath).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t failed: %v\n%s\nconfig:\n%s", err, out, conf)
	}
	for _, want := range []string{"syntax is ok", "test is successful"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nginx -t output lacks %q:\n%s", want, out)
		}
	}
	return conf
}

func lookNginx(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx is not installed (apt-get install nginx); skipping the real nginx -t check")
	}
	return bin
}

func TestNginx_RealNginxAcceptsRenderedConfig(t *testing.T) {
	nginxBin := lookNginx(t)
	for _, env := range []string{"staging", "production"} {
		t.Run(env, func(t *testing.T) {
			stack := loadOBCMS(t, env)
			conf := nginxTest(t, nginxBin, stack)

			for _, want := range []string{
				"resolver 127.0.0.11 valid=5s ipv6=off;",
				"set $django_upstream http://web:8000;",
				"return 301 https://$host$request_uri;",
				`add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;`,
				"ssl_protocols TLSv1.2 TLSv1.3;",
				"listen 443 ssl http2;",
				"server_name " + stack.Domain + ";",
				"ssl_reject_handshake on;",
				"alias " + ContainerStaticDir + "/;",
				"access_log /dev/stdout obcd;",
				"error_log stderr warn;",
			} {
				if !strings.Contains(conf, want) {
					t.Errorf("nginx.conf lacks %q", want)
				}
			}
			if strings.Contains(conf, "preload") {
				t.Errorf("hsts_preload = false, but nginx.conf sends preload")
			}
			if strings.Contains(conf, "location ^~ /media/") {
				t.Errorf("media_storage = s3, but nginx.conf serves /media/ locally")
			}
			if n := strings.Count(conf, "proxy_pass $django_upstream;"); n != 2 {
				t.Errorf("want proxy_pass through the variable in /admin/ and /, got %d", n)
			}
			if regexp.MustCompile(`proxy_pass\s+http|(?m)^\s*upstream\s`).MatchString(conf) {
				t.Errorf("proxy_pass must go through $django_upstream, not a fixed upstream")
			}

			sizes := regexp.MustCompile(`(?m)^\s*client_max_body_size (\S+);`).FindAllStringSubmatch(conf, -1)
			if len(sizes) != 1 {
				t.Fatalf("want one client_max_body_size, got %q", sizes)
			}
			if got := nginxSizeBytes(t, sizes[0][1]); got != stack.Django.UploadMaxBytes || got != 104857600 {
				t.Errorf("client_max_body_size %s = %d bytes, want upload limit %d (104857600)", sizes[0][1], got, stack.Django.UploadMaxBytes)
			}

			admin := nginxDirectiveLines(nginxBlock(t, conf, "location ^~ /admin/"))
			var want []string
			want = append(want, "location ^~ /admin/ {")
			for _, ip := range stack.Django.Security.AdminAllowedIPs {
				want = append(want, "allow "+ip+";")
			}
			want = append(want, "deny all;", "proxy_pass $django_upstream;", "}")
			if strings.Join(admin, "\n") != strings.Join(want, "\n") {
				t.Errorf("admin location:\n%s\nwant:\n%s", strings.Join(admin, "\n"), strings.Join(want, "\n"))
			}
			if len(stack.Django.Security.AdminAllowedIPs) == 0 {
				t.Errorf("the example stack should restrict the admin to some networks")
			}

			for _, header := range []string{"location = /metrics", "location ^~ /metrics/"} {
				if got := nginxDirectiveLines(nginxBlock(t, conf, header)); strings.Join(got, " ") != header+" { deny all; }" {
					t.Errorf("%s: %q, want deny all", header, got)
				}
			}

			status := strings.Join(nginxDirectiveLines(nginxBlock(t, conf, "location = /nginx_status")), " ")
			if status != "location = /nginx_status { stub_status; allow 127.0.0.1; allow 10.0.0.0/8; allow 172.16.0.0/12; allow 192.168.0.0/16; deny all; }" {
				t.Errorf("stub_status location: %s", status)
			}
			ng := stack.First(stackhcl.KindNginx).Nginx
			if !strings.Contains(conf, "listen "+strconv.Itoa(ng.StatusPort)+";") {
				t.Errorf("no server listening on status port %d", ng.StatusPort)
			}
		})
	}
}

// TestNginx_VariantsPassNginxT covers what the example stack does not use:
// local media, HSTS preload, no admin networks, no upload limit, a
// trailing-slash metrics path and HTTPS on another port.
func TestNginx_VariantsPassNginxT(t *testing.T) {
	nginxBin := lookNginx(t)
	stack := loadOBCMS(t, "staging")
	stack.Django.MediaStorage = "local"
	stack.Django.Security.HSTSPreload = true
	stack.Django.Security.AdminAllowedIPs = nil
	stack.Django.UploadMaxBytes = 0
	stack.Django.Metrics.Path = "/metrics/"
	stack.First(stackhcl.KindNginx).Nginx.HTTPSPort = 8443
	conf := nginxTest(t, nginxBin, stack)

	for _, want := range []string{
		"alias " + ContainerMediaDir + "/;",
		`"max-age=31536000; includeSubDomains; preload" always;`,
		"# django.upload_max_size is not set: nginx's default client_max_body_size (1m) applies.",
		"return 301 https://$host:8443$request_uri;",
		"location = /metrics {",
		"location ^~ /metrics/ {",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	if strings.Contains(conf, "client_max_body_size") && !strings.Contains(conf, "# django.upload_max_size is not set") {
		t.Errorf("upload limit 0 must leave client_max_body_size at nginx's default")
	}
	admin := nginxDirectiveLines(nginxBlock(t, conf, "location ^~ /admin/"))
	if strings.Join(admin, " ") != "location ^~ /admin/ { deny all; proxy_pass $django_upstream; }" {
		t.Errorf("with no admin networks the admin must be denied to all: %q", admin)
	}
	if !strings.Contains(nginxBlock(t, conf, "location ^~ /admin/"), "# django.security.admin_allowed_ips is empty") {
		t.Errorf("the closed admin location should say why")
	}
}

func TestNginx_InvalidValuesAreErrorsNotConfig(t *testing.T) {
	cases := []struct {
		name     string
		mutate   func(*stackhcl.Stack)
		wantAttr string
	}{
		{"prefix too long", func(s *stackhcl.Stack) { s.Django.Security.AdminAllowedIPs = []string{"10.0.0.0/8", "10.0.0.0/33"} }, "django.security.admin_allowed_ips[1]"},
		{"directive injection", func(s *stackhcl.Stack) { s.Django.Security.AdminAllowedIPs = []string{"1.2.3.4; evil"} }, "django.security.admin_allowed_ips[0]"},
		{"host bits set", func(s *stackhcl.Stack) { s.Django.Security.AdminAllowedIPs = []string{"10.1.2.3/8"} }, "django.security.admin_allowed_ips[0]"},
		{"not an address", func(s *stackhcl.Stack) { s.Django.Security.AdminAllowedIPs = []string{"all"} }, "django.security.admin_allowed_ips[0]"},
		{"host with a semicolon", func(s *stackhcl.Stack) { s.Django.AllowedHosts = []string{"example.org; include /etc/passwd"} }, "django.allowed_hosts[0]"},
		{"wildcard host", func(s *stackhcl.Stack) { s.Django.AllowedHosts = []string{"*"} }, "django.allowed_hosts[0]"},
		{"cert path with a space", func(s *stackhcl.Stack) { s.First(stackhcl.KindNginx).Nginx.TLSCert = "/etc/nginx/my cert.pem" }, `service "nginx" "nginx" tls_cert`},
		{"relative key path", func(s *stackhcl.Stack) { s.First(stackhcl.KindNginx).Nginx.TLSKey = "privkey.pem" }, `service "nginx" "nginx" tls_key`},
		{"quote in metrics path", func(s *stackhcl.Stack) { s.Django.Metrics.Path = `/metrics"` }, "django.metrics.path"},
		{"metrics path on static", func(s *stackhcl.Stack) { s.Django.Metrics.Path = "/static/" }, "django.metrics.path"},
		{"status port clash", func(s *stackhcl.Stack) { s.First(stackhcl.KindNginx).Nginx.StatusPort = 443 }, `service "nginx" "nginx" status_port`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stack := loadOBCMS(t, "staging")
			tc.mutate(stack)
			artifacts, err := renderNginx(stack)
			if err == nil {
				t.Fatalf("want an error, got a config:\n%s", artifacts[0].Data)
			}
			if artifacts != nil {
				t.Errorf("want no artifact with the error, got %d", len(artifacts))
			}
			var invalid *InvalidValueError
			if !errors.As(err, &invalid) {
				t.Fatalf("want *InvalidValueError, got %T: %v", err, err)
			}
			if invalid.Attr != tc.wantAttr {
				t.Errorf("error names %q, want %q (%v)", invalid.Attr, tc.wantAttr, err)
			}
		})
	}
}

func TestNginx_NoNginxServiceRendersNothing(t *testing.T) {
	stack := loadOBCMS(t, "staging")
	var kept []*stackhcl.Service
	for _, svc := range stack.Services {
		if svc.Kind != stackhcl.KindNginx {
			kept = append(kept, svc)
		}
	}
	stack.Services = kept
	artifacts, err := renderNginx(stack)
	if err != nil || len(artifacts) != 0 {
		t.Fatalf("want no artifact and no error, got %d artifacts, %v", len(artifacts), err)
	}
	if got := NginxExporterScrapeURI(stack, nil); got != "" {
		t.Errorf("scrape URI without nginx = %q, want empty", got)
	}
}

func TestNginx_ExporterScrapeURIMatchesStatusServer(t *testing.T) {
	stack := loadOBCMS(t, "staging")
	nginx := stack.First(stackhcl.KindNginx)
	nginx.Nginx.StatusPort = 9145
	if got, want := NginxExporterScrapeURI(stack, nginx), "http://nginx:9145/nginx_status"; got != want {
		t.Errorf("NginxExporterScrapeURI = %q, want %q", got, want)
	}
	conf := renderNginxConf(t, stack)
	if !strings.Contains(conf, "listen 9145;") || !strings.Contains(conf, "location = /nginx_status {") {
		t.Errorf("nginx.conf does not serve the URI the exporter scrapes")
	}
}

func TestNginx_SizeIsExact(t *testing.T) {
	for n, want := range map[int64]string{0: "", 104857600: "100m", 1 << 30: "1024m", 512 << 10: "512k", 1000: "1000", 1536: "1536"} {
		if got := nginxSize(n); got != want {
			t.Errorf("nginxSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestNginx_RedirectGoesWhereUsersReachHTTPS(t *testing.T) {
	cases := []struct {
		publicURL string
		httpsPort int
		want      string
	}{
		{"https://obcms.example.org", 443, ""},
		{"https://localhost:18443", 443, ":18443"}, // published 18443 -> 443
		{"https://obcms.example.org:443", 8443, ""},
		{"https://obcms.example.org", 8443, ":8443"},
		{"http://localhost:8080", 8443, ":8443"}, // not an HTTPS URL: nginx's own port
	}
	for _, tc := range cases {
		if got := httpsSuffix(tc.publicURL, tc.httpsPort); got != tc.want {
			t.Errorf("httpsSuffix(%q, %d) = %q, want %q", tc.publicURL, tc.httpsPort, got, tc.want)
		}
	}
}

// TestNginx_TheLongestHostnameTheStackAllows: nginx's default
// server_names_hash_bucket_size (64) refuses a server_name of 47
// characters or more; the rendered config fits the longest hostname
// validate allows (253), on the real nginx.
func TestNginx_TheLongestHostnameTheStackAllows(t *testing.T) {
	nginxBin := lookNginx(t)
	label := strings.Repeat("a", 63)
	for _, domain := range []string{strings.Repeat("b", 47) + ".example.org", label + "." + label + "." + label + "." + strings.Repeat("c", 61)} {
		stack := loadOBCMS(t, "staging")
		stack.Domain, stack.PublicURL, stack.Django.AllowedHosts = domain, "https://"+domain, []string{domain}
		conf := nginxTest(t, nginxBin, stack)
		if !strings.Contains(conf, "server_name "+domain+";") {
			t.Errorf("nginx.conf does not serve %s", domain)
		}
	}
}
