package probe

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// grafanaFakeServer mimics Grafana's /api/health (database as given) and
// /api/search?type=dash-db (uids, behind basic auth admin/secret).
func grafanaFakeServer(t *testing.T, database string, uids ...string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if database != "ok" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"commit": "abc", "database": database, "version": "10.4.0"})
	})
	mux.HandleFunc("GET /api/search", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if user, password, ok := r.BasicAuth(); !ok || user != "admin" || password != "secret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"message":"Invalid username or password"}`))
			return
		}
		if r.URL.Query().Get("type") != "dash-db" {
			t.Errorf("search query %q, want type=dash-db", r.URL.RawQuery)
		}
		found := []map[string]string{}
		for _, uid := range uids {
			found = append(found, map[string]string{"uid": uid, "title": "Dashboard " + uid, "type": "dash-db"})
		}
		_ = json.NewEncoder(w).Encode(found)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestGrafana(t *testing.T) {
	tests := []struct {
		name        string
		database    string
		present     []string
		password    string
		expected    []string
		wantOutcome Outcome
		wantMessage []string
	}{
		{name: "AllDashboardsPass", database: "ok", present: []string{"django", "postgres", "extra"}, password: "secret",
			expected: []string{"django", "postgres"}, wantOutcome: Pass, wantMessage: []string{"all 2 dashboards found"}},
		{name: "HealthOnlyPassesWithoutDashboards", database: "ok", expected: nil, wantOutcome: Pass,
			wantMessage: []string{"database ok, version 10.4.0"}},
		{name: "DatabaseNotOkFails", database: "failing", present: []string{"django"}, password: "secret",
			expected: []string{"django"}, wantOutcome: Fail, wantMessage: []string{`expected database "ok", got "failing" (HTTP 503)`}},
		{name: "MissingDashboardFailsNamingIt", database: "ok", present: []string{"django"}, password: "secret",
			expected: []string{"django", "redis", "celery"}, wantOutcome: Fail,
			wantMessage: []string{`missing "redis", "celery"`, "lists 1 dashboards"}},
		{name: "WrongPasswordIsFatal", database: "ok", present: []string{"django"}, password: "wrong",
			expected: []string{"django"}, wantOutcome: Fatal,
			wantMessage: []string{`as user "admin"`, "got HTTP 401", "Invalid username or password"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := grafanaFakeServer(t, tt.database, tt.present...)
			check := Grafana(GrafanaConfig{URL: url + "/", User: "admin", Password: tt.password, Dashboards: tt.expected})
			attempt := check.Check(context.Background())
			if attempt.Outcome != tt.wantOutcome {
				t.Fatalf("outcome %v, want %v: %s", attempt.Outcome, tt.wantOutcome, attempt.Message)
			}
			for _, want := range tt.wantMessage {
				if !strings.Contains(attempt.Message, want) {
					t.Errorf("message %q does not contain %q", attempt.Message, want)
				}
			}
		})
	}
}

func TestGrafana_UnreachableFails(t *testing.T) {
	addr := monitorClosedAddr(t)
	attempt := Grafana(GrafanaConfig{URL: "http://" + addr}).Check(context.Background())
	if attempt.Outcome != Fail || !strings.Contains(attempt.Message, "connection refused") {
		t.Fatalf("attempt %+v, want a failure that may recover", attempt)
	}
}
