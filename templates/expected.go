package templates

import stackhcl "github.com/obcd/obcd/hcl"

// PrometheusJobs lists the scrape jobs the rendered prometheus.yml holds,
// in order; probes expect each to be up. Nil when there is no Prometheus.
func PrometheusJobs(s *stackhcl.Stack) []string {
	prom := s.First(stackhcl.KindPrometheus)
	if prom == nil {
		return nil
	}
	var jobs []string
	for _, job := range prometheusScrapeConfigs(s, prom) {
		jobs = append(jobs, job.JobName)
	}
	return jobs
}

// PrometheusDiscoveredJobs are the scrape jobs whose targets Prometheus
// finds by DNS (every web replica), with how many replicas each has.
// After a roll, Prometheus keeps the replicas that left as down targets
// until its next DNS refresh; a probe that knows the count tells those
// from a replica that is down.
func PrometheusDiscoveredJobs(s *stackhcl.Stack) map[string]int {
	prom := s.First(stackhcl.KindPrometheus)
	if prom == nil {
		return nil
	}
	jobs := map[string]int{}
	for _, job := range prometheusScrapeConfigs(s, prom) {
		if len(job.DNSSDConfigs) == 0 {
			continue
		}
		for _, sd := range job.DNSSDConfigs {
			for _, name := range sd.Names {
				if svc := s.Service(name); svc != nil {
					jobs[job.JobName] += max(svc.Replicas, 1)
				}
			}
		}
	}
	return jobs
}

// GrafanaDashboardUIDs lists the uids of the provisioned dashboards.
// Nil when Grafana is not provisioned.
func GrafanaDashboardUIDs(s *stackhcl.Stack) []string {
	if s.First(stackhcl.KindGrafana) == nil || s.First(stackhcl.KindPrometheus) == nil {
		return nil
	}
	var uids []string
	for _, spec := range grafanaDashboardSpecs(s) {
		if len(spec.panels) > 0 {
			uids = append(uids, "obcd-"+spec.name)
		}
	}
	return uids
}
