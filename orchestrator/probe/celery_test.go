package probe_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/orchestrator/probe"
)

const celeryTestExposition = `# HELP celery_worker_up Indicates if a worker has recently sent a heartbeat.
# TYPE celery_worker_up gauge
celery_worker_up{hostname="celery@web-1"} 1.0
celery_worker_up{hostname="celery@web-2"} 1.0
celery_worker_up{hostname="celery@web-3"} 0.0
# HELP celery_task_failed_total Sent if the execution of the task failed.
# TYPE celery_task_failed_total counter
celery_task_failed_total{hostname="celery@web-1",name="shop.tasks.mail"} 2.0
`

func celeryTestExporter(t *testing.T, status int, body string) string {
	t.Helper()
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(server.Close)
	return server.URL + "/metrics"
}

func TestCelery_ExporterCountsWorkersUp(t *testing.T) {
	url := celeryTestExporter(t, http.StatusOK, celeryTestExposition)

	pass := checkOnce(probe.Celery(probe.CeleryConfig{ExporterURL: url, MinWorkers: 2}), 5*time.Second)
	if pass.Outcome != probe.Pass || !strings.Contains(pass.Message, "2 Celery workers up") || !strings.Contains(pass.Message, "celery@web-1, celery@web-2") {
		t.Errorf("2 of 3 up, 2 wanted: %d %q; want Pass naming both", pass.Outcome, pass.Message)
	}
	defaultMin := checkOnce(probe.Celery(probe.CeleryConfig{ExporterURL: url}), 5*time.Second)
	if defaultMin.Outcome != probe.Pass {
		t.Errorf("MinWorkers 0 (= 1): %d %q; want Pass", defaultMin.Outcome, defaultMin.Message)
	}
	fail := checkOnce(probe.Celery(probe.CeleryConfig{ExporterURL: url, MinWorkers: 3}), 5*time.Second)
	if fail.Outcome != probe.Fail || !strings.Contains(fail.Message, "expected at least 3 Celery workers up") ||
		!strings.Contains(fail.Message, "found 2") || !strings.Contains(fail.Message, "0 for [celery@web-3]") {
		t.Errorf("2 of 3 up, 3 wanted: %d %q; want Fail naming the worker that is down", fail.Outcome, fail.Message)
	}
}

func TestCelery_ExporterWithoutWorkersOrHealthFails(t *testing.T) {
	for name, tc := range map[string]struct {
		status int
		body   string
		want   string
	}{
		"no series":   {http.StatusOK, "# HELP celery_tasks_total x\n# TYPE celery_tasks_total counter\ncelery_tasks_total 0\n", "found none"},
		"all down":    {http.StatusOK, "celery_worker_up{hostname=\"celery@a\"} 0\n", "found 0"},
		"server down": {http.StatusInternalServerError, "boom", "500 Internal Server Error"},
		"not metrics": {http.StatusOK, "<html>hello</html>\n", "do not parse"},
	} {
		url := celeryTestExporter(t, tc.status, tc.body)
		attempt := checkOnce(probe.Celery(probe.CeleryConfig{ExporterURL: url}), 5*time.Second)
		if attempt.Outcome != probe.Fail || !strings.Contains(attempt.Message, tc.want) {
			t.Errorf("%s: %d %q; want Fail containing %q", name, attempt.Outcome, attempt.Message, tc.want)
		}
	}
	closed := fmt.Sprintf("http://127.0.0.1:%d/metrics", testsvc.FreePort(t))
	if attempt := checkOnce(probe.Celery(probe.CeleryConfig{ExporterURL: closed}), 5*time.Second); attempt.Outcome != probe.Fail {
		t.Errorf("closed port: %d %q; want Fail", attempt.Outcome, attempt.Message)
	}
}

func TestCelery_NeitherExporterNorBrokerIsFatal(t *testing.T) {
	if attempt := checkOnce(probe.Celery(probe.CeleryConfig{}), time.Second); attempt.Outcome != probe.Fatal {
		t.Errorf("%d %q; want Fatal", attempt.Outcome, attempt.Message)
	}
}

// celeryKombuMessage is what kombu's Redis transport publishes for one
// Celery event: a JSON envelope around the base64 event JSON.
func celeryKombuMessage(t *testing.T, eventType, hostname string) string {
	t.Helper()
	event, err := json.Marshal(map[string]any{"hostname": hostname, "type": eventType, "freq": 2.0, "active": 0})
	if err != nil {
		t.Fatal(err)
	}
	envelope, err := json.Marshal(map[string]any{
		"body":             base64.StdEncoding.EncodeToString(event),
		"content-encoding": "utf-8",
		"content-type":     "application/json",
		"headers":          map[string]string{"hostname": hostname},
		"properties": map[string]any{"body_encoding": "base64", "delivery_mode": 1, "priority": 0,
			"delivery_info": map[string]string{"exchange": "celeryev", "routing_key": strings.ReplaceAll(eventType, "-", ".")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(envelope)
}

// The same envelopes a real worker sends (see the real-worker test), from
// go-redis: two workers on db 0, one on db 1, and a message that is not
// kombu JSON.
func TestCelery_BrokerCountsDistinctHeartbeatingWorkersOfItsDB(t *testing.T) {
	rds := testsvc.StartRedis(t, testsvc.WithRedisPassword(redisTestPassword))
	client := redisTestClient(t, rds)
	ctx, stopPublishing := context.WithCancel(context.Background())
	defer stopPublishing()
	messages := [][2]string{
		{"/0.celeryev/worker.heartbeat", celeryKombuMessage(t, "worker-heartbeat", "celery@a")},
		{"/0.celeryev/worker.online", celeryKombuMessage(t, "worker-online", "celery@b")},
		{"/1.celeryev/worker.heartbeat", celeryKombuMessage(t, "worker-heartbeat", "celery@other-db")},
		{"/0.celeryev/task.received", celeryKombuMessage(t, "task-received", "celery@task-only")},
		{"/0.celeryev/worker.heartbeat", "not json"},
	}
	published := make(chan struct{})
	go func() {
		defer close(published)
		for ctx.Err() == nil {
			for _, m := range messages {
				_ = client.Publish(ctx, m[0], m[1]).Err()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	defer func() { stopPublishing(); <-published }()

	broker := probe.CeleryConfig{BrokerAddr: rds.Addr, BrokerPassword: redisTestPassword, MinWorkers: 2}
	pass := checkOnce(probe.Celery(broker), 3*time.Second)
	if pass.Outcome != probe.Pass || !strings.Contains(pass.Message, "2 Celery workers") || !strings.Contains(pass.Message, "celery@a, celery@b") {
		t.Errorf("two workers on db 0: %d %q; want Pass naming celery@a and celery@b", pass.Outcome, pass.Message)
	}

	broker.MinWorkers = 3
	began := time.Now()
	fail := checkOnce(probe.Celery(broker), 1500*time.Millisecond)
	if fail.Outcome != probe.Fail || !strings.Contains(fail.Message, "heard 2 (celery@a, celery@b)") ||
		!strings.Contains(fail.Message, "could not be decoded") || strings.Contains(fail.Message, "other-db") ||
		strings.Contains(fail.Message, "task-only") || time.Since(began) > 1500*time.Millisecond {
		t.Errorf("three wanted: %d %q after %s; want Fail within the deadline naming only the two on db 0",
			fail.Outcome, fail.Message, time.Since(began))
	}
	assertNoSecret(t, fail.Message, redisTestPassword)

	broker.BrokerPassword = "wrong-" + redisTestPassword
	if auth := checkOnce(probe.Celery(broker), 3*time.Second); auth.Outcome != probe.Fatal || !strings.Contains(auth.Message, "authentication") {
		t.Errorf("wrong broker password: %d %q; want Fatal mentioning authentication", auth.Outcome, auth.Message)
	}
}

func TestCelery_BrokerDownFailsNamingIt(t *testing.T) {
	rds := testsvc.StartRedis(t)
	rds.Stop()
	result := probeWithin(t, probe.Celery(probe.CeleryConfig{BrokerAddr: rds.Addr}), time.Second, 1500*time.Millisecond)
	if result.Status != probe.StatusFail || !strings.Contains(result.Message, rds.Addr) {
		t.Errorf("%s: %q; want fail naming %s", result.Status, result.Message, rds.Addr)
	}
}

// celeryPython is Debian's python3 with python3-celery and python3-redis.
const celeryPython = "/usr/bin/python3"

// startCeleryWorker runs a real Celery worker (solo pool) of a one-line
// app on broker, named name, until the test ends, and waits until it is
// ready. It skips the test when Debian's python3-celery and python3-redis
// are not installed.
func startCeleryWorker(t *testing.T, broker, name string, extraArgs ...string) {
	t.Helper()
	if out, err := exec.Command(celeryPython, "-c", "import celery, redis").CombinedOutput(); err != nil {
		t.Skipf("a real Celery worker needs %s with celery and redis (apt-get install python3-celery python3-redis): %v\n%s", celeryPython, err, out)
	}
	dir := t.TempDir()
	app := fmt.Sprintf("from celery import Celery\napp = Celery(%q, broker=%q)\n", "probeapp", broker)
	if err := os.WriteFile(filepath.Join(dir, "probeapp.py"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "worker.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	args := append([]string{"-m", "celery", "-A", "probeapp", "worker", "--pool=solo", "--loglevel=INFO", "-n", name}, extraArgs...)
	cmd := exec.Command(celeryPython, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("celery worker %s log:\n%s", name, log)
		}
	})
	celeryWaitReady(t, logPath, name, exited)
}

// celeryWaitReady waits for the worker's "<name> ready." log line.
func celeryWaitReady(t *testing.T, logPath, name string, exited chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		log, _ := os.ReadFile(logPath)
		if strings.Contains(string(log), name+" ready.") {
			return
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("celery worker %s exited before it was ready (%v):\n%s", name, err, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("celery worker %s not ready within 30s:\n%s", name, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestCelery_BrokerHearsARealWorkerAndFailsWithoutOne(t *testing.T) {
	rds := testsvc.StartRedis(t)
	broker := "redis://" + rds.Addr + "/0"
	checker := probe.Celery(probe.CeleryConfig{BrokerAddr: rds.Addr})

	began := time.Now()
	result := probeWithin(t, checker, 1500*time.Millisecond, 3*time.Second)
	if result.Status != probe.StatusFail || !strings.Contains(result.Message, "heard 0 (none)") || time.Since(began) > 4*time.Second {
		t.Fatalf("no worker: %s after %s: %q; want fail within the deadline", result.Status, time.Since(began), result.Message)
	}
	t.Logf("no worker: %s", result.Message)

	startCeleryWorker(t, broker, "silent@probe-test", "--without-heartbeat")
	attempt := checkOnce(checker, 4*time.Second)
	if attempt.Outcome != probe.Fail || !strings.Contains(attempt.Message, "--without-heartbeat") {
		t.Errorf("a worker without heartbeats: %d %q; want Fail", attempt.Outcome, attempt.Message)
	}

	startCeleryWorker(t, broker, "events@probe-test", "-E")
	result = probeWithin(t, checker, 5*time.Second, 30*time.Second)
	if !result.Passed() || !strings.Contains(result.Message, "events@probe-test") || strings.Contains(result.Message, "silent@") {
		t.Fatalf("a worker with events: %s after %d attempts: %q; want a pass naming events@probe-test", result.Status, result.Attempts, result.Message)
	}
	t.Logf("real worker: %s", result.Message)

	two := checkOnce(probe.Celery(probe.CeleryConfig{BrokerAddr: rds.Addr, MinWorkers: 2}), 4*time.Second)
	if two.Outcome != probe.Fail || !strings.Contains(two.Message, "heard 1 (events@probe-test)") {
		t.Errorf("two wanted, one heartbeating: %d %q; want Fail naming the one heard", two.Outcome, two.Message)
	}
}
