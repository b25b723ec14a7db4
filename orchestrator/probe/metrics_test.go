package probe_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/obcd/obcd/orchestrator/probe"
)

// metricsDjangoHandler serves what django-prometheus exposes after some
// traffic, from a real client_golang registry, leaving out the families in
// without.
func metricsDjangoHandler(t *testing.T, without ...string) http.Handler {
	t.Helper()
	registry := prometheus.NewRegistry()
	for _, name := range probe.DjangoMetrics {
		if slices.Contains(without, name) {
			continue
		}
		help := "django-prometheus " + name
		if strings.HasSuffix(name, "_total") {
			counter := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"method"})
			registry.MustRegister(counter)
			counter.WithLabelValues("GET").Add(3)
			continue
		}
		histogram := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help}, []string{"view"})
		registry.MustRegister(histogram)
		histogram.WithLabelValues("health").Observe(0.02)
	}
	// Declared by the app but never incremented: present in a real Django
	// exposition, and not required.
	exceptions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "django_http_exceptions_total_by_type_total", Help: "Count of exceptions by object type.",
	}, []string{"type"})
	registry.MustRegister(exceptions)
	return promhttp.HandlerFor(registry, promhttp.HandlerOpts{})
}

func metricsProbeOnce(t *testing.T, cfg probe.MetricsConfig) probe.Attempt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return probe.Metrics(cfg).Check(ctx)
}

func TestMetrics_DjangoRegistryPasses(t *testing.T) {
	server := httpServe(t, metricsDjangoHandler(t).ServeHTTP)
	attempt := metricsProbeOnce(t, probe.MetricsConfig{URL: server.URL + "/metrics", Require: probe.DjangoMetrics})
	httpWantPass(t, attempt, "GET "+server.URL+"/metrics", "200", "all 12 required present")
}

func TestMetrics_MissingFamiliesAreListed(t *testing.T) {
	gone := []string{"django_http_responses_total_by_status_view_method_total", "django_http_requests_latency_seconds_by_view_method"}
	server := httpServe(t, metricsDjangoHandler(t, gone...).ServeHTTP)
	attempt := metricsProbeOnce(t, probe.MetricsConfig{URL: server.URL + "/metrics", Require: probe.DjangoMetrics})
	httpWantFail(t, attempt, server.URL+"/metrics", "missing 2 of 12 required metric families", gone[1], gone[0])
	if strings.Contains(attempt.Message, "django_http_requests_total_by_method_total") {
		t.Errorf("a present family is listed as missing: %s", attempt.Message)
	}
}

func TestMetrics_DeclaredFamilyWithoutSamplesCountsAsMissing(t *testing.T) {
	body := "# HELP django_http_requests_total_by_method_total Count of requests by method.\n" +
		"# TYPE django_http_requests_total_by_method_total counter\n" +
		"# HELP python_info Python platform information\n" +
		"# TYPE python_info gauge\n" +
		`python_info{implementation="CPython",major="3",minor="11"} 1.0` + "\n"
	server := httpServe(t, httpReply(http.StatusOK, body, "Content-Type", "text/plain; version=0.0.4"))
	httpWantFail(t, metricsProbeOnce(t, probe.MetricsConfig{URL: server.URL, Require: []string{"django_http_requests_total_by_method_total"}}),
		"missing 1 of 1", "django_http_requests_total_by_method_total")
}

func TestMetrics_GarbageFailsWithTheParseError(t *testing.T) {
	server := httpServe(t, httpReply(http.StatusOK, "this is not a metrics exposition\n"))
	httpWantFail(t, metricsProbeOnce(t, probe.MetricsConfig{URL: server.URL, Require: probe.DjangoMetrics}),
		"metrics do not parse", "text format parsing error in line 1", `"this is not a metrics exposition"`)
}

func TestMetrics_EmptyBodyIsNotAPass(t *testing.T) {
	server := httpServe(t, httpReply(http.StatusOK, ""))
	httpWantFail(t, metricsProbeOnce(t, probe.MetricsConfig{URL: server.URL}), "expected metrics, got no samples")
}

func TestMetrics_NonOKStatusFails(t *testing.T) {
	server := httpServe(t, httpReply(http.StatusNotFound, "<h1>Not Found</h1>"))
	httpWantFail(t, metricsProbeOnce(t, probe.MetricsConfig{URL: server.URL + "/metrics", Require: probe.DjangoMetrics}),
		"expected status 200, got 404", `"<h1>Not Found</h1>"`)
}

func TestMetrics_ClosedPortFailsWithConnectionRefused(t *testing.T) {
	url := "http://" + httpClosedAddr(t) + "/metrics"
	httpWantFail(t, metricsProbeOnce(t, probe.MetricsConfig{URL: url}), "GET "+url, "connection refused")
}
