package testsvc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const testRuleFile = `groups:
  - name: testsvc
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
`

func TestStartPrometheus_LoadsRuleFilesAndReloadsConfig(t *testing.T) {
	config := "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [\"rules/*.yml\"]\nscrape_configs:\n  - job_name: self\n    static_configs: [{targets: [\"127.0.0.1:1\"]}]\n"
	prom := StartPrometheus(t, config, map[string]string{"rules/test.yml": testRuleFile})

	var rules struct {
		Data struct {
			Groups []struct {
				Name string `json:"name"`
			} `json:"groups"`
		} `json:"data"`
	}
	getJSON(t, prom.URL+"/api/v1/rules", &rules)
	if len(rules.Data.Groups) != 1 || rules.Data.Groups[0].Name != "testsvc" {
		t.Fatalf("rule groups = %+v, want the one group of rules/test.yml\n%s", rules.Data.Groups, prom.Log())
	}

	WriteFile(t, prom.ConfigPath, []byte(strings.Replace(config, "job_name: self", "job_name: reloaded", 1)), 0o644)
	if err := prom.Reload(); err != nil {
		t.Fatalf("Reload: %v\n%s", err, prom.Log())
	}
	var targets struct {
		Data struct {
			ActiveTargets []struct {
				ScrapePool string `json:"scrapePool"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		getJSON(t, prom.URL+"/api/v1/targets", &targets)
		if len(targets.Data.ActiveTargets) == 1 && targets.Data.ActiveTargets[0].ScrapePool == "reloaded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Reload, targets = %+v, want the job \"reloaded\" only", targets.Data.ActiveTargets)
		}
		time.Sleep(200 * time.Millisecond)
	}

	WriteFile(t, prom.ConfigPath, []byte("scrape_configs: [{job_name: x, no_such_key: 1}]\n"), 0o644)
	if err := prom.Reload(); err == nil || !strings.Contains(err.Error(), "no_such_key") {
		t.Fatalf("Reload of a bad config = %v, want Prometheus's error naming no_such_key", err)
	}
}

func TestStartAlertmanager_ServesItsConfig(t *testing.T) {
	config := "route: {receiver: \"null\"}\nreceivers: [{name: \"null\"}]\n"
	am := StartAlertmanager(t, config)
	var status struct {
		Cluster struct {
			Status string `json:"status"`
		} `json:"cluster"`
		Config struct {
			Original string `json:"original"`
		} `json:"config"`
	}
	getJSON(t, am.URL+"/api/v2/status", &status)
	if !strings.Contains(status.Config.Original, "receiver: \"null\"") && !strings.Contains(status.Config.Original, "receiver: null") {
		t.Fatalf("config.original = %q, want the config the test wrote", status.Config.Original)
	}
	if status.Cluster.Status != "disabled" {
		t.Fatalf("cluster status = %q, want disabled (gossip off)", status.Cluster.Status)
	}
	am.Stop()
	am.Stop()
	if err := readyProbe(am.URL)(context.Background()); err == nil {
		t.Fatal("Alertmanager still answers after Stop")
	}
}

// getJSON decodes the 200 answer of GET url into into.
func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d, %v: %s", url, resp.StatusCode, err, body)
	}
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatal(fmt.Errorf("GET %s: %w: %s", url, err, body))
	}
}
