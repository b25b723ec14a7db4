package probe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/internal/testsvc/stackenv"
	"github.com/obcd/obcd/templates"
)

// envSecrets are the test values of every secret of stacks/obcms.hcl.
func envSecrets() templates.MapSecrets {
	return templates.MapSecrets{
		"django_secret_key":    "k8Fj2Lq9Xz4Pw7Rt1Vb6Nm3Hc5Yd0Ga8Se2Ui4Oo6Pp8Aa0Bb2Cc4Dd6Ee8Ff0Gg2",
		"field_encryption_key": "dGVzdC1maWVsZC1rZXktMDEyMzQ1Njc4OWFiY2RlZg==", "postgres_password": "pgSuperPass7Qm2",
		"replication_password": "replPass8Wn3Zx", "obcms_user_password": "appUserPass4Kd9",
		"obcms_admin_password": "adminUserPass5Lf1", "obcms_stats_password": "statsUserPass6Mg2",
		"grafana_admin_password": "grafanaPass7Nh3", "sentry_dsn": "https://key@sentry.example/1",
	}
}

// environment is a running staging environment of stacks/obcms.hcl made
// of real servers (PostgreSQL behind PgBouncer from the rendered files,
// Redis, Prometheus, Alertmanager) and httptest stand-ins for what Debian
// does not package or what is the app itself (Django, nginx, Grafana,
// the celery exporter).
type environment struct {
	stack      *stackhcl.Stack
	secrets    templates.MapSecrets
	db         *stackenv.Database
	redis      *testsvc.Redis
	prometheus *testsvc.Prometheus
	promConfig string
	readyDB    atomic.Bool
	slowReady  atomic.Bool
	webAddr    string
}

func startEnvironment(t testing.TB) *environment {
	t.Helper()
	e := &environment{secrets: envSecrets()}
	e.readyDB.Store(true)
	loader := stackhcl.NewLoader(stackhcl.Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }})
	stack, diags := loader.Load("../../stacks/obcms.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	e.stack = stack
	e.db = stackenv.StartDatabase(t, stack, e.secrets)
	e.db.ApplyMigrations(t, "obcms_admin", e.secrets["obcms_admin_password"], 3)
	e.redis = testsvc.StartRedis(t, testsvc.WithRedisArgs("--maxmemory", "64mb"))
	stack.Service("redis").Address = e.redis.Addr

	web := httptest.NewServer(e.django())
	t.Cleanup(web.Close)
	e.webAddr = strings.TrimPrefix(web.URL, "http://")
	stack.Service("web").Address = e.webAddr

	site := httptest.NewTLSServer(nginx(web.URL))
	t.Cleanup(site.Close)
	stack.PublicURL = site.URL
	stack.Probes = append(stack.Probes,
		&stackhcl.ProbeConfig{Name: "site-https", Insecure: ptr(true)},
		&stackhcl.ProbeConfig{Name: "site-bad-host", Insecure: ptr(true)})

	am := testsvc.StartAlertmanager(t, "route: {receiver: \"null\"}\nreceivers: [{name: \"null\"}]\n")
	stack.Service("alertmanager").Address = am.Addr
	e.promConfig = prometheusConfig(stack, e.webAddr, am.Addr, "")
	e.prometheus = testsvc.StartPrometheus(t, e.promConfig, map[string]string{"rules/obcd.yml": testRule})
	stack.Service("prometheus").Address = e.prometheus.Addr

	grafana := httptest.NewServer(fakeGrafana(templates.GrafanaDashboardUIDs(stack)))
	t.Cleanup(grafana.Close)
	stack.Service("grafana").Address = strings.TrimPrefix(grafana.URL, "http://")
	celery := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE celery_worker_up gauge\ncelery_worker_up{hostname=\"celery@worker-1\"} 1")
	}))
	t.Cleanup(celery.Close)
	stack.Service("celery-exporter").Address = strings.TrimPrefix(celery.URL, "http://")
	return e
}

func ptr[T any](v T) *T { return &v }

const testRule = `groups:
- name: obcd
  rules:
  - alert: TargetDown
    expr: up == 0
    for: 1m
`

// prometheusConfig scrapes every job the rendered prometheus.yml has,
// all pointed at the Django stand-in's /metrics, so each is up; down
// names a job to point at a closed port instead.
func prometheusConfig(stack *stackhcl.Stack, webAddr, amAddr, down string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: [\"rules/*.yml\"]\n")
	fmt.Fprintf(&b, "alerting: {alertmanagers: [{static_configs: [{targets: [%q]}]}]}\nscrape_configs:\n", amAddr)
	for _, job := range templates.PrometheusJobs(stack) {
		target := webAddr
		if job == down {
			target = "127.0.0.1:1"
		}
		fmt.Fprintf(&b, "- job_name: %q\n  metrics_path: /metrics\n  static_configs: [{targets: [%q]}]\n", job, target)
	}
	return b.String()
}

// django stands in for the app: /health/, /ready/ and django-prometheus
// metrics from a real client_golang registry.
func (e *environment) django() http.Handler {
	reg := prometheus.NewRegistry()
	for _, name := range DjangoMetrics {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: name})
		c.Inc()
		reg.MustRegister(c)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/health/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, `{"status": "ok"}`) })
	mux.HandleFunc("/ready/", func(w http.ResponseWriter, r *http.Request) {
		if e.slowReady.Load() {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, `{"database": %v, "cache": true}`, e.readyDB.Load())
	})
	return mux
}

// nginx stands in for the TLS proxy: HSTS on every response, 400 for a
// Host it does not serve.
func nginx(upstream string) http.Handler {
	target, _ := url.Parse(upstream)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Host, "obcd-probe") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		resp, err := http.Get(target.String() + r.URL.Path)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	})
}

func fakeGrafana(uids []string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/health", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, `{"database": "ok", "version": "10.4.2"}`)
	})
	mux.HandleFunc("/api/search", func(w http.ResponseWriter, r *http.Request) {
		var items []string
		for _, uid := range uids {
			items = append(items, fmt.Sprintf(`{"uid": %q, "title": %q, "type": "dash-db"}`, uid, uid))
		}
		fmt.Fprintf(w, "[%s]", strings.Join(items, ","))
	})
	return mux
}

// verify builds the environment's probes and runs them, with short
// timings so a fault is reported quickly.
func (e *environment) verify(t testing.TB, secrets templates.MapSecrets, deadline time.Duration) ([]Result, Report) {
	t.Helper()
	plan, err := Build(BuildOptions{Stack: e.stack, Secrets: secrets})
	if err != nil {
		t.Fatal(err)
	}
	for i := range plan.Specs {
		plan.Specs[i].Timeout, plan.Specs[i].Interval = time.Second, 200*time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	results := Run(ctx, plan.Specs)
	return results, BuildStatus(e.stack, results)
}

func describe(results []Result) string {
	var b strings.Builder
	for _, r := range results {
		fmt.Fprintf(&b, "  %-26s %-7s %s\n", r.Name, r.Status, r.Message)
	}
	return b.String()
}

// TestEnvironment_FaultsAreReportedWithTheirComponent is the proof of the
// verify issue: a healthy environment passes every probe, and each fault
// is reported on the right component with the right overall status.
func TestEnvironment_FaultsAreReportedWithTheirComponent(t *testing.T) {
	e := startEnvironment(t)

	results, status := e.verify(t, e.secrets, 20*time.Second)
	if !AllCriticalPassed(results) || len(Failures(results)) != 0 || status.OverallStatus != Healthy {
		t.Fatalf("healthy environment: status %s\n%s", status.OverallStatus, describe(results))
	}
	wantProbes := []string{"web-health", "web-ready", "web-metrics", "site-https", "site-bad-host",
		"pgbouncer-login-obcms_user", "pgbouncer-login-obcms_admin", "pgbouncer-login-obcms_stats", "db-migrations",
		"redis-roundtrip", "celery-workers", "prometheus-targets", "prometheus-rules", "prometheus-alertmanagers",
		"alertmanager-ready", "grafana"}
	for _, name := range wantProbes {
		if !hasProbe(results, name) {
			t.Errorf("derived probes lack %s:\n%s", name, describe(results))
		}
	}

	fault := func(name, component, overall, messagePart string, secrets templates.MapSecrets) {
		t.Helper()
		results, status := e.verify(t, secrets, 4*time.Second)
		c := status.Components[component]
		if c.Healthy || status.OverallStatus != overall || !regexp.MustCompile(messagePart).MatchString(c.Message) {
			t.Errorf("%s: component %s = %+v, overall %s; want unhealthy component mentioning %q, overall %s\n%s",
				name, component, c, status.OverallStatus, messagePart, overall, describe(results))
		}
		if AllCriticalPassed(results) && overall == Unhealthy {
			t.Errorf("%s: verify would pass", name)
		}
	}

	wrong := envSecrets()
	wrong["obcms_stats_password"] = "not-the-password"
	fault("wrong password", ComponentDatabase, Unhealthy, "authentication", wrong)

	e.readyDB.Store(false)
	fault("/ready/ database false", ComponentWeb, Unhealthy, "database", e.secrets)
	e.readyDB.Store(true)

	e.slowReady.Store(true)
	fault("slow endpoint", ComponentWeb, Unhealthy, "no answer within 1s", e.secrets)
	e.slowReady.Store(false)

	testsvc.WriteFile(t, e.prometheus.ConfigPath, []byte(prometheusConfig(e.stack, e.webAddr, e.stack.Service("alertmanager").Address, "redis")), 0o644)
	if err := e.prometheus.Reload(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // one scrape of the moved target
	fault("prometheus target down", ComponentPrometheus, Unhealthy, "redis", e.secrets)
	testsvc.WriteFile(t, e.prometheus.ConfigPath, []byte(e.promConfig), 0o644)
	if err := e.prometheus.Reload(); err != nil {
		t.Fatal(err)
	}

	hung := hangingListener(t)
	e.stack.Service("redis").Address = hung
	// The runner's deadline or go-redis's own read deadline, set from it, fires first.
	fault("TCP accepted, never answered", ComponentRedis, Unhealthy, "no answer within|i/o timeout", e.secrets)

	e.redis.Stop()
	e.stack.Service("redis").Address = e.redis.Addr
	fault("redis stopped", ComponentRedis, Unhealthy, "refused", e.secrets)

	e.db.Primary.Stop()
	fault("database stopped", ComponentDatabase, Unhealthy, "db-migrations", e.secrets)
}

func hasProbe(results []Result, name string) bool {
	for _, r := range results {
		if r.Name == name {
			return true
		}
	}
	return false
}

// hangingListener accepts TCP connections and never answers.
func hangingListener(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for _, c := range held {
			c.Close()
		}
	})
	return l.Addr().String()
}

// BenchmarkVerify_HealthyEnvironment runs every probe of a healthy
// environment in parallel; the target is well under 1s per verify.
func BenchmarkVerify_HealthyEnvironment(b *testing.B) {
	e := startEnvironment(b)
	plan, err := Build(BuildOptions{Stack: e.stack, Secrets: e.secrets})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	warm := Run(ctx, plan.Specs)
	cancel()
	if !AllCriticalPassed(warm) {
		b.Fatalf("environment not healthy:\n%s", describe(warm))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		results := Run(ctx, plan.Specs)
		cancel()
		if !AllCriticalPassed(results) {
			b.Fatalf("a probe failed:\n%s", describe(results))
		}
	}
}
