package probe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obcd/obcd/internal/testsvc"
)

// monitorDeadline bounds a probe against a real server: Prometheus's
// first scrape and rule evaluation take a second or two.
const monitorDeadline = 15 * time.Second

// runMonitorProbe polls check through Run until it passes, fails fatally
// or the deadline passes, and returns its verdict.
func runMonitorProbe(t *testing.T, kind string, check Checker, deadline time.Duration) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	return Run(ctx, []Spec{{Name: t.Name(), Kind: kind, Check: check, Timeout: 3 * time.Second, Interval: 250 * time.Millisecond}})[0]
}

func monitorWantPass(t *testing.T, result Result) {
	t.Helper()
	if result.Status != StatusPass {
		t.Fatalf("status %s after %d attempts, want pass: %s", result.Status, result.Attempts, result.Message)
	}
	t.Logf("pass: %s", result.Message)
}

func monitorWantFail(t *testing.T, result Result, wantInMessage ...string) {
	t.Helper()
	if result.Status != StatusFail {
		t.Fatalf("status %s after %d attempts, want fail: %s", result.Status, result.Attempts, result.Message)
	}
	for _, want := range wantInMessage {
		if !strings.Contains(result.Message, want) {
			t.Errorf("message %q does not contain %q", result.Message, want)
		}
	}
	t.Logf("fail: %s", result.Message)
}

// monitorClosedAddr is a loopback address nothing listens on.
func monitorClosedAddr(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
}

// monitorMetricsServer is an up scrape target.
func monitorMetricsServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# TYPE obcd_test_up gauge\nobcd_test_up 1")
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// monitorPrometheusYAML scrapes the job "app" at upAddr and "dead" at downAddr
// every second, evaluates rules/*.yml every second, and sends alerts to
// alertmanagerAddr unless it is "".
func monitorPrometheusYAML(upAddr, downAddr, alertmanagerAddr string) string {
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n")
	b.WriteString("rule_files: [\"rules/*.yml\"]\n")
	if alertmanagerAddr != "" {
		fmt.Fprintf(&b, "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [%q]\n", alertmanagerAddr)
	}
	fmt.Fprintf(&b, "scrape_configs:\n  - job_name: app\n    static_configs: [{targets: [%q]}]\n", upAddr)
	fmt.Fprintf(&b, "  - job_name: dead\n    static_configs: [{targets: [%q]}]\n", downAddr)
	return b.String()
}

const monitorGoodRules = `groups:
  - name: obcd-test
    rules:
      - alert: TargetDown
        expr: up == 0
        for: 1m
        labels: {severity: critical}
`

// monitorBrokenRules fails at every evaluation, whatever has been scraped:
// one-to-one matching on no labels finds two series on the right.
const monitorBrokenRules = `groups:
  - name: obcd-broken
    rules:
      - record: obcd:duplicate
        expr: vector(1) * on() (vector(1) or label_replace(vector(1), "a", "b", "", ""))
`

func TestPrometheus_RealServer(t *testing.T) {
	t.Parallel()
	upAddr, downAddr := monitorMetricsServer(t), monitorClosedAddr(t)
	prom := testsvc.StartPrometheus(t, monitorPrometheusYAML(upAddr, downAddr, ""), map[string]string{"rules/obcd.yml": monitorGoodRules})

	t.Run("TargetsDownJobFailsNamingItsLastError", func(t *testing.T) {
		t.Parallel()
		// Both ways of expecting the down job fail only at the deadline,
		// so they share one Run.
		ctx, cancel := context.WithTimeout(context.Background(), monitorDeadline)
		defer cancel()
		results := Run(ctx, []Spec{
			{Name: "expected-jobs", Check: Prometheus(PrometheusConfig{URL: prom.URL, Mode: PrometheusTargets, ExpectJobs: []string{"app", "dead"}})},
			{Name: "every-job", Check: Prometheus(PrometheusConfig{URL: prom.URL, Mode: PrometheusTargets})},
		})
		for _, result := range results {
			monitorWantFail(t, result, `job "dead" target http://`+downAddr+"/metrics is down", "connection refused")
			if strings.Contains(result.Message, `job "app" target`) {
				t.Errorf("%s: message blames the up job: %s", result.Name, result.Message)
			}
		}
	})
	t.Run("TargetsUpJobPasses", func(t *testing.T) {
		t.Parallel()
		check := Prometheus(PrometheusConfig{URL: prom.URL, Mode: PrometheusTargets, ExpectJobs: []string{"app"}})
		monitorWantPass(t, runMonitorProbe(t, "prometheus", check, monitorDeadline))
	})
	t.Run("TargetsMissingJobFails", func(t *testing.T) {
		t.Parallel()
		check := Prometheus(PrometheusConfig{URL: prom.URL, Mode: PrometheusTargets, ExpectJobs: []string{"celery"}})
		monitorWantFail(t, runMonitorProbe(t, "prometheus", check, 2*time.Second), `job "celery" has no active targets`, "app, dead")
	})
	t.Run("RulesLoadedPasses", func(t *testing.T) {
		t.Parallel()
		check := Prometheus(PrometheusConfig{URL: prom.URL, Mode: PrometheusRules})
		result := runMonitorProbe(t, "prometheus", check, monitorDeadline)
		monitorWantPass(t, result)
		if !strings.Contains(result.Message, "1 rules in 1 groups") {
			t.Errorf("message %q does not count the one rule in one group", result.Message)
		}
	})
	t.Run("RulesFewerThanMinFails", func(t *testing.T) {
		t.Parallel()
		check := Prometheus(PrometheusConfig{URL: prom.URL, Mode: PrometheusRules, MinRules: 5})
		monitorWantFail(t, runMonitorProbe(t, "prometheus", check, 2*time.Second), "expected at least 5 rules", "1 rules in 1 groups")
	})
	t.Run("AlertmanagersNoneConfiguredFails", func(t *testing.T) {
		t.Parallel()
		check := Prometheus(PrometheusConfig{URL: prom.URL, Mode: PrometheusAlertmanagers})
		monitorWantFail(t, runMonitorProbe(t, "prometheus", check, 3*time.Second), "expected at least one active Alertmanager", "has none")
	})
}

func TestPrometheus_AlertmanagersPassWithARealAlertmanager(t *testing.T) {
	t.Parallel()
	am := testsvc.StartAlertmanager(t, "route: {receiver: \"null\"}\nreceivers: [{name: \"null\"}]\n")
	prom := testsvc.StartPrometheus(t, monitorPrometheusYAML(monitorMetricsServer(t), monitorClosedAddr(t), am.Addr), map[string]string{"rules/obcd.yml": monitorGoodRules})
	check := Prometheus(PrometheusConfig{URL: prom.URL, Mode: PrometheusAlertmanagers})
	result := runMonitorProbe(t, "prometheus", check, monitorDeadline)
	monitorWantPass(t, result)
	if !strings.Contains(result.Message, am.Addr) {
		t.Errorf("message %q does not name the Alertmanager at %s", result.Message, am.Addr)
	}
}

func TestPrometheus_RuleFailingToEvaluateFailsNamingItsError(t *testing.T) {
	t.Parallel()
	prom := testsvc.StartPrometheus(t, monitorPrometheusYAML(monitorMetricsServer(t), monitorClosedAddr(t), ""), map[string]string{"rules/broken.yml": monitorBrokenRules})
	check := Prometheus(PrometheusConfig{URL: prom.URL, Mode: PrometheusRules})
	monitorWantFail(t, runMonitorProbe(t, "prometheus", check, monitorDeadline),
		`rule "obcd:duplicate" in group "obcd-broken"`, "duplicate series", "1 failing to evaluate")
}

func TestPrometheus_UnreachableFails(t *testing.T) {
	check := Prometheus(PrometheusConfig{URL: "http://" + monitorClosedAddr(t), Mode: PrometheusTargets})
	monitorWantFail(t, runMonitorProbe(t, "prometheus", check, time.Second), "connection refused")
}

func TestPrometheus_UnknownModeIsFatal(t *testing.T) {
	attempt := Prometheus(PrometheusConfig{URL: "http://127.0.0.1:9090", Mode: "tagrets"}).Check(context.Background())
	if attempt.Outcome != Fatal || !strings.Contains(attempt.Message, `"tagrets"`) {
		t.Fatalf("attempt %+v, want fatal naming the mode", attempt)
	}
}

func TestPrometheus_APIErrorFailsWithPrometheusError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"status":"error","errorType":"unavailable","error":"TSDB not ready"}`)
	}))
	defer srv.Close()
	attempt := Prometheus(PrometheusConfig{URL: srv.URL, Mode: PrometheusRules}).Check(context.Background())
	if attempt.Outcome != Fail || !strings.Contains(attempt.Message, "TSDB not ready") || !strings.Contains(attempt.Message, "503") {
		t.Fatalf("attempt %+v, want a failure with Prometheus's error and status", attempt)
	}
}

// TestPrometheus_TargetsOfReplicasThatLeftDoNotFailADiscoveredJob: after
// a web roll, Prometheus keeps the replicas that left as down targets
// until its DNS refresh. With the job's replica count known, every
// replica up passes (and says how many stale targets it saw); one
// replica down still fails; without the count, any down target fails.
func TestPrometheus_TargetsOfReplicasThatLeftDoNotFailADiscoveredJob(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"success","data":{"activeTargets":[
			{"scrapePool":"django","scrapeUrl":"http://10.0.0.5:8000/metrics","health":"up"},
			{"scrapePool":"django","scrapeUrl":"http://10.0.0.6:8000/metrics","health":"up"},
			{"scrapePool":"django","scrapeUrl":"http://10.0.0.3:8000/metrics","health":"down","lastError":"connect: no route to host"},
			{"scrapePool":"redis","scrapeUrl":"http://redis-exporter:9121/metrics","health":"up"}]}}`)
	}))
	t.Cleanup(srv.Close)
	check := func(discovered map[string]int) Attempt {
		return Prometheus(PrometheusConfig{URL: srv.URL, Mode: PrometheusTargets, ExpectJobs: []string{"django", "redis"}, Discovered: discovered}).
			Check(context.Background())
	}
	if a := check(map[string]int{"django": 2}); a.Outcome != Pass || !strings.Contains(a.Message, "1 more of replicas that left") {
		t.Errorf("2 replicas up of 2, one stale target: %+v, want a pass that mentions the stale target", a)
	}
	if a := check(map[string]int{"django": 3}); a.Outcome == Pass || !strings.Contains(a.Message, "10.0.0.3") {
		t.Errorf("2 replicas up of 3: %+v, want a failure naming the down target", a)
	}
	if a := check(nil); a.Outcome == Pass {
		t.Errorf("a down target with no replica count: %+v, want a failure", a)
	}
}

// TestPrometheus_ADownTargetIsDefiniteANewOneIsNot: on demand, a target
// of a static job that Prometheus reports down is an answer, reported at
// once; one it has not scraped yet (a replica that just started), or one
// of a job found by DNS, only wants time.
func TestPrometheus_ADownTargetIsDefiniteANewOneIsNot(t *testing.T) {
	for health, definite := range map[string]bool{"down": true, "unknown": false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"status":"success","data":{"activeTargets":[
				{"scrapePool":"django","scrapeUrl":"http://web:8000/metrics","health":"up"},
				{"scrapePool":"django","scrapeUrl":"http://web2:8000/metrics","health":%q,"lastError":"dial tcp: connection refused"}]}}`, health)
		}))
		attempt := Prometheus(PrometheusConfig{URL: srv.URL, Mode: PrometheusTargets, ExpectJobs: []string{"django"}}).Check(context.Background())
		if attempt.Outcome != Fail || attempt.Definite != definite {
			t.Errorf("a %s target: outcome %v, definite %v (%s); want a failure, definite %v", health, attempt.Outcome, attempt.Definite, attempt.Message, definite)
		}
		// Found by DNS, with fewer replicas up than it has: the down one may
		// have left in a roll, and the new one is found at the next refresh.
		attempt = Prometheus(PrometheusConfig{URL: srv.URL, Mode: PrometheusTargets, ExpectJobs: []string{"django"}, Discovered: map[string]int{"django": 2}}).Check(context.Background())
		srv.Close()
		if attempt.Outcome != Fail || attempt.Definite {
			t.Errorf("a %s target of a job found by DNS: outcome %v, definite %v (%s); want a failure that is not definite", health, attempt.Outcome, attempt.Definite, attempt.Message)
		}
	}
}
