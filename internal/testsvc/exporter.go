package testsvc

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// PostgresExporterBin is Debian's postgres_exporter (0.11).
const PostgresExporterBin = "/usr/bin/prometheus-postgres-exporter"

// Exporter is a Prometheus exporter started by a test.
type Exporter struct {
	Addr string // host:port of its /metrics
	proc *process
}

// StartPostgresExporter starts the real postgres_exporter with env, the
// DATA_SOURCE_* and PG_EXPORTER_* variables a rendered stack gives it,
// on a free port (PG_EXPORTER_WEB_LISTEN_ADDRESS is replaced), and waits
// until it serves /metrics.
func StartPostgresExporter(t testing.TB, env map[string]string) *Exporter {
	t.Helper()
	RequireBinaries(t, PostgresExporterBin)
	dir := Dir(t)
	e := &Exporter{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))}
	vars := map[string]string{}
	for key, value := range env {
		vars[key] = value
	}
	vars["PG_EXPORTER_WEB_LISTEN_ADDRESS"] = e.Addr
	cmd := command(t, dir, vars, PostgresExporterBin)
	e.proc = startProcess(t, "postgres_exporter on "+e.Addr, cmd, filepath.Join(dir, "exporter.log"), syscall.SIGTERM)
	e.proc.waitReady(t, 15*time.Second, func(ctx context.Context) error {
		_, err := e.Metrics(ctx)
		return err
	})
	return e
}

// Metrics is one scrape of /metrics.
func (e *Exporter) Metrics(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.Addr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	return string(body), nil
}

// Log is the tail of the exporter's output.
func (e *Exporter) Log() string { return e.proc.logTail(16000) }
