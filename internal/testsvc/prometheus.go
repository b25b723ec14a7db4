package testsvc

// prometheus.go starts Debian's Prometheus and Alertmanager.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binaries of Debian's prometheus and prometheus-alertmanager packages.
const (
	PrometheusBin   = "/usr/bin/prometheus"
	AlertmanagerBin = "/usr/bin/prometheus-alertmanager"
)

// Prometheus is a running Prometheus server.
type Prometheus struct {
	URL        string // base URL, e.g. http://127.0.0.1:40123
	Addr       string // host:port it listens on
	Dir        string // temp dir: config, rule files, data and log
	ConfigPath string // prometheus.yml; rewrite it with WriteFile, then Reload

	t    testing.TB
	proc *process
}

// StartPrometheus starts Prometheus on a free loopback port with
// configYAML as its prometheus.yml and ruleFiles (relative path → content)
// written next to it, so that the config names them relative to its own
// dir, e.g. rule_files: ["rules/*.yml"]. The lifecycle API is on, so
// Reload works. It waits until /-/ready answers 200 and stops when the
// test ends.
func StartPrometheus(t testing.TB, configYAML string, ruleFiles map[string]string) *Prometheus {
	t.Helper()
	RequireBinaries(t, PrometheusBin)
	dir := Dir(t)
	prom := &Prometheus{Dir: dir, ConfigPath: filepath.Join(dir, "prometheus.yml"), t: t}
	prom.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
	prom.URL = "http://" + prom.Addr
	WriteFile(t, prom.ConfigPath, []byte(configYAML), 0o644)
	for name, content := range ruleFiles {
		writeBelow(t, dir, name, content)
	}
	dataDir := filepath.Join(dir, "data")
	mkdirService(t, dataDir)
	cmd := command(t, dir, nil, PrometheusBin,
		"--config.file="+prom.ConfigPath,
		"--storage.tsdb.path="+dataDir,
		"--web.listen-address="+prom.Addr,
		"--web.enable-lifecycle",
	)
	prom.proc = startProcess(t, "prometheus on "+prom.Addr, cmd, filepath.Join(dir, "prometheus.log"), syscall.SIGTERM)
	prom.proc.waitReady(t, 30*time.Second, readyProbe(prom.URL))
	return prom
}

// Reload asks Prometheus to re-read its config and rule files (POST
// /-/reload). It returns Prometheus's answer when it refuses them.
func (prom *Prometheus) Reload() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, prom.URL+"/-/reload", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reloading prometheus: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reloading prometheus: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// Stop shuts Prometheus down and waits for it.
func (prom *Prometheus) Stop() {
	prom.t.Helper()
	if err := prom.proc.stop(30 * time.Second); err != nil {
		prom.t.Fatalf("testsvc: %v", err)
	}
}

// Log returns the end of Prometheus's log.
func (prom *Prometheus) Log() string { return prom.proc.logTail(16000) }

// Alertmanager is a running Alertmanager, without clustering.
type Alertmanager struct {
	URL  string // base URL, e.g. http://127.0.0.1:40124
	Addr string // host:port it listens on
	Dir  string // temp dir: config, data and log

	t    testing.TB
	proc *process
}

// StartAlertmanager starts Alertmanager on a free loopback port with
// configYAML as its alertmanager.yml and gossip switched off. It waits
// until /-/ready answers 200 and stops when the test ends.
func StartAlertmanager(t testing.TB, configYAML string) *Alertmanager {
	t.Helper()
	RequireBinaries(t, AlertmanagerBin)
	dir := Dir(t)
	am := &Alertmanager{Dir: dir, t: t}
	am.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
	am.URL = "http://" + am.Addr
	configPath := filepath.Join(dir, "alertmanager.yml")
	WriteFile(t, configPath, []byte(configYAML), 0o644)
	dataDir := filepath.Join(dir, "data")
	mkdirService(t, dataDir)
	cmd := command(t, dir, nil, AlertmanagerBin,
		"--config.file="+configPath,
		"--storage.path="+dataDir,
		"--web.listen-address="+am.Addr,
		"--cluster.listen-address=",
	)
	am.proc = startProcess(t, "alertmanager on "+am.Addr, cmd, filepath.Join(dir, "alertmanager.log"), syscall.SIGTERM)
	am.proc.waitReady(t, 30*time.Second, readyProbe(am.URL))
	return am
}

// Stop shuts Alertmanager down and waits for it.
func (am *Alertmanager) Stop() {
	am.t.Helper()
	if err := am.proc.stop(30 * time.Second); err != nil {
		am.t.Fatalf("testsvc: %v", err)
	}
}

// Log returns the end of Alertmanager's log.
func (am *Alertmanager) Log() string { return am.proc.logTail(16000) }

// readyProbe succeeds once GET baseURL/-/ready answers 200.
func readyProbe(baseURL string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/-/ready", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /-/ready: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return nil
	}
}

// writeBelow writes content to dir/name, creating name's parent dirs;
// name must stay inside dir.
func writeBelow(t testing.TB, dir, name, content string) {
	t.Helper()
	if !filepath.IsLocal(name) {
		t.Fatalf("testsvc: file name %q must be a relative path inside the server's dir", name)
	}
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	for parent := filepath.Dir(path); parent != dir; parent = filepath.Dir(parent) {
		chownToService(t, parent)
	}
	WriteFile(t, path, []byte(content), 0o644)
}

// mkdirService makes dir (if needed) owned by the user servers run as.
func mkdirService(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	chownToService(t, dir)
}
