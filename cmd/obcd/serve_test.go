package main

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/orchestrator/telemetry"
)

func TestServe_StatusEndpointAndMetrics(t *testing.T) {
	loader := stackhcl.NewLoader(stackhcl.Options{Environment: "staging"})
	stack, diags := loader.Load("../../stacks/obcms.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	srv := &statusServer{stack: stack, metrics: telemetry.New(stack.Name, stack.Environment, "test")}
	handler := srv.handler()
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec
	}
	if rec := get("/api/monitoring/status"); rec.Code != 503 {
		t.Errorf("before any probe round: %d, want 503", rec.Code)
	}
	var all []probe.Result
	for _, c := range []string{probe.ComponentPrometheus, probe.ComponentCelery, probe.ComponentRedis, probe.ComponentDatabase,
		probe.ComponentWeb, probe.ComponentAlertmanager, probe.ComponentGrafana} {
		all = append(all, probe.Result{Name: c + "-probe", Kind: "http", Component: c, Critical: true, Status: probe.StatusPass, Attempts: 1})
	}
	srv.update(all)
	rec := get("/api/monitoring/status/")
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != 200 || doc["overall_status"] != "healthy" {
		t.Errorf("healthy: %d %v %s", rec.Code, err, rec.Body)
	}
	all[3].Status, all[3].Message = probe.StatusFail, "connection refused"
	srv.update(all)
	if rec := get("/api/monitoring/status"); rec.Code != 503 || !strings.Contains(rec.Body.String(), `"database": false`) {
		t.Errorf("unhealthy: %d %s", rec.Code, rec.Body)
	}
	metrics := get("/metrics").Body.String()
	if !strings.Contains(metrics, `obcd_probe_success{component="database",critical="true",environment="staging",kind="http",probe="database-probe",stack="obcms"} 0`) {
		t.Errorf("metrics lack the failed probe:\n%s", metrics)
	}
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("POST", "/api/monitoring/status", nil))
	if rec.Code != 405 {
		t.Errorf("POST: %d", rec.Code)
	}
}
