package templates

import (
	"bytes"
	"encoding/json"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
	"gopkg.in/yaml.v3"
)

// histogramSeries expands a histogram into the series it exposes.
func histogramSeries(name string) []string {
	return []string{name + "_bucket", name + "_sum", name + "_count"}
}

// exporterMetricCatalog lists metric names each source really exposes, at
// the versions the stack runs. A rule or panel may only use these.
var exporterMetricCatalog = map[string][]string{
	"prometheus": {"up"},
	"node_exporter 1.5": {
		"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
		"node_filesystem_avail_bytes", "node_filesystem_size_bytes", "node_load1", "node_load5", "node_load15",
		"node_network_receive_bytes_total", "node_network_transmit_bytes_total", "node_textfile_scrape_error",
	},
	"backup job (node_exporter textfile collector)": {BackupMetric},
	"postgres_exporter 0.11": {
		"pg_up", "pg_stat_activity_count", "pg_stat_activity_max_tx_duration", "pg_settings_max_connections",
		"pg_stat_database_xact_commit", "pg_stat_database_xact_rollback", "pg_stat_database_deadlocks",
		"pg_stat_database_numbackends", "pg_database_size_bytes", "pg_locks_count",
	},
	"postgres_exporter custom queries (queries.yaml)": {"pg_replication_lag", "pg_replication_lag_bytes"},
	"pgbouncer_exporter (Go)": {
		"pgbouncer_up", "pgbouncer_pools_client_active_connections", "pgbouncer_pools_client_waiting_connections",
		"pgbouncer_pools_server_active_connections", "pgbouncer_pools_server_idle_connections",
		"pgbouncer_pools_server_used_connections", "pgbouncer_pools_client_maxwait_seconds",
		"pgbouncer_databases_current_connections", "pgbouncer_databases_pool_size",
		"pgbouncer_stats_queries_pooled_total", "pgbouncer_stats_client_wait_seconds_total",
	},
	"redis_exporter 1.45": {
		"redis_up", "redis_memory_used_bytes", "redis_memory_max_bytes", "redis_connected_clients",
		"redis_blocked_clients", "redis_commands_processed_total", "redis_keyspace_hits_total",
		"redis_keyspace_misses_total", "redis_evicted_keys_total", "redis_expired_keys_total", "redis_db_keys",
	},
	"nginx-prometheus-exporter 0.11": {
		"nginx_up", "nginx_http_requests_total", "nginx_connections_active", "nginx_connections_accepted",
		"nginx_connections_handled", "nginx_connections_reading", "nginx_connections_writing", "nginx_connections_waiting",
	},
	"celery-exporter": append([]string{
		"celery_worker_up", "celery_worker_tasks_active", "celery_queue_length", "celery_active_worker_count",
		"celery_task_sent_total", "celery_task_received_total", "celery_task_started_total",
		"celery_task_succeeded_total", "celery_task_failed_total", "celery_task_retried_total",
		"celery_task_rejected_total", "celery_task_revoked_total",
	}, histogramSeries("celery_task_runtime")...),
	"django-prometheus 2.2": append([]string{
		"django_http_responses_total_by_status_view_method_total", "django_http_responses_total_by_status_total",
		"django_http_requests_total_by_view_transport_method_total", "django_http_requests_total_by_method_total",
		"django_http_exceptions_total_by_type_total", "django_http_exceptions_total_by_view_total",
	}, histogramSeries("django_http_requests_latency_seconds_by_view_method")...),
}

func knownMetrics() map[string]bool {
	known := map[string]bool{}
	for _, names := range exporterMetricCatalog {
		for _, name := range names {
			known[name] = true
		}
	}
	return known
}

// unknownMetrics returns "where: metric" for every metric an expression
// uses that no exporter exposes.
func unknownMetrics(exprs map[string]string) []string {
	known := knownMetrics()
	var unknown []string
	for where, expr := range exprs {
		for _, name := range metricNames(expr) {
			if !known[name] {
				unknown = append(unknown, where+": "+name)
			}
		}
	}
	sort.Strings(unknown)
	return unknown
}

type parsedRuleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func parseRuleFile(t *testing.T, artifact Artifact) parsedRuleFile {
	t.Helper()
	var file parsedRuleFile
	decoder := yaml.NewDecoder(bytes.NewReader(artifact.Data))
	decoder.KnownFields(true)
	if err := decoder.Decode(&file); err != nil {
		t.Fatalf("%s: %v", artifact.Path, err)
	}
	return file
}

// ruleExprs maps "<file>/<alert>#<n>" to each rule's expression.
func ruleExprs(t *testing.T, byPath map[string]Artifact) map[string]string {
	exprs := map[string]string{}
	for _, p := range artifactsUnder(byPath, DirPrometheusRules, ".yml") {
		for _, group := range parseRuleFile(t, byPath[p]).Groups {
			for i, rule := range group.Rules {
				exprs[path.Base(p)+"/"+rule.Alert+"#"+strconv.Itoa(i)] = rule.Expr
			}
		}
	}
	return exprs
}

func parseDashboard(t *testing.T, artifact Artifact) map[string]any {
	t.Helper()
	var dashboard map[string]any
	if err := json.Unmarshal(artifact.Data, &dashboard); err != nil {
		t.Fatalf("%s is not valid JSON: %v", artifact.Path, err)
	}
	return dashboard
}

// dashboardExprs maps "<file>/<panel title>/<refId>" to each target's expr.
func dashboardExprs(t *testing.T, byPath map[string]Artifact) map[string]string {
	exprs := map[string]string{}
	for _, p := range artifactsUnder(byPath, DirGrafanaDashboards, ".json") {
		panels, _ := parseDashboard(t, byPath[p])["panels"].([]any)
		for _, panel := range panels {
			panelMap, _ := panel.(map[string]any)
			targets, _ := panelMap["targets"].([]any)
			for _, target := range targets {
				targetMap, _ := target.(map[string]any)
				key := path.Base(p) + "/" + asString(panelMap["title"]) + "/" + asString(targetMap["refId"])
				exprs[key] = asString(targetMap["expr"])
			}
		}
	}
	return exprs
}

func asString(value any) string {
	s, _ := value.(string)
	return s
}

func TestMonitoring_PromtoolAcceptsConfigAndRules(t *testing.T) {
	for _, environment := range obcmsEnvironments {
		t.Run(environment, func(t *testing.T) {
			byPath := renderMonitoringByPath(t, loadOBCMS(t, environment))
			root := t.TempDir()
			writeArtifacts(t, root, byPath)

			config := filepath.Join(root, filepath.FromSlash(PathPrometheus))
			output := requireToolSuccess(t, "promtool", "check", "config", config)
			ruleFiles := artifactsUnder(byPath, DirPrometheusRules, ".yml")
			if want := "SUCCESS: " + strconv.Itoa(len(ruleFiles)) + " rule files found"; !strings.Contains(output, want) {
				t.Errorf("promtool check config: want %q in output:\n%s", want, output)
			}
			for _, p := range ruleFiles {
				requireToolSuccess(t, "promtool", "check", "rules", filepath.Join(root, filepath.FromSlash(p)))
			}
		})
	}
}

func TestMonitoring_ToolChecksRejectBrokenFiles(t *testing.T) {
	dir := t.TempDir()
	brokenRules := writeFile(t, filepath.Join(dir, "broken.yml"),
		"groups:\n- name: broken\n  rules:\n  - alert: Broken\n    expr: up ==\n")
	if output, err := runTool(t, "promtool", "check", "rules", brokenRules); err == nil {
		t.Errorf("promtool accepted a rule with a broken expression:\n%s", output)
	}
	brokenRoute := writeFile(t, filepath.Join(dir, "alertmanager.yml"),
		"route:\n  receiver: missing\nreceivers:\n- name: \"null\"\n")
	if output, err := runTool(t, "amtool", "check-config", brokenRoute); err == nil {
		t.Errorf("amtool accepted a route to an undefined receiver:\n%s", output)
	}
}

func TestMonitoring_RenderIsDeterministic(t *testing.T) {
	stack := loadOBCMS(t, "production")
	first, err := renderMonitoring(stack)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		again, err := renderMonitoring(stack)
		if err != nil {
			t.Fatal(err)
		}
		if len(again) != len(first) {
			t.Fatalf("rendered %d artifacts, then %d", len(first), len(again))
		}
		for i := range first {
			if first[i].Path != again[i].Path || !bytes.Equal(first[i].Data, again[i].Data) {
				t.Fatalf("%s differs between two renders", first[i].Path)
			}
		}
	}
}

func TestPrometheusArgs_RetentionIsAFlagPerEnvironment(t *testing.T) {
	for environment, retention := range map[string]string{"staging": "7d", "production": "30d"} {
		stack := loadOBCMS(t, environment)
		args := PrometheusArgs(stack)
		want := []string{
			"--config.file=/etc/prometheus/prometheus.yml",
			"--storage.tsdb.path=/prometheus",
			"--storage.tsdb.retention.time=" + retention,
			"--web.enable-lifecycle",
		}
		if !slices.Equal(args, want) {
			t.Errorf("%s: PrometheusArgs = %q, want %q", environment, args, want)
		}
		config := renderMonitoringByPath(t, stack)[PathPrometheus].Data
		if bytes.Contains(config, []byte("retention")) {
			t.Errorf("%s: prometheus.yml mentions retention; promtool 2.42 rejects it there:\n%s", environment, config)
		}
	}
}

type parsedPromConfig struct {
	Global struct {
		ScrapeInterval string            `yaml:"scrape_interval"`
		ExternalLabels map[string]string `yaml:"external_labels"`
	} `yaml:"global"`
	RuleFiles []string `yaml:"rule_files"`
	Alerting  struct {
		Alertmanagers []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"alertmanagers"`
	} `yaml:"alerting"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
		DNSSDConfigs []struct {
			Names []string `yaml:"names"`
			Type  string   `yaml:"type"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
	} `yaml:"scrape_configs"`
}

func TestPrometheus_ScrapesEveryServiceOfTheStack(t *testing.T) {
	stack := loadOBCMS(t, "production")
	var config parsedPromConfig
	if err := yaml.Unmarshal(renderMonitoringByPath(t, stack)[PathPrometheus].Data, &config); err != nil {
		t.Fatal(err)
	}
	if got := config.Global.ExternalLabels; got["environment"] != "production" || got["stack"] != "obcms" {
		t.Errorf("external_labels = %v", got)
	}
	if !slices.Equal(config.RuleFiles, []string{"rules/*.yml"}) {
		t.Errorf("rule_files = %q", config.RuleFiles)
	}
	if len(config.Alerting.Alertmanagers) != 1 || !slices.Equal(config.Alerting.Alertmanagers[0].StaticConfigs[0].Targets, []string{"alertmanager:9093"}) {
		t.Errorf("alerting = %+v", config.Alerting)
	}
	targets := map[string][]string{}
	for _, job := range config.ScrapeConfigs {
		for _, static := range job.StaticConfigs {
			targets[job.JobName] = append(targets[job.JobName], static.Targets...)
		}
		if job.JobName == jobDjango {
			if job.MetricsPath != "/metrics" || len(job.DNSSDConfigs) != 1 {
				t.Fatalf("django job = %+v", job)
			}
			sd := job.DNSSDConfigs[0]
			if !slices.Equal(sd.Names, []string{"web"}) || sd.Type != "A" || sd.Port != 8000 {
				t.Errorf("django dns_sd_config = %+v, want names [web], type A, port 8000", sd)
			}
		}
	}
	want := map[string][]string{
		"prometheus": {"localhost:9090"}, "alertmanager": {"alertmanager:9093"},
		"node": {"node-exporter:9100"}, "postgres": {"postgres-exporter:9187"},
		"pgbouncer": {"pgbouncer-exporter:9127"}, "redis": {"redis-exporter:9121"},
		"nginx": {"nginx-exporter:9113"}, "celery": {"celery-exporter:9808"},
	}
	for job, wantTargets := range want {
		if !slices.Equal(targets[job], wantTargets) {
			t.Errorf("job %s targets = %q, want %q", job, targets[job], wantTargets)
		}
	}
}

func TestRules_ObcmsHasEveryAlertWithSeverityAndAnnotations(t *testing.T) {
	wantAlerts := []string{
		"TargetDown", "HostHighCPU", "HostLowMemory", "PostgresConnectionsHigh", "PgBouncerPoolSaturated",
		"PostgresReplicationLag", "RedisMemoryHigh", "CeleryTaskFailures", "CeleryWorkersDown",
		"DjangoHigh5xxRatio", "BackupTooOld", "BackupMissing",
	}
	for _, environment := range obcmsEnvironments {
		byPath := renderMonitoringByPath(t, loadOBCMS(t, environment))
		seen := map[string]bool{}
		for _, p := range artifactsUnder(byPath, DirPrometheusRules, ".yml") {
			for _, group := range parseRuleFile(t, byPath[p]).Groups {
				for _, rule := range group.Rules {
					seen[rule.Alert] = true
					severity := rule.Labels["severity"]
					if severity != "critical" && severity != "warning" {
						t.Errorf("%s %s: severity %q", environment, rule.Alert, severity)
					}
					if rule.For == "" || rule.Annotations["summary"] == "" || rule.Annotations["description"] == "" {
						t.Errorf("%s %s: needs for, summary and description: %+v", environment, rule.Alert, rule)
					}
				}
			}
		}
		for _, alert := range wantAlerts {
			if !seen[alert] {
				t.Errorf("%s: no %s alert rendered", environment, alert)
			}
		}
	}
}

func TestRules_BackupThresholdIsTwiceTheInterval(t *testing.T) {
	stack := loadOBCMS(t, "staging")
	stack.Service("backup").Backup.Interval = "6h"
	byPath := renderMonitoringByPath(t, stack)
	backup := string(byPath[path.Join(DirPrometheusRules, "backup.yml")].Data)
	for _, want := range []string{"time() - " + BackupMetric + " > 43200", "absent(" + BackupMetric + ")", "for: 12h"} {
		if !strings.Contains(backup, want) {
			t.Errorf("backup.yml lacks %q:\n%s", want, backup)
		}
	}
	stack.Service("backup").Backup.Interval = "daily"
	if _, err := renderMonitoring(stack); err == nil || !strings.Contains(err.Error(), `"backup"`) {
		t.Errorf("interval %q: err = %v, want an error naming the backup service", "daily", err)
	}
}

// TestRules_PromtoolUnitTests runs promtool test rules on the rendered
// backup and redis rules: the backup alert waits for twice the interval,
// and Redis without maxmemory never alerts.
func TestRules_PromtoolUnitTests(t *testing.T) {
	byPath := renderMonitoringByPath(t, loadOBCMS(t, "staging"))
	dir := t.TempDir()
	for _, name := range []string{"backup.yml", "redis.yml"} {
		writeFile(t, filepath.Join(dir, name), string(byPath[path.Join(DirPrometheusRules, name)].Data))
	}
	unitTests := writeFile(t, filepath.Join(dir, "tests.yml"), `rule_files: [backup.yml, redis.yml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - series: '`+BackupMetric+`{instance="node-exporter:9100"}'
    values: '0+0x3000'
  - series: 'redis_memory_used_bytes{instance="redis-exporter:9121"}'
    values: '1000000+0x120'
  - series: 'redis_memory_max_bytes{instance="redis-exporter:9121"}'
    values: '0+0x120'
  alert_rule_test:
  - eval_time: 47h
    alertname: BackupTooOld
    exp_alerts: []
  - eval_time: 49h
    alertname: BackupTooOld
    exp_alerts:
    - exp_labels: {severity: critical, service: backup, instance: "node-exporter:9100"}
      exp_annotations:
        summary: The last verified backup is older than 48h
        description: The last successful dump of backup finished 2d 1h 0m 0s ago; it runs every 24h.
  - eval_time: 49h
    alertname: BackupMissing
    exp_alerts: []
  - eval_time: 2h
    alertname: RedisMemoryHigh
    exp_alerts: []
`)
	requireToolSuccess(t, "promtool", "test", "rules", unitTests)
}

func TestRules_OnlyForServicesTheStackHas(t *testing.T) {
	stack := loadOBCMS(t, "staging")
	var kept []*stackhcl.Service
	for _, svc := range stack.Services {
		celery := svc.Kind == stackhcl.KindCeleryWorker || svc.Kind == stackhcl.KindCeleryBeat ||
			svc.Exporter != nil && svc.Exporter.Type == stackhcl.ExporterCelery
		if !celery {
			kept = append(kept, svc)
		}
	}
	stack.Services = kept
	byPath := renderMonitoringByPath(t, stack)
	for _, p := range []string{path.Join(DirPrometheusRules, "celery.yml"), path.Join(DirGrafanaDashboards, "celery.json")} {
		if _, ok := byPath[p]; ok {
			t.Errorf("%s rendered for a stack without Celery", p)
		}
	}
	if bytes.Contains(byPath[PathPrometheus].Data, []byte("celery")) {
		t.Errorf("prometheus.yml scrapes celery in a stack without it:\n%s", byPath[PathPrometheus].Data)
	}
	root := t.TempDir()
	writeArtifacts(t, root, byPath)
	requireToolSuccess(t, "promtool", "check", "config", filepath.Join(root, filepath.FromSlash(PathPrometheus)))
}

func TestRules_MetricsExistInExporterCatalog(t *testing.T) {
	for _, environment := range obcmsEnvironments {
		byPath := renderMonitoringByPath(t, loadOBCMS(t, environment))
		exprs := ruleExprs(t, byPath)
		for key, expr := range dashboardExprs(t, byPath) {
			exprs[key] = expr
		}
		if len(exprs) < 20 {
			t.Fatalf("%s: only %d expressions found; the extraction is broken", environment, len(exprs))
		}
		for _, unknown := range unknownMetrics(exprs) {
			t.Errorf("%s: metric not exposed by any exporter: %s", environment, unknown)
		}
	}
}

func TestRules_MetricCheckCatchesTypos(t *testing.T) {
	got := metricNames(`sum by (service, le) (rate(foo_bucket{status=~"5..", a="{x}"}[5m])) / on (instance) group_left bar:ratio > 0.8 and ignoring(job) baz offset 5m or vector(1e3)`)
	if want := []string{"foo_bucket", "bar:ratio", "baz"}; !slices.Equal(got, want) {
		t.Errorf("metricNames = %q, want %q", got, want)
	}
	typo := map[string]string{"typo": "rate(django_http_responses_total_by_status_view_method[5m])"}
	if unknown := unknownMetrics(typo); len(unknown) != 1 {
		t.Errorf("unknownMetrics missed a metric without its _total suffix: %q", unknown)
	}
}

func TestRules_PostgresQueriesDefineReplicationLagMetrics(t *testing.T) {
	byPath := renderMonitoringByPath(t, loadOBCMS(t, "production"))
	var queries map[string]struct {
		Query   string                              `yaml:"query"`
		Master  bool                                `yaml:"master"`
		Metrics []map[string]struct{ Usage string } `yaml:"metrics"`
	}
	if err := yaml.Unmarshal(byPath[PathPostgresQueries].Data, &queries); err != nil {
		t.Fatal(err)
	}
	var metrics []string
	labels := 0
	for namespace, query := range queries {
		for _, column := range query.Metrics {
			for name, spec := range column {
				switch spec.Usage {
				case "LABEL":
					labels++
				case "GAUGE":
					metrics = append(metrics, namespace+"_"+name)
				default:
					t.Errorf("%s.%s: usage %q", namespace, name, spec.Usage)
				}
			}
		}
		for _, fragment := range []string{"pg_stat_replication", "EXTRACT(EPOCH FROM replay_lag)", "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)"} {
			if !strings.Contains(query.Query, fragment) {
				t.Errorf("%s query lacks %q: %s", namespace, fragment, query.Query)
			}
		}
	}
	sort.Strings(metrics)
	if want := exporterMetricCatalog["postgres_exporter custom queries (queries.yaml)"]; !slices.Equal(metrics, want) || labels != 1 {
		t.Errorf("queries.yaml gives metrics %q with %d labels, want %q with application_name", metrics, labels, want)
	}
}

func TestAlertmanager_AmtoolAcceptsAndRoutesBySeverity(t *testing.T) {
	for _, environment := range obcmsEnvironments {
		t.Run(environment, func(t *testing.T) {
			byPath := renderMonitoringByPath(t, loadOBCMS(t, environment))
			config := writeFile(t, filepath.Join(t.TempDir(), "alertmanager.yml"), string(byPath[PathAlertmanager].Data))
			requireToolSuccess(t, "amtool", "check-config", config)
			for labels, receiver := range map[string]string{"severity=critical": "ops-webhook", "severity=warning": "ops-email"} {
				if got := routedReceiver(t, config, "alertname=X", labels); got != receiver {
					t.Errorf("%s routes to %q, want %s", labels, got, receiver)
				}
			}
		})
	}
}

func TestAlertmanager_WithoutReceiversRoutesToNull(t *testing.T) {
	stack := loadOBCMS(t, "staging")
	stack.Monitoring.Receivers, stack.Monitoring.DefaultReceiver, stack.Monitoring.CriticalReceiver = nil, "", ""
	stack.Monitoring.SMTPSmarthost, stack.Monitoring.SMTPFrom = "", ""
	byPath := renderMonitoringByPath(t, stack)
	config := writeFile(t, filepath.Join(t.TempDir(), "alertmanager.yml"), string(byPath[PathAlertmanager].Data))
	requireToolSuccess(t, "amtool", "check-config", config)
	if got := routedReceiver(t, config, "severity=critical"); got != "null" {
		t.Errorf("critical alert routes to %q, want null", got)
	}
}

func TestAlertmanager_UndeclaredReceiverIsAnError(t *testing.T) {
	stack := loadOBCMS(t, "staging")
	stack.Monitoring.CriticalReceiver = "pager"
	if _, err := renderMonitoring(stack); err == nil || !strings.Contains(err.Error(), `"pager"`) {
		t.Errorf("err = %v, want one naming receiver \"pager\"", err)
	}
}

func TestGrafana_DashboardsAreValidAndComplete(t *testing.T) {
	byPath := renderMonitoringByPath(t, loadOBCMS(t, "production"))
	titles := map[string]bool{}
	uids := map[string]string{}
	for _, p := range artifactsUnder(byPath, DirGrafanaDashboards, ".json") {
		data := byPath[p].Data
		if !bytes.HasSuffix(data, []byte("}\n")) {
			t.Errorf("%s does not end with a newline", p)
		}
		dashboard := parseDashboard(t, byPath[p])
		uid, title := asString(dashboard["uid"]), asString(dashboard["title"])
		if uid == "" || len(uid) > 40 || uids[uid] != "" {
			t.Errorf("%s: uid %q must be unique, non-empty and at most 40 characters", p, uid)
		}
		uids[uid], titles[title] = p, true
		if _, ok := dashboard["schemaVersion"].(float64); !ok || title == "" {
			t.Errorf("%s: needs title and numeric schemaVersion", p)
		}
		checkPanels(t, p, dashboard["panels"])
	}
	for _, title := range []string{"Django", "Database", "Redis", "Celery"} {
		if !titles[title] {
			t.Errorf("no dashboard titled %q; have %v", title, titles)
		}
	}
}

func checkPanels(t *testing.T, file string, value any) {
	t.Helper()
	panels, _ := value.([]any)
	if len(panels) == 0 {
		t.Errorf("%s: no panels", file)
	}
	for i, panel := range panels {
		panelMap, _ := panel.(map[string]any)
		where := file + " panel " + strconv.Itoa(i) + " " + asString(panelMap["title"])
		gridPos, _ := panelMap["gridPos"].(map[string]any)
		datasource, _ := panelMap["datasource"].(map[string]any)
		targets, _ := panelMap["targets"].([]any)
		if asString(panelMap["type"]) == "" || gridPos["w"] == nil || gridPos["h"] == nil || gridPos["x"] == nil || gridPos["y"] == nil {
			t.Errorf("%s: needs type and gridPos{h,w,x,y}: %v", where, panelMap)
		}
		if datasource["type"] != "prometheus" || datasource["uid"] != grafanaDatasourceUID {
			t.Errorf("%s: datasource = %v", where, datasource)
		}
		if len(targets) == 0 {
			t.Errorf("%s: no targets", where)
		}
		for _, target := range targets {
			targetMap, _ := target.(map[string]any)
			if asString(targetMap["refId"]) == "" || asString(targetMap["expr"]) == "" {
				t.Errorf("%s: target needs refId and expr: %v", where, targetMap)
			}
		}
	}
}

func TestGrafana_ProvisioningPointsAtPrometheusAndDashboards(t *testing.T) {
	byPath := renderMonitoringByPath(t, loadOBCMS(t, "staging"))
	var datasources struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Type, UID, URL string
			IsDefault      bool `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(byPath[path.Join(DirGrafanaDatasources, "prometheus.yml")].Data, &datasources); err != nil {
		t.Fatal(err)
	}
	want := struct {
		Type, UID, URL string
		IsDefault      bool `yaml:"isDefault"`
	}{"prometheus", grafanaDatasourceUID, "http://prometheus:9090", true}
	if datasources.APIVersion != 1 || len(datasources.Datasources) != 1 || datasources.Datasources[0] != want {
		t.Errorf("datasources = %+v, want apiVersion 1 and %+v", datasources, want)
	}
	var providers struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string
			Options struct {
				Path                      string
				FoldersFromFilesStructure bool `yaml:"foldersFromFilesStructure"`
			}
		}
	}
	if err := yaml.Unmarshal(byPath[path.Join(DirGrafanaProviders, "obcd.yml")].Data, &providers); err != nil {
		t.Fatal(err)
	}
	if providers.APIVersion != 1 || len(providers.Providers) != 1 || providers.Providers[0].Type != "file" ||
		providers.Providers[0].Options.Path != ContainerGrafanaDashboard || !providers.Providers[0].Options.FoldersFromFilesStructure {
		t.Errorf("providers = %+v", providers)
	}
}

// TestExpected_MatchesRenderedFiles keeps the probes' expectations equal
// to what the rendered prometheus.yml and dashboards hold.
func TestExpected_MatchesRenderedFiles(t *testing.T) {
	stack := loadOBCMS(t, "production")
	byPath := indexByPath(t, mustRender(t, stack))
	prom := string(byPath[PathPrometheus].Data)
	for _, job := range PrometheusJobs(stack) {
		if !strings.Contains(prom, "job_name: "+job+"\n") {
			t.Errorf("job %q not in prometheus.yml", job)
		}
	}
	if got := strings.Count(prom, "job_name: "); got != len(PrometheusJobs(stack)) {
		t.Errorf("prometheus.yml has %d jobs, PrometheusJobs %d", got, len(PrometheusJobs(stack)))
	}
	uids := GrafanaDashboardUIDs(stack)
	if len(uids) < 4 {
		t.Fatalf("uids = %v", uids)
	}
	for _, uid := range uids {
		found := false
		for path, a := range byPath {
			if strings.HasPrefix(path, DirGrafanaDashboards+"/") && strings.Contains(string(a.Data), `"uid": "`+uid+`"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("dashboard uid %s not rendered", uid)
		}
	}
}

func mustRender(t *testing.T, stack *stackhcl.Stack) []Artifact {
	t.Helper()
	artifacts, err := Render(stack, testSecrets())
	if err != nil {
		t.Fatal(err)
	}
	return artifacts
}
