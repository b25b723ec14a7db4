package templates

// prometheus.go is the entry point of the monitoring family and renders
// prometheus.yml plus the Prometheus command line.

import (
	"bytes"
	"fmt"
	"strconv"

	stackhcl "github.com/obcd/obcd/hcl"
	"gopkg.in/yaml.v3"
)

// Prometheus settings shared by the config file and the command line.
const (
	prometheusConfigFile  = ContainerPrometheusDir + "/prometheus.yml"
	prometheusDataDir     = "/prometheus"
	prometheusDefaultPort = 9090
	// prometheusRuleGlob is relative: Prometheus resolves it against the
	// directory of prometheus.yml, so it works in the container and in a
	// test's temp dir alike.
	prometheusRuleGlob = "rules/*.yml"
	// jobDjango is the scrape job of every web replica; rules and
	// dashboards select on it.
	jobDjango = "django"
)

// renderMonitoring renders prometheus.yml, the alert rules, the
// postgres_exporter queries, alertmanager.yml and Grafana's provisioning
// and dashboards. Each part is rendered only when the services it serves
// exist in the stack.
func renderMonitoring(s *stackhcl.Stack) ([]Artifact, error) {
	renderers := []func(*stackhcl.Stack) ([]Artifact, error){
		renderPrometheusConfig,
		renderPrometheusRules,
		renderPostgresQueries,
		renderAlertmanagerConfig,
		renderGrafana,
	}
	var artifacts []Artifact
	for _, render := range renderers {
		rendered, err := render(s)
		if err != nil {
			return nil, fmt.Errorf("render monitoring for %s/%s: %w", s.Name, s.Environment, err)
		}
		artifacts = append(artifacts, rendered...)
	}
	return artifacts, nil
}

// PrometheusArgs is the Prometheus command line. Retention lives here,
// not in prometheus.yml: promtool 2.42 rejects it in the config file.
func PrometheusArgs(s *stackhcl.Stack) []string {
	args := []string{
		"--config.file=" + prometheusConfigFile,
		"--storage.tsdb.path=" + prometheusDataDir,
		"--storage.tsdb.retention.time=" + s.Monitoring.Retention,
		"--web.enable-lifecycle",
	}
	if prom := s.First(stackhcl.KindPrometheus); prom != nil && prom.Port != prometheusDefaultPort {
		args = append(args, "--web.listen-address=:"+strconv.Itoa(prom.Port))
	}
	return args
}

type promConfig struct {
	Global        promGlobal         `yaml:"global"`
	RuleFiles     []string           `yaml:"rule_files"`
	Alerting      *promAlerting      `yaml:"alerting,omitempty"`
	ScrapeConfigs []promScrapeConfig `yaml:"scrape_configs"`
}

type promGlobal struct {
	ScrapeInterval     string            `yaml:"scrape_interval"`
	EvaluationInterval string            `yaml:"evaluation_interval"`
	ExternalLabels     map[string]string `yaml:"external_labels"`
}

type promAlerting struct {
	Alertmanagers []promAlertmanager `yaml:"alertmanagers"`
}

type promAlertmanager struct {
	StaticConfigs []promStaticConfig `yaml:"static_configs"`
}

type promStaticConfig struct {
	Targets []string          `yaml:"targets"`
	Labels  map[string]string `yaml:"labels,omitempty"`
}

type promScrapeConfig struct {
	JobName        string             `yaml:"job_name"`
	MetricsPath    string             `yaml:"metrics_path,omitempty"`
	StaticConfigs  []promStaticConfig `yaml:"static_configs,omitempty"`
	DNSSDConfigs   []promDNSSDConfig  `yaml:"dns_sd_configs,omitempty"`
	RelabelConfigs []promRelabel      `yaml:"relabel_configs,omitempty"`
}

// promDNSSDConfig resolves a compose service name to every replica's
// address, so each web container is scraped on its own.
type promDNSSDConfig struct {
	Names []string `yaml:"names"`
	Type  string   `yaml:"type"`
	Port  int      `yaml:"port"`
}

type promRelabel struct {
	SourceLabels []string `yaml:"source_labels"`
	TargetLabel  string   `yaml:"target_label"`
}

func renderPrometheusConfig(s *stackhcl.Stack) ([]Artifact, error) {
	prom := s.First(stackhcl.KindPrometheus)
	if prom == nil {
		return nil, nil
	}
	config := promConfig{
		Global: promGlobal{
			ScrapeInterval:     s.Monitoring.ScrapeInterval,
			EvaluationInterval: s.Monitoring.EvaluationInterval,
			ExternalLabels:     map[string]string{"environment": s.Environment, "stack": s.Name},
		},
		RuleFiles:     []string{prometheusRuleGlob},
		Alerting:      prometheusAlerting(s),
		ScrapeConfigs: prometheusScrapeConfigs(s, prom),
	}
	data, err := monitoringYAML(config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", PathPrometheus, err)
	}
	return []Artifact{{Path: PathPrometheus, Mode: ModePublic, Data: data}}, nil
}

func prometheusAlerting(s *stackhcl.Stack) *promAlerting {
	var targets []string
	for _, am := range s.ServicesOf(stackhcl.KindAlertmanager) {
		targets = append(targets, scrapeAddress(am))
	}
	if len(targets) == 0 {
		return nil
	}
	return &promAlerting{Alertmanagers: []promAlertmanager{{StaticConfigs: []promStaticConfig{{Targets: targets}}}}}
}

func prometheusScrapeConfigs(s *stackhcl.Stack, prom *stackhcl.Service) []promScrapeConfig {
	jobs := []promScrapeConfig{staticJob("prometheus", "localhost:"+strconv.Itoa(prom.Port), prom.Name)}
	for _, am := range s.ServicesOf(stackhcl.KindAlertmanager) {
		jobs = appendStaticTarget(jobs, "alertmanager", scrapeAddress(am), am.Name)
	}
	if job, ok := djangoScrapeJob(s); ok {
		jobs = append(jobs, job)
	}
	for _, exporter := range s.ServicesOf(stackhcl.KindExporter) {
		jobs = appendStaticTarget(jobs, exporter.Exporter.Type, scrapeAddress(exporter), monitoredService(exporter))
	}
	return jobs
}

// djangoScrapeJob scrapes every replica of every web service through DNS,
// and labels each target with the web service it belongs to.
func djangoScrapeJob(s *stackhcl.Stack) (promScrapeConfig, bool) {
	webServices := s.ServicesOf(stackhcl.KindWeb)
	if !s.Django.Metrics.Enabled || len(webServices) == 0 {
		return promScrapeConfig{}, false
	}
	job := promScrapeConfig{
		JobName:        jobDjango,
		MetricsPath:    s.Django.Metrics.Path,
		RelabelConfigs: []promRelabel{{SourceLabels: []string{"__meta_dns_name"}, TargetLabel: "service"}},
	}
	for _, web := range webServices {
		job.DNSSDConfigs = append(job.DNSSDConfigs, promDNSSDConfig{Names: []string{web.Name}, Type: "A", Port: web.Port})
	}
	return job, true
}

func staticJob(jobName, target, serviceName string) promScrapeConfig {
	return promScrapeConfig{JobName: jobName, StaticConfigs: []promStaticConfig{serviceTarget(target, serviceName)}}
}

// appendStaticTarget adds a target to the job with that name, creating
// the job at the end when it does not exist yet: two exporters of one
// type share one job.
func appendStaticTarget(jobs []promScrapeConfig, jobName, target, serviceName string) []promScrapeConfig {
	for i := range jobs {
		if jobs[i].JobName == jobName {
			jobs[i].StaticConfigs = append(jobs[i].StaticConfigs, serviceTarget(target, serviceName))
			return jobs
		}
	}
	return append(jobs, staticJob(jobName, target, serviceName))
}

func serviceTarget(target, serviceName string) promStaticConfig {
	return promStaticConfig{Targets: []string{target}, Labels: map[string]string{"service": serviceName}}
}

// monitoredService is the service an exporter reports on: its target, or
// the exporter itself for the node exporter.
func monitoredService(exporter *stackhcl.Service) string {
	if exporter.Exporter.Target != "" {
		return exporter.Exporter.Target
	}
	return exporter.Name
}

func scrapeAddress(svc *stackhcl.Service) string {
	return svc.Name + ":" + strconv.Itoa(svc.Port)
}

// monitoringYAML marshals with two-space indent; yaml.v3 sorts map keys,
// so the output is the same on every run.
func monitoringYAML(value any) ([]byte, error) {
	var buf bytes.Buffer
	encoder := yaml.NewEncoder(&buf)
	encoder.SetIndent(2)
	if err := encoder.Encode(value); err != nil {
		return nil, fmt.Errorf("marshal yaml: %w", err)
	}
	if err := encoder.Close(); err != nil {
		return nil, fmt.Errorf("marshal yaml: %w", err)
	}
	return buf.Bytes(), nil
}
