package probe

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/obcd/obcd/internal/testsvc"
)

func TestAlertmanager_RealServerPasses(t *testing.T) {
	t.Parallel()
	am := testsvc.StartAlertmanager(t, "route: {receiver: \"null\"}\nreceivers: [{name: \"null\"}]\n")
	result := runMonitorProbe(t, "alertmanager", Alertmanager(AlertmanagerConfig{URL: am.URL}), monitorDeadline)
	monitorWantPass(t, result)
	if !strings.Contains(result.Message, "config loaded") || !strings.Contains(result.Message, "cluster disabled") {
		t.Errorf("message %q does not report the loaded config and the gossip off", result.Message)
	}
}

func TestAlertmanager_ClosedPortFails(t *testing.T) {
	t.Parallel()
	addr := monitorClosedAddr(t)
	result := runMonitorProbe(t, "alertmanager", Alertmanager(AlertmanagerConfig{URL: "http://" + addr}), time.Second)
	monitorWantFail(t, result, addr+"/-/ready", "connection refused")
}

// alertmanagerFakeServer answers /-/ready with readyStatus and /api/v2/status
// with original as config.original.
func alertmanagerFakeServer(t *testing.T, readyStatus int, original string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(readyStatus)
		fmt.Fprint(w, "Alertmanager is not ready yet")
	})
	mux.HandleFunc("/api/v2/status", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"cluster":{"status":"disabled"},"config":{"original":%q},"versionInfo":{"version":"0.25.0"}}`, original)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestAlertmanager_NotReadyFailsWithStatusAndBody(t *testing.T) {
	url := alertmanagerFakeServer(t, http.StatusServiceUnavailable, "route: {}")
	attempt := Alertmanager(AlertmanagerConfig{URL: url}).Check(context.Background())
	if attempt.Outcome != Fail || !strings.Contains(attempt.Message, "expected 200, got HTTP 503: Alertmanager is not ready yet") {
		t.Fatalf("attempt %+v, want a failure naming the 503 and its body", attempt)
	}
}

func TestAlertmanager_NoConfigLoadedFails(t *testing.T) {
	url := alertmanagerFakeServer(t, http.StatusOK, "")
	attempt := Alertmanager(AlertmanagerConfig{URL: url}).Check(context.Background())
	if attempt.Outcome != Fail || !strings.Contains(attempt.Message, "empty config.original") {
		t.Fatalf("attempt %+v, want a failure saying no config is loaded", attempt)
	}
}
