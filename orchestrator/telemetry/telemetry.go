// Package telemetry is obcd's own Prometheus metrics: probe verdicts and
// latencies, the last deploy and rollback, and build info, served by
// obcd serve or pushed to a Pushgateway after one-shot commands.
package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/push"

	"github.com/obcd/obcd/orchestrator/probe"
)

// Metrics holds one registry per obcd process and environment.
type Metrics struct {
	registry *prometheus.Registry

	probeSuccess  *prometheus.GaugeVec
	probeLatency  *prometheus.HistogramVec
	deployTime    *prometheus.GaugeVec
	deployOutcome *prometheus.GaugeVec
	buildInfo     *prometheus.GaugeVec
}

// Operations whose last run is recorded.
const (
	OperationDeploy   = "deploy"
	OperationRollback = "rollback"
)

// New registers obcd's metrics for one environment.
func New(stack, environment, version string) *Metrics {
	labels := prometheus.Labels{"stack": stack, "environment": environment}
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		probeSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "obcd_probe_success", Help: "1 when the probe's last verdict was a pass, else 0.", ConstLabels: labels,
		}, []string{"probe", "kind", "component", "critical"}),
		probeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "obcd_probe_duration_seconds", Help: "Latency of the probe's last attempt.", ConstLabels: labels,
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"probe", "kind"}),
		deployTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "obcd_last_operation_timestamp_seconds", Help: "Unix time the last deploy or rollback finished.", ConstLabels: labels,
		}, []string{"operation"}),
		deployOutcome: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "obcd_last_operation_success", Help: "1 when the last deploy or rollback succeeded, else 0.", ConstLabels: labels,
		}, []string{"operation"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "obcd_build_info", Help: "Always 1; labels carry obcd's version.",
		}, []string{"version", "goversion"}),
	}
	m.registry.MustRegister(m.probeSuccess, m.probeLatency, m.deployTime, m.deployOutcome, m.buildInfo)
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	return m
}

// ObserveResults records each probe's verdict and latency. A pending
// probe records 0: no result is never a success.
func (m *Metrics) ObserveResults(results []probe.Result) {
	for _, r := range results {
		success := 0.0
		if r.Passed() {
			success = 1
		}
		m.probeSuccess.WithLabelValues(r.Name, r.Kind, r.Component, fmt.Sprint(r.Critical)).Set(success)
		if r.Attempts > 0 {
			m.probeLatency.WithLabelValues(r.Name, r.Kind).Observe(r.Latency.Seconds())
		}
	}
}

// RecordOperation records when the last deploy or rollback finished and
// whether it succeeded.
func (m *Metrics) RecordOperation(operation string, finished time.Time, succeeded bool) {
	m.deployTime.WithLabelValues(operation).Set(float64(finished.Unix()))
	outcome := 0.0
	if succeeded {
		outcome = 1
	}
	m.deployOutcome.WithLabelValues(operation).Set(outcome)
}

// Registry exposes the registry, for tests and handlers.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Push sends the metrics to a Pushgateway under job "obcd", grouped by
// instance (stack-environment; the metrics carry stack and environment
// labels themselves, which a grouping label may not repeat), replacing
// what that group held before.
func (m *Metrics) Push(ctx context.Context, url, instance string) error {
	err := push.New(url, "obcd").Gatherer(m.registry).Grouping("instance", instance).PushContext(ctx)
	if err != nil {
		return fmt.Errorf("push metrics to %s: %w", url, err)
	}
	return nil
}
