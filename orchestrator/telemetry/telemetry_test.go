package telemetry

import (
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/obcd/obcd/orchestrator/probe"
)

var _ = flag.Bool("update", false, "rewrite golden files (none in this package)")

func TestMetrics_ProbeVerdictsAndLatency(t *testing.T) {
	m := New("obcms", "staging", "v1.2.3")
	m.ObserveResults([]probe.Result{
		{Name: "web-ready", Kind: "http", Component: "web", Critical: true, Status: probe.StatusPass, Attempts: 1, Latency: 30 * time.Millisecond},
		{Name: "redis", Kind: "redis", Component: "redis", Critical: true, Status: probe.StatusFail, Attempts: 3, Latency: time.Second},
		{Name: "slow", Kind: "http", Component: "web", Status: probe.StatusPending},
	})
	if got := testutil.ToFloat64(m.probeSuccess.WithLabelValues("web-ready", "http", "web", "true")); got != 1 {
		t.Errorf("web-ready success = %v", got)
	}
	if got := testutil.ToFloat64(m.probeSuccess.WithLabelValues("redis", "redis", "redis", "true")); got != 0 {
		t.Errorf("redis success = %v", got)
	}
	if got := testutil.ToFloat64(m.probeSuccess.WithLabelValues("slow", "http", "web", "false")); got != 0 {
		t.Errorf("pending probe must record 0, got %v", got)
	}
	if n := testutil.CollectAndCount(m.probeLatency); n != 2 {
		t.Errorf("latency series = %d, want 2 (none for a probe with no attempt)", n)
	}
	expected := `
# HELP obcd_build_info Always 1; labels carry obcd's version.
# TYPE obcd_build_info gauge
`
	if err := testutil.CollectAndCompare(m.buildInfo, strings.NewReader(expected+buildInfoLine(t, m)), "obcd_build_info"); err != nil {
		t.Error(err)
	}
}

func buildInfoLine(t *testing.T, m *Metrics) string {
	t.Helper()
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "obcd_build_info" {
			labels := f.GetMetric()[0].GetLabel()
			var parts []string
			for _, l := range labels {
				parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
			}
			if !strings.Contains(strings.Join(parts, ","), `version="v1.2.3"`) {
				t.Errorf("build info labels %v lack the version", parts)
			}
			return "obcd_build_info{" + strings.Join(parts, ",") + "} 1\n"
		}
	}
	t.Fatal("no obcd_build_info")
	return ""
}

func TestMetrics_LastDeployAndRollback(t *testing.T) {
	m := New("obcms", "staging", "dev")
	m.RecordOperation(OperationDeploy, time.Unix(1700000000, 0), false)
	m.RecordOperation(OperationRollback, time.Unix(1700000100, 0), true)
	expected := `
# HELP obcd_last_operation_success 1 when the last deploy or rollback succeeded, else 0.
# TYPE obcd_last_operation_success gauge
obcd_last_operation_success{environment="staging",operation="deploy",stack="obcms"} 0
obcd_last_operation_success{environment="staging",operation="rollback",stack="obcms"} 1
# HELP obcd_last_operation_timestamp_seconds Unix time the last deploy or rollback finished.
# TYPE obcd_last_operation_timestamp_seconds gauge
obcd_last_operation_timestamp_seconds{environment="staging",operation="deploy",stack="obcms"} 1.7e+09
obcd_last_operation_timestamp_seconds{environment="staging",operation="rollback",stack="obcms"} 1.7000001e+09
`
	if err := testutil.GatherAndCompare(m.registry, strings.NewReader(expected),
		"obcd_last_operation_success", "obcd_last_operation_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}

func TestMetrics_HandlerAndPush(t *testing.T) {
	m := New("obcms", "staging", "dev")
	m.ObserveResults([]probe.Result{{Name: "x", Kind: "http", Component: "web", Status: probe.StatusPass, Attempts: 1}})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `obcd_probe_success{component="web"`) {
		t.Errorf("handler output lacks probe success:\n%s", rec.Body.String())
	}
	var pushedPath, pushedBody string
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		pushedPath, pushedBody = r.URL.Path, string(body)
		w.WriteHeader(http.StatusOK)
	}))
	defer gateway.Close()
	if err := m.Push(context.Background(), gateway.URL, "obcms-staging"); err != nil {
		t.Fatal(err)
	}
	if pushedPath != "/metrics/job/obcd/instance/obcms-staging" || !strings.Contains(pushedBody, "obcd_probe_success") {
		t.Errorf("pushed to %q: %q", pushedPath, pushedBody)
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer down.Close()
	if err := m.Push(context.Background(), down.URL, "obcms-staging"); err == nil {
		t.Error("a failing pushgateway must be an error")
	}
}
