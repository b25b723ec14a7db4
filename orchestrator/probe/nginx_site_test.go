package probe_test

// The public-site checks against the real nginx: Debian's nginx runs the
// nginx.conf obcd renders for the OBCMS stack, in front of a stand-in for
// Django, and every site check passes through it: HTTPS with HSTS, the 301
// from HTTP, a bad Host header refused, CSRF on a form, throttling (429)
// and a CORS preflight. nginx itself answers the first three; the last
// three are Django's answers, which the rendered proxying must carry.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/templates"
)

// standInDjango answers as the OBCMS app does where the site checks look:
// /health/, a login form with its CSRF token and cookie, an API that
// throttles after three requests, and CORS preflights for one origin.
func standInDjango(origin string) http.Handler {
	var apiHits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/health/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("/accounts/login/", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "csrftoken", Value: "t0k3n", Path: "/", Secure: true, SameSite: http.SameSiteLaxMode})
		fmt.Fprint(w, `<form method="post"><input type="hidden" name="csrfmiddlewaretoken" value="f0rm"></form>`)
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			if r.Header.Get("Origin") == origin {
				w.Header().Set("Access-Control-Allow-Origin", origin)
				w.Header().Set("Access-Control-Allow-Methods", "GET, OPTIONS")
			}
			w.WriteHeader(http.StatusOK)
			return
		}
		if apiHits.Add(1) > 3 {
			w.Header().Set("Retry-After", "60")
			http.Error(w, `{"detail":"Request was throttled."}`, http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, `[]`)
	})
	return mux
}

func writeCert(t *testing.T, certPath, keyPath string, hosts []string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: hosts[0]}, DNSNames: hosts,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSiteChecks_AgainstTheRenderedNginxConfOnRealNginx(t *testing.T) {
	nginxBin := "/usr/sbin/nginx"
	if _, err := os.Stat(nginxBin); err != nil {
		t.Fatalf("nginx is not installed (bash .ci/deps installs it): %v", err)
	}
	const origin = "https://portal.obcms.example.org"
	app := httptest.NewServer(standInDjango(origin))
	defer app.Close()

	loader := stackhcl.NewLoader(stackhcl.Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }})
	stack, diags := loader.Load("../../stacks/obcms.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	prefix := t.TempDir()
	ng := stack.First(stackhcl.KindNginx).Nginx
	ng.HTTPPort, ng.HTTPSPort, ng.StatusPort = testsvc.FreePort(t), testsvc.FreePort(t), testsvc.FreePort(t)
	ng.TLSCert, ng.TLSKey = filepath.Join(prefix, "tls", "fullchain.pem"), filepath.Join(prefix, "tls", "privkey.pem")
	writeCert(t, ng.TLSCert, ng.TLSKey, []string{stack.Domain})
	secrets := templates.MapSecrets{}
	for _, sec := range stack.Secrets {
		secrets[sec.Name] = "test-value-of-" + sec.Name
	}
	artifacts, err := templates.Render(stack, secrets)
	if err != nil {
		t.Fatal(err)
	}
	conf := ""
	for _, a := range artifacts {
		if a.Path == templates.PathNginx {
			conf = string(a.Data)
		}
	}
	// Two lines name the container's world: the app's name on the
	// network, and the pid file. Here they are the stand-in and the prefix.
	web := stack.First(stackhcl.KindWeb)
	for old, repl := range map[string]string{
		fmt.Sprintf("set $django_upstream http://%s:%d;", web.Name, web.Port): "set $django_upstream " + app.URL + ";",
		"pid /tmp/nginx.pid;": "pid " + filepath.Join(prefix, "nginx.pid") + ";",
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("the rendered nginx.conf has no %q:\n%s", old, conf)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// Its log goes to a file: its workers would hold a pipe open past
	// the master. SIGQUIT stops them all; the master dies with the test.
	logFile, err := os.Create(filepath.Join(prefix, "nginx.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	nginx := exec.Command(nginxBin, "-e", "stderr", "-p", prefix+"/", "-c", confPath, "-g", "daemon off;")
	nginx.Stdout, nginx.Stderr = logFile, logFile
	nginx.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
	if err := nginx.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nginx.Process.Signal(syscall.SIGQUIT); _ = nginx.Wait() })
	nginxLog := logOf(logFile.Name())
	awaitListening(t, ng.HTTPSPort, nginxLog)

	// The site's name resolves to this machine, as DNS would send it to nginx.
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	toHere := func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, _ := net.SplitHostPort(addr)
		return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}
	client := &http.Client{
		Transport:     &http.Transport{DialContext: toHere, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	site := fmt.Sprintf("https://%s:%d", stack.Domain, ng.HTTPSPort)
	plain := fmt.Sprintf("http://%s:%d", stack.Domain, ng.HTTPPort)
	for _, c := range []struct {
		name string
		cfg  probe.HTTPConfig
	}{
		{"https with HSTS", probe.HTTPConfig{URL: site + "/health/", ExpectHeaders: map[string]string{"Strict-Transport-Security": "max-age="}}},
		{"301 to https", probe.HTTPConfig{URL: plain + "/", RedirectToHTTPS: true}},
		{"bad Host refused", probe.HTTPConfig{URL: site + "/", BadHostRejected: true}},
		{"CSRF on a form", probe.HTTPConfig{URL: site + "/accounts/login/", CSRFToken: true}},
		{"throttling", probe.HTTPConfig{URL: site + "/api/", ThrottleAfter: 5}},
		{"CORS preflight", probe.HTTPConfig{URL: site + "/api/", CORSOrigin: origin}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Client = client
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if attempt := probe.HTTP(c.cfg).Check(ctx); attempt.Outcome != probe.Pass {
				t.Errorf("%s through nginx: %s\nnginx:\n%s", c.name, attempt.Message, nginxLog.String())
			}
		})
	}

	// The checks can fail here: HSTS that nginx does not send, and a bad
	// Host that reaches the app.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if attempt := probe.HTTP(probe.HTTPConfig{URL: app.URL + "/health/", ExpectHeaders: map[string]string{"Strict-Transport-Security": "max-age="}}).Check(ctx); attempt.Outcome == probe.Pass {
		t.Error("the HSTS check passed against the app without nginx")
	}
	if attempt := probe.HTTP(probe.HTTPConfig{URL: app.URL + "/health/", BadHostRejected: true}).Check(ctx); attempt.Outcome == probe.Pass {
		t.Error("the bad-Host check passed against the app without nginx, which answers any Host")
	}
}

// logOf reads a log file when printed.
type logOf string

func (l logOf) String() string {
	data, _ := os.ReadFile(string(l))
	return string(data)
}

// awaitListening waits, up to 10 s, until nginx accepts on port.
func awaitListening(t *testing.T, port int, log fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %d: %v\n%s", port, err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
