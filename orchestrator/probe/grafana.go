package probe

// grafana.go checks that Grafana's database is up and that the
// provisioned dashboards are there.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// GrafanaConfig is what a Grafana probe checks.
type GrafanaConfig struct {
	URL      string // base URL, e.g. http://127.0.0.1:3000
	User     string // basic auth for /api/search
	Password string
	// Dashboards are the uids /api/search must find; none: only health
	// is checked.
	Dashboards []string
	Client     *http.Client `json:"-"` // nil: a plain client; the attempt's ctx bounds it
}

// Grafana returns a checker that wants /api/health to report database
// "ok" and, with basic auth, /api/search?type=dash-db to list every
// expected dashboard uid. Refused credentials are fatal.
func Grafana(cfg GrafanaConfig) Checker {
	base := strings.TrimRight(cfg.URL, "/")
	return CheckFunc(func(ctx context.Context) Attempt {
		if attempt := grafanaHealth(ctx, cfg, base); attempt.Outcome != Pass || len(cfg.Dashboards) == 0 {
			return attempt
		}
		return grafanaDashboards(ctx, cfg, base)
	})
}

func grafanaHealth(ctx context.Context, cfg GrafanaConfig, base string) Attempt {
	var health struct {
		Database string `json:"database"`
		Version  string `json:"version"`
	}
	// Grafana answers 503 with database "failing" when its database is down.
	status, failed := monitorGetJSON(ctx, cfg.Client, base+"/api/health", "", "", &health)
	if failed != nil {
		return *failed
	}
	if health.Database != "ok" {
		return Failed("GET %s/api/health: expected database \"ok\", got %q (HTTP %d)", base, health.Database, status)
	}
	return Passed("database ok, version %s", monitorOrUnknown(health.Version))
}

func grafanaDashboards(ctx context.Context, cfg GrafanaConfig, base string) Attempt {
	var found []struct {
		UID   string `json:"uid"`
		Title string `json:"title"`
	}
	url := base + "/api/search?type=dash-db"
	status, failed := monitorGetJSON(ctx, cfg.Client, url, cfg.User, cfg.Password, &found)
	if failed != nil {
		return *failed
	}
	if status != http.StatusOK {
		return Failed("GET %s: expected 200, got HTTP %d", url, status)
	}
	present := make(map[string]bool, len(found))
	for _, dashboard := range found {
		present[dashboard.UID] = true
	}
	var missing []string
	for _, uid := range cfg.Dashboards {
		if !present[uid] {
			missing = append(missing, uid)
		}
	}
	if len(missing) > 0 {
		return Failed("expected dashboards %s, missing %s (Grafana lists %d dashboards)",
			strings.Join(monitorQuoted(cfg.Dashboards), ", "), strings.Join(monitorQuoted(missing), ", "), len(found))
	}
	return Passed("database ok, %s", grafanaCount(len(cfg.Dashboards)))
}

func grafanaCount(n int) string {
	if n == 1 {
		return "1 dashboard found"
	}
	return fmt.Sprintf("all %d dashboards found", n)
}
