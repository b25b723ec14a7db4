package probe

// alertmanager.go checks that an Alertmanager is ready and has loaded its
// config.

import (
	"context"
	"net/http"
	"strings"
)

// AlertmanagerConfig is what an Alertmanager probe checks.
type AlertmanagerConfig struct {
	URL    string       // base URL, e.g. http://127.0.0.1:9093
	Client *http.Client `json:"-"` // nil: a plain client; the attempt's ctx bounds it
}

// Alertmanager returns a checker that wants GET /-/ready to answer 200 and
// /api/v2/status to carry the loaded config (a non-empty config.original).
func Alertmanager(cfg AlertmanagerConfig) Checker {
	base := strings.TrimRight(cfg.URL, "/")
	return CheckFunc(func(ctx context.Context) Attempt {
		status, body, failed := monitorGet(ctx, cfg.Client, base+"/-/ready", "", "")
		if failed != nil {
			return *failed
		}
		if status != http.StatusOK {
			return Failed("GET %s/-/ready: expected 200, got HTTP %d: %s", base, status, monitorExcerpt(body))
		}
		var amStatus struct {
			Config struct {
				Original string `json:"original"`
			} `json:"config"`
			VersionInfo struct {
				Version string `json:"version"`
			} `json:"versionInfo"`
			Cluster struct {
				Status string `json:"status"`
			} `json:"cluster"`
		}
		status, failed = monitorGetJSON(ctx, cfg.Client, base+"/api/v2/status", "", "", &amStatus)
		if failed != nil {
			return *failed
		}
		if status != http.StatusOK {
			return Failed("GET %s/api/v2/status: expected 200, got HTTP %d", base, status)
		}
		if strings.TrimSpace(amStatus.Config.Original) == "" {
			return Failed("Alertmanager at %s is ready but /api/v2/status shows no config loaded (empty config.original)", base)
		}
		return Passed("ready, config loaded (%d bytes), version %s, cluster %s",
			len(amStatus.Config.Original), monitorOrUnknown(amStatus.VersionInfo.Version), monitorOrUnknown(amStatus.Cluster.Status))
	})
}

func monitorOrUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
