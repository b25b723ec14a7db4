package templates

// rules.go renders the Prometheus alert rules, one file per area; the
// postgres_exporter queries they read are in postgres_queries.go.

import (
	"fmt"
	"path"
	"strconv"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"
)

// Alert severities; alertmanager.yml routes and inhibits on them.
const (
	severityCritical = "critical"
	severityWarning  = "warning"
	// alertTargetDown inhibits every other alert of the same instance.
	alertTargetDown = "TargetDown"
)

type promRuleFile struct {
	Groups []promRuleGroup `yaml:"groups"`
}

type promRuleGroup struct {
	Name  string      `yaml:"name"`
	Rules []promAlert `yaml:"rules"`
}

type promAlert struct {
	Alert       string          `yaml:"alert"`
	Expr        string          `yaml:"expr"`
	For         string          `yaml:"for"`
	Labels      promAlertLabels `yaml:"labels"`
	Annotations promAnnotations `yaml:"annotations"`
}

type promAlertLabels struct {
	Severity string `yaml:"severity"`
	Service  string `yaml:"service,omitempty"`
}

type promAnnotations struct {
	Summary     string `yaml:"summary"`
	Description string `yaml:"description"`
}

// ruleArea is one rule file: config/prometheus/rules/<name>.yml holding
// one group called <name>.
type ruleArea struct {
	name  string
	rules []promAlert
}

func renderPrometheusRules(s *stackhcl.Stack) ([]Artifact, error) {
	if s.First(stackhcl.KindPrometheus) == nil {
		return nil, nil
	}
	areas, err := ruleAreas(s)
	if err != nil {
		return nil, err
	}
	var artifacts []Artifact
	for _, area := range areas {
		if len(area.rules) == 0 {
			continue
		}
		artifact, err := ruleFileArtifact(area)
		if err != nil {
			return nil, err
		}
		artifacts = append(artifacts, artifact)
	}
	return artifacts, nil
}

func ruleAreas(s *stackhcl.Stack) ([]ruleArea, error) {
	backup, err := backupRules(s)
	if err != nil {
		return nil, err
	}
	return []ruleArea{
		{name: "availability", rules: availabilityRules(s)},
		{name: "host", rules: hostRules(s)},
		{name: "database", rules: databaseRules(s)},
		{name: "redis", rules: redisRules(s)},
		{name: "celery", rules: celeryRules(s)},
		{name: "django", rules: djangoRules(s)},
		{name: "backup", rules: backup},
	}, nil
}

func ruleFileArtifact(area ruleArea) (Artifact, error) {
	filePath := path.Join(DirPrometheusRules, area.name+".yml")
	data, err := monitoringYAML(promRuleFile{Groups: []promRuleGroup{{Name: area.name, Rules: area.rules}}})
	if err != nil {
		return Artifact{}, fmt.Errorf("%s: %w", filePath, err)
	}
	return Artifact{Path: filePath, Mode: ModePublic, Data: data}, nil
}

// tieredAlert is one alert at two thresholds. Both carry the same name,
// so the critical one inhibits the warning on the same instance.
type tieredAlert struct {
	name        string
	query       string // compared with "> threshold"
	warning     string // PromQL number
	critical    string // PromQL number
	forDuration string
	annotations promAnnotations
}

func (t tieredAlert) rules() []promAlert {
	alert := func(severity, threshold string) promAlert {
		return promAlert{
			Alert: t.name, Expr: t.query + " > " + threshold, For: t.forDuration,
			Labels: promAlertLabels{Severity: severity}, Annotations: t.annotations,
		}
	}
	return []promAlert{alert(severityWarning, t.warning), alert(severityCritical, t.critical)}
}

func exportersOf(s *stackhcl.Stack, exporterType string) []*stackhcl.Service {
	var exporters []*stackhcl.Service
	for _, svc := range s.ServicesOf(stackhcl.KindExporter) {
		if svc.Exporter != nil && svc.Exporter.Type == exporterType {
			exporters = append(exporters, svc)
		}
	}
	return exporters
}

func hasExporter(s *stackhcl.Stack, exporterType string) bool {
	return len(exportersOf(s, exporterType)) > 0
}

func availabilityRules(s *stackhcl.Stack) []promAlert {
	rules := []promAlert{{
		Alert: alertTargetDown, Expr: "up == 0", For: "2m",
		Labels: promAlertLabels{Severity: severityCritical},
		Annotations: promAnnotations{
			Summary:     "{{ $labels.job }} target {{ $labels.instance }} is down",
			Description: "Prometheus has not scraped {{ $labels.instance }} (job {{ $labels.job }}, service {{ $labels.service }}) for 2 minutes. Other alerts from this instance are inhibited until it is back.",
		},
	}}
	if hasExporter(s, stackhcl.ExporterNginx) {
		rules = append(rules, promAlert{
			Alert: "NginxDown", Expr: "nginx_up == 0", For: "2m",
			Labels: promAlertLabels{Severity: severityCritical},
			Annotations: promAnnotations{
				Summary:     "nginx {{ $labels.service }} does not answer its status page",
				Description: "The nginx exporter {{ $labels.instance }} cannot read stub_status of {{ $labels.service }}: the proxy is down or its status listener is broken.",
			},
		})
	}
	return rules
}

func hostRules(s *stackhcl.Stack) []promAlert {
	if !hasExporter(s, stackhcl.ExporterNode) {
		return nil
	}
	return []promAlert{
		{
			Alert: "HostHighCPU", For: "10m",
			Expr:   `100 * (1 - avg by (instance, service) (rate(node_cpu_seconds_total{mode="idle"}[5m]))) > 90`,
			Labels: promAlertLabels{Severity: severityWarning},
			Annotations: promAnnotations{
				Summary:     "Host CPU above 90% on {{ $labels.instance }}",
				Description: "CPU has been {{ $value | humanize }}% busy for 10 minutes.",
			},
		},
		{
			Alert: "HostLowMemory", For: "5m",
			Expr:   `node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.10`,
			Labels: promAlertLabels{Severity: severityWarning},
			Annotations: promAnnotations{
				Summary:     "Less than 10% memory available on {{ $labels.instance }}",
				Description: "Only {{ $value | humanizePercentage }} of memory is available; containers risk the OOM killer.",
			},
		},
		{
			Alert: "HostDiskSpaceLow", For: "10m",
			Expr:   `node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"} / node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"} < 0.10`,
			Labels: promAlertLabels{Severity: severityWarning},
			Annotations: promAnnotations{
				Summary:     "Less than 10% disk space left on {{ $labels.mountpoint }}",
				Description: "{{ $labels.instance }} has {{ $value | humanizePercentage }} free on {{ $labels.mountpoint }}; backups and the database will fail when it fills.",
			},
		},
	}
}

func databaseRules(s *stackhcl.Stack) []promAlert {
	var rules []promAlert
	if hasExporter(s, stackhcl.ExporterPostgres) {
		rules = append(rules, postgresRules()...)
	}
	if hasExporter(s, stackhcl.ExporterPgBouncer) {
		rules = append(rules, pgbouncerWaitingRule())
	}
	for _, exporter := range exportersOf(s, stackhcl.ExporterPgBouncer) {
		if rule, ok := pgbouncerClientLimitRule(s, exporter); ok {
			rules = append(rules, rule)
		}
	}
	return rules
}

func postgresRules() []promAlert {
	rules := []promAlert{{
		Alert: "PostgresDown", Expr: "pg_up == 0", For: "1m",
		Labels: promAlertLabels{Severity: severityCritical},
		Annotations: promAnnotations{
			Summary:     "PostgreSQL {{ $labels.service }} is down",
			Description: "The postgres exporter {{ $labels.instance }} cannot connect to {{ $labels.service }}.",
		},
	}}
	rules = append(rules, tieredAlert{
		name:    "PostgresConnectionsHigh",
		query:   "sum by (instance, service) (pg_stat_activity_count) / max by (instance, service) (pg_settings_max_connections)",
		warning: "0.80", critical: "0.95", forDuration: "5m",
		annotations: promAnnotations{
			Summary:     "PostgreSQL {{ $labels.service }} is running out of connections",
			Description: "{{ $value | humanizePercentage }} of max_connections are in use; new connections will be refused when it reaches 100%.",
		},
	}.rules()...)
	return append(rules, tieredAlert{
		name:    "PostgresReplicationLag",
		query:   "max by (instance, service, application_name) (pg_replication_lag)",
		warning: "30", critical: "300", forDuration: "5m",
		annotations: promAnnotations{
			Summary:     "Replica {{ $labels.application_name }} lags behind {{ $labels.service }}",
			Description: "Replay lag of {{ $labels.application_name }} is {{ $value | humanizeDuration }}; reads from it are stale and a failover would lose data.",
		},
	}.rules()...)
}

func pgbouncerWaitingRule() promAlert {
	return promAlert{
		Alert: "PgBouncerPoolSaturated", For: "2m",
		Expr:   "sum by (instance, service, database) (pgbouncer_pools_client_waiting_connections) > 0",
		Labels: promAlertLabels{Severity: severityWarning},
		Annotations: promAnnotations{
			Summary:     "Clients wait for a server connection in PgBouncer {{ $labels.service }}",
			Description: "{{ $value }} clients of database {{ $labels.database }} have waited for 2 minutes: the pool is too small or queries are slow.",
		},
	}
}

// pgbouncerClientLimitRule compares client connections with the pooler's
// max_client_conn as the stack sets it.
func pgbouncerClientLimitRule(s *stackhcl.Stack, exporter *stackhcl.Service) (promAlert, bool) {
	pooler := s.Service(exporter.Exporter.Target)
	if pooler == nil || pooler.PgBouncer == nil || pooler.PgBouncer.MaxClientConn <= 0 {
		return promAlert{}, false
	}
	selector := "{service=" + strconv.Quote(pooler.Name) + "}"
	limit := strconv.Itoa(pooler.PgBouncer.MaxClientConn)
	return promAlert{
		Alert: "PgBouncerClientConnectionsHigh", For: "5m",
		Expr: "sum by (instance, service) (pgbouncer_pools_client_active_connections" + selector +
			" + pgbouncer_pools_client_waiting_connections" + selector + ") / " + limit + " > 0.80",
		Labels: promAlertLabels{Severity: severityWarning},
		Annotations: promAnnotations{
			Summary:     "PgBouncer {{ $labels.service }} is near max_client_conn (" + limit + ")",
			Description: "{{ $value | humanizePercentage }} of max_client_conn is in use; PgBouncer refuses clients beyond it.",
		},
	}, true
}

func redisRules(s *stackhcl.Stack) []promAlert {
	if !hasExporter(s, stackhcl.ExporterRedis) {
		return nil
	}
	return []promAlert{
		{
			Alert: "RedisDown", Expr: "redis_up == 0", For: "1m",
			Labels: promAlertLabels{Severity: severityCritical},
			Annotations: promAnnotations{
				Summary:     "Redis {{ $labels.service }} is down",
				Description: "The redis exporter {{ $labels.instance }} cannot reach {{ $labels.service }}; everything that uses it for cache, sessions or as a broker is affected.",
			},
		},
		{
			// The max is 0 unless maxmemory is set; the guard keeps the
			// division by zero from firing.
			Alert: "RedisMemoryHigh", For: "10m",
			Expr:   "(redis_memory_used_bytes / redis_memory_max_bytes > 0.90) and redis_memory_max_bytes > 0",
			Labels: promAlertLabels{Severity: severityWarning},
			Annotations: promAnnotations{
				Summary:     "Redis {{ $labels.service }} uses over 90% of maxmemory",
				Description: "Redis is at {{ $value | humanizePercentage }} of maxmemory; at the limit it evicts keys or refuses writes, as its maxmemory-policy says, and a Celery broker loses queued tasks.",
			},
		},
	}
}

func celeryRules(s *stackhcl.Stack) []promAlert {
	if !hasExporter(s, stackhcl.ExporterCelery) {
		return nil
	}
	rules := []promAlert{
		{
			Alert: "CeleryTaskFailures", For: "1m",
			Expr:   "sum by (name, queue_name) (increase(celery_task_failed_total[15m])) > 3",
			Labels: promAlertLabels{Severity: severityWarning},
			Annotations: promAnnotations{
				Summary:     "Celery task {{ $labels.name }} keeps failing",
				Description: "{{ $value | humanize }} runs of {{ $labels.name }} failed in the last 15 minutes.",
			},
		},
		{
			Alert: "CeleryQueueBacklog", For: "15m",
			Expr:   "sum by (queue_name) (celery_queue_length) > 100",
			Labels: promAlertLabels{Severity: severityWarning},
			Annotations: promAnnotations{
				Summary:     "Celery queue {{ $labels.queue_name }} is backing up",
				Description: "{{ $value }} messages have waited in {{ $labels.queue_name }} for 15 minutes; workers are too few or stuck.",
			},
		},
	}
	return append(rules, celeryWorkerRules(s)...)
}

// celeryWorkerRules counts workers that sent a heartbeat. The exporter
// drops offline workers after a while, hence `or vector(0)`.
func celeryWorkerRules(s *stackhcl.Stack) []promAlert {
	expected := 0
	for _, worker := range s.ServicesOf(stackhcl.KindCeleryWorker) {
		expected += worker.Replicas
	}
	if expected == 0 {
		return nil
	}
	const upWorkers = "(sum(celery_worker_up) or vector(0))"
	rules := []promAlert{{
		Alert: "CeleryWorkersDown", Expr: upWorkers + " < 1", For: "5m",
		Labels: promAlertLabels{Severity: severityCritical},
		Annotations: promAnnotations{
			Summary:     "No Celery worker is up",
			Description: "No worker has sent a heartbeat for 5 minutes; background tasks are not running.",
		},
	}}
	if expected > 1 {
		rules = append(rules, promAlert{
			Alert: "CeleryWorkersDown", Expr: upWorkers + " < " + strconv.Itoa(expected), For: "15m",
			Labels: promAlertLabels{Severity: severityWarning},
			Annotations: promAnnotations{
				Summary:     "Only {{ $value }} of " + strconv.Itoa(expected) + " Celery workers are up",
				Description: "Some Celery workers have not sent a heartbeat for 15 minutes.",
			},
		})
	}
	return rules
}

func djangoRules(s *stackhcl.Stack) []promAlert {
	if !s.Django.Metrics.Enabled || len(s.ServicesOf(stackhcl.KindWeb)) == 0 {
		return nil
	}
	const responses = "django_http_responses_total_by_status_view_method_total"
	rules := tieredAlert{
		name: "DjangoHigh5xxRatio",
		query: `sum by (service) (rate(` + responses + `{status=~"5.."}[5m])) / sum by (service) (rate(` +
			responses + `[5m]))`,
		warning: "0.05", critical: "0.20", forDuration: "5m",
		annotations: promAnnotations{
			Summary:     "Django {{ $labels.service }} answers {{ $value | humanizePercentage }} of requests with 5xx",
			Description: "The share of 5xx responses has been high for 5 minutes; check the logs and Sentry.",
		},
	}.rules()
	return append(rules, promAlert{
		Alert: "DjangoSlowResponses", For: "10m",
		Expr:   "histogram_quantile(0.95, sum by (service, le) (rate(django_http_requests_latency_seconds_by_view_method_bucket[5m]))) > 2",
		Labels: promAlertLabels{Severity: severityWarning},
		Annotations: promAnnotations{
			Summary:     "Django {{ $labels.service }} p95 latency is above 2s",
			Description: "95% of requests take up to {{ $value | humanizeDuration }}.",
		},
	})
}

// backupRules alert when the newest verified dump is older than twice the
// backup interval, or when no backup has ever been recorded.
func backupRules(s *stackhcl.Stack) ([]promAlert, error) {
	backup, interval, err := slowestBackup(s)
	if err != nil || backup == nil {
		return nil, err
	}
	maxAge := 2 * interval
	labels := promAlertLabels{Severity: severityCritical, Service: backup.Name}
	return []promAlert{
		{
			Alert: "BackupTooOld", For: "5m", Labels: labels,
			Expr: "time() - " + BackupMetric + " > " + strconv.FormatInt(int64(maxAge/time.Second), 10),
			Annotations: promAnnotations{
				Summary:     "The last verified backup is older than " + prometheusDuration(maxAge),
				Description: "The last successful dump of " + backup.Name + " finished {{ $value | humanizeDuration }} ago; it runs every " + prometheusDuration(interval) + ".",
			},
		},
		{
			Alert: "BackupMissing", For: prometheusDuration(maxAge), Labels: labels,
			Expr: "absent(" + BackupMetric + ")",
			Annotations: promAnnotations{
				Summary:     "No backup has been recorded for " + prometheusDuration(maxAge),
				Description: BackupMetric + " is absent: the backup job never succeeded, or node-exporter does not read " + ContainerTextfileDir + ".",
			},
		},
	}, nil
}

// slowestBackup is the backup service with the longest interval; its
// threshold covers the others.
func slowestBackup(s *stackhcl.Stack) (*stackhcl.Service, time.Duration, error) {
	var slowest *stackhcl.Service
	var slowestInterval time.Duration
	for _, backup := range s.ServicesOf(stackhcl.KindBackup) {
		interval, err := backupInterval(backup)
		if err != nil {
			return nil, 0, err
		}
		if interval > slowestInterval {
			slowest, slowestInterval = backup, interval
		}
	}
	return slowest, slowestInterval, nil
}

func backupInterval(backup *stackhcl.Service) (time.Duration, error) {
	if backup.Backup == nil {
		return 0, fmt.Errorf("backup service %q has no backup settings", backup.Name)
	}
	interval, err := time.ParseDuration(backup.Backup.Interval)
	if err != nil {
		return 0, fmt.Errorf("backup service %q: interval: %w", backup.Name, err)
	}
	if interval <= 0 {
		return 0, fmt.Errorf("backup service %q: interval %q is not positive", backup.Name, backup.Backup.Interval)
	}
	return interval, nil
}

// prometheusDuration writes d in the largest whole unit Prometheus
// accepts, rounding sub-second remainders up.
func prometheusDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	default:
		return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10) + "s"
	}
}
