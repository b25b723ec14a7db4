package templates

// grafana.go renders Grafana's provisioning (the Prometheus datasource and
// the dashboard provider) and the dashboards, one JSON file per area.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"

	stackhcl "github.com/obcd/obcd/hcl"
)

// Grafana settings the dashboards rely on.
const (
	grafanaDatasourceUID  = "prometheus" // fixed, so dashboards can name it
	grafanaDatasourceType = "prometheus"
	grafanaSchemaVersion  = 39 // Grafana 10.4
	grafanaPanelWidth     = 12 // two panels per row of 24 columns
	grafanaPanelHeight    = 8
)

type grafanaDatasourceFile struct {
	APIVersion  int                 `yaml:"apiVersion"`
	Datasources []grafanaDatasource `yaml:"datasources"`
}

type grafanaDatasource struct {
	Name      string              `yaml:"name"`
	Type      string              `yaml:"type"`
	UID       string              `yaml:"uid"`
	Access    string              `yaml:"access"`
	URL       string              `yaml:"url"`
	IsDefault bool                `yaml:"isDefault"`
	Editable  bool                `yaml:"editable"`
	JSONData  grafanaPromJSONData `yaml:"jsonData"`
}

// grafanaPromJSONData tells Grafana the scrape interval, which
// $__rate_interval is derived from.
type grafanaPromJSONData struct {
	TimeInterval string `yaml:"timeInterval"`
}

type grafanaProviderFile struct {
	APIVersion int               `yaml:"apiVersion"`
	Providers  []grafanaProvider `yaml:"providers"`
}

type grafanaProvider struct {
	Name            string                 `yaml:"name"`
	Type            string                 `yaml:"type"`
	DisableDeletion bool                   `yaml:"disableDeletion"`
	AllowUIUpdates  bool                   `yaml:"allowUiUpdates"`
	Options         grafanaProviderOptions `yaml:"options"`
}

type grafanaProviderOptions struct {
	Path                      string `yaml:"path"`
	FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
}

type grafanaDashboard struct {
	UID           string           `json:"uid"`
	Title         string           `json:"title"`
	Tags          []string         `json:"tags"`
	Timezone      string           `json:"timezone"`
	Editable      bool             `json:"editable"`
	SchemaVersion int              `json:"schemaVersion"`
	Version       int              `json:"version"`
	Refresh       string           `json:"refresh"`
	Time          grafanaTimeRange `json:"time"`
	Panels        []grafanaPanel   `json:"panels"`
}

type grafanaTimeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

type grafanaPanel struct {
	ID          int                  `json:"id"`
	Type        string               `json:"type"`
	Title       string               `json:"title"`
	GridPos     grafanaGridPos       `json:"gridPos"`
	Datasource  grafanaDatasourceRef `json:"datasource"`
	FieldConfig grafanaFieldConfig   `json:"fieldConfig"`
	Targets     []grafanaTarget      `json:"targets"`
}

type grafanaGridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

type grafanaDatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaFieldConfig struct {
	Defaults  grafanaFieldDefaults `json:"defaults"`
	Overrides []struct{}           `json:"overrides"`
}

type grafanaFieldDefaults struct {
	Unit string `json:"unit,omitempty"`
}

type grafanaTarget struct {
	RefID        string               `json:"refId"`
	Datasource   grafanaDatasourceRef `json:"datasource"`
	Expr         string               `json:"expr"`
	LegendFormat string               `json:"legendFormat,omitempty"`
}

// dashboardSpec is what differs between dashboards; the layout and the
// datasource wiring are filled in by grafanaDashboardFrom.
type dashboardSpec struct {
	name   string // file name without .json, and uid suffix
	title  string
	panels []panelSpec
}

type panelSpec struct {
	title   string
	kind    string // timeseries | stat
	unit    string // Grafana unit id, e.g. "s", "bytes", "percentunit"
	queries []panelQuery
}

type panelQuery struct {
	expr   string
	legend string
}

func renderGrafana(s *stackhcl.Stack) ([]Artifact, error) {
	prom := s.First(stackhcl.KindPrometheus)
	if s.First(stackhcl.KindGrafana) == nil || prom == nil {
		return nil, nil
	}
	artifacts, err := grafanaProvisioning(s, prom)
	if err != nil {
		return nil, err
	}
	for _, spec := range grafanaDashboardSpecs(s) {
		if len(spec.panels) == 0 {
			continue
		}
		artifact, err := grafanaDashboardArtifact(s, spec)
		if err != nil {
			return nil, err
		}
		artifacts = append(artifacts, artifact)
	}
	return artifacts, nil
}

func grafanaProvisioning(s *stackhcl.Stack, prom *stackhcl.Service) ([]Artifact, error) {
	datasources := grafanaDatasourceFile{APIVersion: 1, Datasources: []grafanaDatasource{{
		Name: "Prometheus", Type: grafanaDatasourceType, UID: grafanaDatasourceUID, Access: "proxy",
		URL: "http://" + scrapeAddress(prom), IsDefault: true,
		JSONData: grafanaPromJSONData{TimeInterval: s.Monitoring.ScrapeInterval},
	}}}
	providers := grafanaProviderFile{APIVersion: 1, Providers: []grafanaProvider{{
		Name: "obcd", Type: "file", DisableDeletion: true,
		Options: grafanaProviderOptions{Path: ContainerGrafanaDashboard, FoldersFromFilesStructure: true},
	}}}
	files := []struct {
		path  string
		value any
	}{
		{path.Join(DirGrafanaDatasources, "prometheus.yml"), datasources},
		{path.Join(DirGrafanaProviders, "obcd.yml"), providers},
	}
	var artifacts []Artifact
	for _, file := range files {
		data, err := monitoringYAML(file.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file.path, err)
		}
		artifacts = append(artifacts, Artifact{Path: file.path, Mode: ModePublic, Data: data})
	}
	return artifacts, nil
}

func grafanaDashboardArtifact(s *stackhcl.Stack, spec dashboardSpec) (Artifact, error) {
	filePath := path.Join(DirGrafanaDashboards, spec.name+".json")
	data, err := monitoringJSON(grafanaDashboardFrom(s, spec))
	if err != nil {
		return Artifact{}, fmt.Errorf("%s: %w", filePath, err)
	}
	return Artifact{Path: filePath, Mode: ModePublic, Data: data}, nil
}

func grafanaDashboardFrom(s *stackhcl.Stack, spec dashboardSpec) grafanaDashboard {
	dashboard := grafanaDashboard{
		UID: "obcd-" + spec.name, Title: spec.title, Tags: []string{"obcd", s.Name, s.Environment},
		Timezone: "browser", Editable: true, SchemaVersion: grafanaSchemaVersion, Version: 1,
		Refresh: "30s", Time: grafanaTimeRange{From: "now-6h", To: "now"},
	}
	for i, panel := range spec.panels {
		dashboard.Panels = append(dashboard.Panels, grafanaPanelFrom(i, panel))
	}
	return dashboard
}

// grafanaPanelFrom lays panels out two per row, in spec order.
func grafanaPanelFrom(index int, spec panelSpec) grafanaPanel {
	datasource := grafanaDatasourceRef{Type: grafanaDatasourceType, UID: grafanaDatasourceUID}
	panel := grafanaPanel{
		ID: index + 1, Type: spec.kind, Title: spec.title, Datasource: datasource,
		GridPos: grafanaGridPos{
			H: grafanaPanelHeight, W: grafanaPanelWidth,
			X: (index % 2) * grafanaPanelWidth, Y: (index / 2) * grafanaPanelHeight,
		},
		FieldConfig: grafanaFieldConfig{Defaults: grafanaFieldDefaults{Unit: spec.unit}, Overrides: []struct{}{}},
	}
	for i, query := range spec.queries {
		panel.Targets = append(panel.Targets, grafanaTarget{
			RefID: string(rune('A' + i)), Datasource: datasource, Expr: query.expr, LegendFormat: query.legend,
		})
	}
	return panel
}

// monitoringJSON keeps PromQL's < and > readable (no HTML escaping) and
// ends the file with a newline.
func monitoringJSON(value any) ([]byte, error) {
	var buf bytes.Buffer
	encoder := json.NewEncoder(&buf)
	encoder.SetEscapeHTML(false)
	encoder.SetIndent("", "  ")
	if err := encoder.Encode(value); err != nil {
		return nil, fmt.Errorf("marshal json: %w", err)
	}
	return buf.Bytes(), nil
}

func grafanaDashboardSpecs(s *stackhcl.Stack) []dashboardSpec {
	return []dashboardSpec{
		{name: "overview", title: "Overview", panels: overviewPanels(s)},
		{name: "django", title: "Django", panels: djangoPanels(s)},
		{name: "database", title: "Database", panels: databasePanels(s)},
		{name: "redis", title: "Redis", panels: redisPanels(s)},
		{name: "celery", title: "Celery", panels: celeryPanels(s)},
	}
}

func grafanaTimeseries(title, unit string, queries ...panelQuery) panelSpec {
	return panelSpec{title: title, kind: "timeseries", unit: unit, queries: queries}
}

func grafanaStat(title, unit string, queries ...panelQuery) panelSpec {
	return panelSpec{title: title, kind: "stat", unit: unit, queries: queries}
}

func overviewPanels(s *stackhcl.Stack) []panelSpec {
	panels := []panelSpec{
		grafanaStat("Targets up", "none", panelQuery{"sum by (job) (up)", "{{job}}"}),
		grafanaTimeseries("Targets down", "none", panelQuery{"count by (job) (up == 0)", "{{job}}"}),
	}
	if hasExporter(s, stackhcl.ExporterNode) {
		panels = append(panels,
			grafanaTimeseries("CPU busy", "percent", panelQuery{`100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])))`, "{{instance}}"}),
			grafanaTimeseries("Memory available", "percentunit", panelQuery{"node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "{{instance}}"}),
			grafanaTimeseries("Disk free", "percentunit", panelQuery{`node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"} / node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"}`, "{{mountpoint}}"}),
		)
	}
	if len(s.ServicesOf(stackhcl.KindBackup)) > 0 {
		panels = append(panels, grafanaStat("Time since last backup", "s", panelQuery{"time() - " + BackupMetric, ""}))
	}
	if hasExporter(s, stackhcl.ExporterNginx) {
		panels = append(panels,
			grafanaTimeseries("nginx requests", "reqps", panelQuery{"sum by (service) (rate(nginx_http_requests_total[5m]))", "{{service}}"}),
			grafanaTimeseries("nginx connections", "none", panelQuery{"sum by (service) (nginx_connections_active)", "{{service}}"}),
		)
	}
	return panels
}

func djangoPanels(s *stackhcl.Stack) []panelSpec {
	if !s.Django.Metrics.Enabled || len(s.ServicesOf(stackhcl.KindWeb)) == 0 {
		return nil
	}
	const responses = "django_http_responses_total_by_status_view_method_total"
	const latency = "django_http_requests_latency_seconds_by_view_method_bucket"
	return []panelSpec{
		grafanaTimeseries("Requests by status", "reqps", panelQuery{"sum by (status) (rate(" + responses + "[5m]))", "{{status}}"}),
		grafanaTimeseries("Latency", "s",
			panelQuery{"histogram_quantile(0.50, sum by (le) (rate(" + latency + "[5m])))", "p50"},
			panelQuery{"histogram_quantile(0.95, sum by (le) (rate(" + latency + "[5m])))", "p95"},
			panelQuery{"histogram_quantile(0.99, sum by (le) (rate(" + latency + "[5m])))", "p99"},
		),
		grafanaTimeseries("5xx ratio", "percentunit", panelQuery{
			`sum by (service) (rate(` + responses + `{status=~"5.."}[5m])) / sum by (service) (rate(` + responses + `[5m]))`, "{{service}}",
		}),
		grafanaTimeseries("Busiest views", "reqps", panelQuery{
			"topk(10, sum by (view) (rate(django_http_requests_total_by_view_transport_method_total[5m])))", "{{view}}",
		}),
		grafanaTimeseries("Exceptions by type", "reqps", panelQuery{"sum by (type) (rate(django_http_exceptions_total_by_type_total[5m]))", "{{type}}"}),
	}
}

func databasePanels(s *stackhcl.Stack) []panelSpec {
	var panels []panelSpec
	if hasExporter(s, stackhcl.ExporterPostgres) {
		panels = append(panels, postgresPanels()...)
	}
	if hasExporter(s, stackhcl.ExporterPgBouncer) {
		panels = append(panels, pgbouncerPanels()...)
	}
	return panels
}

func postgresPanels() []panelSpec {
	return []panelSpec{
		grafanaTimeseries("PostgreSQL connections", "none",
			panelQuery{"sum by (service) (pg_stat_activity_count)", "{{service}} in use"},
			panelQuery{"max by (service) (pg_settings_max_connections)", "{{service}} max_connections"},
		),
		grafanaTimeseries("Connections by state", "none", panelQuery{"sum by (state) (pg_stat_activity_count)", "{{state}}"}),
		grafanaTimeseries("Transactions", "ops",
			panelQuery{"sum by (datname) (rate(pg_stat_database_xact_commit[5m]))", "{{datname}} commit"},
			panelQuery{"sum by (datname) (rate(pg_stat_database_xact_rollback[5m]))", "{{datname}} rollback"},
		),
		grafanaTimeseries("Deadlocks", "none", panelQuery{"sum by (datname) (increase(pg_stat_database_deadlocks[1h]))", "{{datname}}"}),
		grafanaTimeseries("Replication lag", "s", panelQuery{"max by (application_name) (pg_replication_lag)", "{{application_name}}"}),
		grafanaTimeseries("Replication lag (bytes)", "bytes", panelQuery{"max by (application_name) (pg_replication_lag_bytes)", "{{application_name}}"}),
	}
}

func pgbouncerPanels() []panelSpec {
	return []panelSpec{
		grafanaTimeseries("PgBouncer clients", "none",
			panelQuery{"sum by (database) (pgbouncer_pools_client_active_connections)", "{{database}} active"},
			panelQuery{"sum by (database) (pgbouncer_pools_client_waiting_connections)", "{{database}} waiting"},
		),
		grafanaTimeseries("PgBouncer server connections", "none",
			panelQuery{"sum by (database) (pgbouncer_pools_server_active_connections)", "{{database}} active"},
			panelQuery{"sum by (database) (pgbouncer_pools_server_idle_connections)", "{{database}} idle"},
		),
		grafanaTimeseries("PgBouncer longest client wait", "s", panelQuery{"max by (database) (pgbouncer_pools_client_maxwait_seconds)", "{{database}}"}),
		grafanaTimeseries("PgBouncer queries", "ops", panelQuery{"sum by (database) (rate(pgbouncer_stats_queries_pooled_total[5m]))", "{{database}}"}),
	}
}

func redisPanels(s *stackhcl.Stack) []panelSpec {
	if !hasExporter(s, stackhcl.ExporterRedis) {
		return nil
	}
	return []panelSpec{
		grafanaTimeseries("Memory", "bytes",
			panelQuery{"redis_memory_used_bytes", "{{service}} used"},
			panelQuery{"redis_memory_max_bytes > 0", "{{service}} maxmemory"},
		),
		grafanaTimeseries("Connected clients", "none", panelQuery{"redis_connected_clients", "{{service}}"}),
		grafanaTimeseries("Commands", "ops", panelQuery{"rate(redis_commands_processed_total[5m])", "{{service}}"}),
		grafanaTimeseries("Cache hit ratio", "percentunit", panelQuery{
			"rate(redis_keyspace_hits_total[5m]) / (rate(redis_keyspace_hits_total[5m]) + rate(redis_keyspace_misses_total[5m]))", "{{service}}",
		}),
		grafanaTimeseries("Evicted keys", "ops", panelQuery{"rate(redis_evicted_keys_total[5m])", "{{service}}"}),
		grafanaTimeseries("Keys per database", "none", panelQuery{"sum by (db) (redis_db_keys)", "{{db}}"}),
	}
}

func celeryPanels(s *stackhcl.Stack) []panelSpec {
	if !hasExporter(s, stackhcl.ExporterCelery) {
		return nil
	}
	return []panelSpec{
		grafanaStat("Workers up", "none", panelQuery{"sum(celery_worker_up) or vector(0)", ""}),
		grafanaTimeseries("Tasks", "ops",
			panelQuery{"sum by (name) (rate(celery_task_succeeded_total[5m]))", "{{name}} succeeded"},
			panelQuery{"sum by (name) (rate(celery_task_failed_total[5m]))", "{{name}} failed"},
		),
		grafanaTimeseries("Task runtime p95", "s", panelQuery{
			"histogram_quantile(0.95, sum by (name, le) (rate(celery_task_runtime_bucket[5m])))", "{{name}}",
		}),
		grafanaTimeseries("Queue length", "none", panelQuery{"sum by (queue_name) (celery_queue_length)", "{{queue_name}}"}),
		grafanaTimeseries("Active tasks per worker", "none", panelQuery{"sum by (hostname) (celery_worker_tasks_active)", "{{hostname}}"}),
	}
}
