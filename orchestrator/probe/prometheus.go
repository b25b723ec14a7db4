package probe

// prometheus.go checks a Prometheus server through its HTTP API: scrape
// targets up, rules loaded, Alertmanagers discovered. It also holds the
// JSON-over-HTTP helper the monitoring probes share.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// PrometheusMode selects what a Prometheus probe checks.
type PrometheusMode string

// Prometheus probe modes.
const (
	// PrometheusTargets: every expected job has targets, all up.
	PrometheusTargets PrometheusMode = "targets"
	// PrometheusRules: at least MinRules rules are loaded, each evaluated
	// at least once and none failing.
	PrometheusRules PrometheusMode = "rules"
	// PrometheusAlertmanagers: Prometheus has found an Alertmanager to send to.
	PrometheusAlertmanagers PrometheusMode = "alertmanagers"
)

// PrometheusConfig is what a Prometheus probe checks.
type PrometheusConfig struct {
	URL  string // base URL, e.g. http://127.0.0.1:9090
	Mode PrometheusMode
	// ExpectJobs (targets mode): each job (scrape pool) must have targets,
	// every one with health "up". Empty: every active target must be up.
	ExpectJobs []string
	// Discovered (targets mode) are the jobs whose targets come from DNS,
	// with how many replicas each has. Such a job passes with that many
	// targets up: its other targets are replicas that left, which
	// Prometheus keeps, down, until its next DNS refresh (30 s).
	Discovered map[string]int
	// MinRules (rules mode): at least this many rules loaded; 0 means 1.
	MinRules int
	Client   *http.Client `json:"-"` // nil: a plain client; the attempt's ctx bounds it
}

// Prometheus returns a checker for cfg.Mode. An unknown mode is fatal.
func Prometheus(cfg PrometheusConfig) Checker {
	base := strings.TrimRight(cfg.URL, "/")
	switch cfg.Mode {
	case PrometheusTargets:
		return CheckFunc(func(ctx context.Context) Attempt { return prometheusTargets(ctx, cfg, base) })
	case PrometheusRules:
		return CheckFunc(func(ctx context.Context) Attempt { return prometheusRules(ctx, cfg, base) })
	case PrometheusAlertmanagers:
		return CheckFunc(func(ctx context.Context) Attempt { return prometheusAlertmanagers(ctx, cfg, base) })
	default:
		return CheckFunc(func(context.Context) Attempt {
			return Fatalf("unknown Prometheus probe mode %q: want %s, %s or %s",
				cfg.Mode, PrometheusTargets, PrometheusRules, PrometheusAlertmanagers)
		})
	}
}

// promTarget is one entry of /api/v1/targets' activeTargets.
type promTarget struct {
	Labels     map[string]string `json:"labels"`
	ScrapePool string            `json:"scrapePool"`
	ScrapeURL  string            `json:"scrapeUrl"`
	Health     string            `json:"health"`
	LastError  string            `json:"lastError"`
}

func prometheusTargets(ctx context.Context, cfg PrometheusConfig, base string) Attempt {
	var data struct {
		ActiveTargets []promTarget `json:"activeTargets"`
	}
	if failed := promAPIGet(ctx, cfg.Client, base, "/api/v1/targets?state=active", &data); failed != nil {
		return *failed
	}
	byJob := map[string][]promTarget{}
	for _, target := range data.ActiveTargets {
		byJob[target.ScrapePool] = append(byJob[target.ScrapePool], target)
	}
	jobs := cfg.ExpectJobs
	if len(jobs) == 0 {
		if len(data.ActiveTargets) == 0 {
			return Failed("expected active scrape targets, Prometheus at %s has none", base)
		}
		jobs = slices.Sorted(maps.Keys(byJob))
	}
	var problems []string
	up, stale, down := 0, 0, 0
	for _, job := range jobs {
		targets := byJob[job]
		if len(targets) == 0 {
			problems = append(problems, fmt.Sprintf("job %q has no active targets (jobs present: %s)", job, monitorListOrNone(slices.Sorted(maps.Keys(byJob)))))
			continue
		}
		var jobProblems []string
		jobUp, jobDown := 0, 0
		for _, target := range targets {
			switch target.Health {
			case "up":
				jobUp++
			case "unknown":
				jobProblems = append(jobProblems, fmt.Sprintf("job %q target %s not scraped yet", job, target.ScrapeURL))
			default:
				jobDown++
				jobProblems = append(jobProblems, fmt.Sprintf("job %q target %s is %s: %s", job, target.ScrapeURL, target.Health, monitorOrNone(target.LastError)))
			}
		}
		up += jobUp
		if want, discovered := cfg.Discovered[job]; discovered && jobUp >= want {
			// Every replica is up; the rest left in a roll.
			stale += len(jobProblems)
			continue
		}
		problems = append(problems, jobProblems...)
		if _, discovered := cfg.Discovered[job]; !discovered {
			down += jobDown
		}
	}
	if len(problems) > 0 {
		// A target of a static job found down is an answer. One not
		// scraped yet, a job not discovered yet, or a down target of a
		// job found by DNS (a replica that left, until the next refresh
		// finds the new ones) only wants time.
		failed := Failed
		if down > 0 {
			failed = Definitef
		}
		return failed("expected every target of %s up: %s", strings.Join(monitorQuoted(jobs), ", "), strings.Join(problems, "; "))
	}
	if stale > 0 {
		return Passed("%d targets up in %s (%d more of replicas that left, until Prometheus refreshes its DNS)", up, strings.Join(monitorQuoted(jobs), ", "), stale)
	}
	return Passed("%d targets up in %s", up, strings.Join(monitorQuoted(jobs), ", "))
}

func prometheusRules(ctx context.Context, cfg PrometheusConfig, base string) Attempt {
	var data struct {
		Groups []struct {
			Name  string `json:"name"`
			File  string `json:"file"`
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if failed := promAPIGet(ctx, cfg.Client, base, "/api/v1/rules", &data); failed != nil {
		return *failed
	}
	minRules := max(cfg.MinRules, 1)
	count, unevaluated := 0, 0
	var broken []string
	for _, group := range data.Groups {
		for _, rule := range group.Rules {
			count++
			switch rule.Health {
			case "err":
				broken = append(broken, fmt.Sprintf("rule %q in group %q: %s", rule.Name, group.Name, monitorOrNone(rule.LastError)))
			case "unknown", "":
				unevaluated++
			}
		}
	}
	loaded := fmt.Sprintf("%d rules in %d groups", count, len(data.Groups))
	switch {
	case count < minRules:
		return Failed("expected at least %d rules loaded, Prometheus at %s has %s", minRules, base, loaded)
	case len(broken) > 0:
		return Definitef("%s loaded, %d failing to evaluate: %s", loaded, len(broken), strings.Join(broken, "; "))
	case unevaluated > 0:
		// An error shows only once a rule is evaluated, within one
		// evaluation_interval of loading it.
		return Failed("%s loaded, %d not evaluated yet", loaded, unevaluated)
	}
	return Passed("%s loaded and evaluated", loaded)
}

func prometheusAlertmanagers(ctx context.Context, cfg PrometheusConfig, base string) Attempt {
	type alertmanager struct {
		URL string `json:"url"`
	}
	var data struct {
		Active  []alertmanager `json:"activeAlertmanagers"`
		Dropped []alertmanager `json:"droppedAlertmanagers"`
	}
	if failed := promAPIGet(ctx, cfg.Client, base, "/api/v1/alertmanagers", &data); failed != nil {
		return *failed
	}
	if len(data.Active) == 0 {
		return Failed("expected at least one active Alertmanager, Prometheus at %s has none (%d dropped); check its alerting config",
			base, len(data.Dropped))
	}
	urls := make([]string, len(data.Active))
	for i, am := range data.Active {
		urls[i] = am.URL
	}
	return Passed("sends alerts to %s", strings.Join(urls, ", "))
}

// promAPIGet GETs a Prometheus API path and decodes the "data" of a
// success envelope into data. It returns nil on success, else the attempt.
func promAPIGet(ctx context.Context, httpClient *http.Client, base, path string, data any) *Attempt {
	var envelope struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	status, failed := monitorGetJSON(ctx, httpClient, base+path, "", "", &envelope)
	if failed != nil {
		return failed
	}
	if envelope.Status != "success" {
		attempt := Failed("GET %s: expected status success, got HTTP %d %q: %s %s", path, status, envelope.Status, envelope.ErrorType, envelope.Error)
		return &attempt
	}
	if err := json.Unmarshal(envelope.Data, data); err != nil {
		attempt := Failed("GET %s: data is not what Prometheus sends: %v", path, err)
		return &attempt
	}
	return nil
}

// monitorBodyLimit bounds what the monitoring probes read of an answer.
const monitorBodyLimit = 8 << 20

// monitorGetJSON GETs url (with basic auth when user is set) and decodes
// its JSON body into into, whatever the status, which it returns. It
// returns an attempt when there is no usable answer: unreachable (Fail),
// credentials refused (Fatal), any other non-JSON answer (Fail).
func monitorGetJSON(ctx context.Context, httpClient *http.Client, url, user, password string, into any) (int, *Attempt) {
	status, body, failed := monitorGet(ctx, httpClient, url, user, password)
	if failed != nil {
		return status, failed
	}
	if err := json.Unmarshal(body, into); err != nil {
		attempt := Failed("GET %s: expected JSON, got HTTP %d: %s", url, status, monitorExcerpt(body))
		return status, &attempt
	}
	return status, nil
}

// monitorGet GETs url and returns its status and body, or an attempt when
// it is unreachable or refuses the credentials.
func monitorGet(ctx context.Context, httpClient *http.Client, url, user, password string) (int, []byte, *Attempt) {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		attempt := Fatalf("bad URL %q: %v", url, err)
		return 0, nil, &attempt
	}
	req.Header.Set("Accept", "application/json")
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		attempt := Failed("GET %s: %v", url, err)
		return 0, nil, &attempt
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, monitorBodyLimit))
	if err != nil {
		attempt := Failed("GET %s: HTTP %d, reading the body: %v", url, resp.StatusCode, err)
		return resp.StatusCode, nil, &attempt
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		who := "without credentials"
		if user != "" {
			who = fmt.Sprintf("as user %q", user)
		}
		attempt := Fatalf("GET %s %s: expected 200, got HTTP %d: %s", url, who, resp.StatusCode, monitorExcerpt(body))
		return resp.StatusCode, nil, &attempt
	}
	return resp.StatusCode, body, nil
}

// monitorExcerpt is the start of a body, on one line, for a message.
func monitorExcerpt(body []byte) string {
	text := strings.Join(strings.Fields(string(body)), " ")
	if text == "" {
		return "(empty body)"
	}
	const limit = 200
	if len(text) > limit {
		return text[:limit] + "…"
	}
	return text
}

func monitorQuoted(names []string) []string {
	quoted := make([]string, len(names))
	for i, name := range names {
		quoted[i] = fmt.Sprintf("%q", name)
	}
	return quoted
}

func monitorListOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func monitorOrNone(s string) string {
	if s == "" {
		return "(no error given)"
	}
	return s
}
