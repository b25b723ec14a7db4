package probe

// celery.go checks that Celery workers are alive: through celery-exporter's
// celery_worker_up, or by hearing their heartbeat events on the broker.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
)

// CeleryConfig says where to look for live workers. ExporterURL wins
// when both it and BrokerAddr are set.
type CeleryConfig struct {
	// ExporterURL is celery-exporter's /metrics: celery_worker_up must be
	// 1 for at least MinWorkers series.
	ExporterURL string
	// BrokerAddr is the Redis broker's host:port: at least MinWorkers
	// workers must publish heartbeat events there (every worker does,
	// with or without -E, unless started with --without-heartbeat).
	BrokerAddr     string
	BrokerDB       int
	BrokerPassword string
	MinWorkers     int // 0 = 1
}

const (
	celeryWorkerUpMetric = "celery_worker_up"
	// celeryEventPattern matches kombu's fanout channels for the celeryev
	// exchange over Redis: "/0.celeryev/worker.heartbeat" with
	// fanout_prefix and fanout_patterns, "celeryev" without.
	celeryEventPattern     = "*celeryev*"
	celeryEventHeartbeat   = "worker-heartbeat"
	celeryEventOnline      = "worker-online"
	celeryEventOffline     = "worker-offline"
	celeryDefaultListen    = 10 * time.Second // when ctx has no deadline: five heartbeats
	celeryListenMargin     = 250 * time.Millisecond
	celeryMaxMetricsBytes  = 16 << 20
	celeryBodyExcerptBytes = 200
	celeryEventsHint       = "a worker publishes worker-heartbeat events every 2s unless started with --without-heartbeat"
)

type celeryChecker struct{ cfg CeleryConfig }

// Celery returns a Checker that counts live Celery workers.
func Celery(cfg CeleryConfig) Checker {
	if cfg.MinWorkers <= 0 {
		cfg.MinWorkers = 1
	}
	return celeryChecker{cfg: cfg}
}

// Check implements Checker.
func (c celeryChecker) Check(ctx context.Context) Attempt {
	switch {
	case c.cfg.ExporterURL != "":
		return c.exporter(ctx)
	case c.cfg.BrokerAddr != "":
		attempt := c.broker(ctx)
		if c.cfg.BrokerPassword != "" {
			attempt.Message = strings.ReplaceAll(attempt.Message, c.cfg.BrokerPassword, redisPasswordRedacts)
		}
		return attempt
	default:
		return Fatalf("celery probe has neither an exporter URL nor a broker address")
	}
}

// exporter reads celery_worker_up from celery-exporter.
func (c celeryChecker) exporter(ctx context.Context) Attempt {
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.ExporterURL, nil)
	if err != nil {
		return Fatalf("celery exporter URL %q: %v", c.cfg.ExporterURL, err)
	}
	request.Header.Set("Accept", "text/plain;version=0.0.4")
	response, err := http.DefaultClient.Do(request)
	if err != nil {
		return Failed("cannot read celery-exporter metrics: %v", err)
	}
	defer response.Body.Close()
	body, err := io.ReadAll(io.LimitReader(response.Body, celeryMaxMetricsBytes))
	if err != nil {
		return Failed("reading celery-exporter metrics from %s: %v", c.cfg.ExporterURL, err)
	}
	if response.StatusCode != http.StatusOK {
		return Failed("celery-exporter at %s answered %s, want 200 OK: %q",
			c.cfg.ExporterURL, response.Status, celeryExcerpt(body))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return Failed("celery-exporter metrics at %s do not parse: %v", c.cfg.ExporterURL, err)
	}
	return c.judgeWorkersUp(families[celeryWorkerUpMetric])
}

// judgeWorkersUp sums celery_worker_up (1 per live worker) and names
// the workers that are down.
func (c celeryChecker) judgeWorkersUp(family *dto.MetricFamily) Attempt {
	if family == nil || len(family.GetMetric()) == 0 {
		return Failed("expected %s series at %s, found none: the exporter has seen no worker event yet",
			celeryWorkerUpMetric, c.cfg.ExporterURL)
	}
	var up, down []string
	sum := 0.0
	for _, metric := range family.GetMetric() {
		value := celerySampleValue(metric)
		if value >= 1 {
			up = append(up, celeryWorkerName(metric))
			sum += value
		} else {
			down = append(down, celeryWorkerName(metric))
		}
	}
	sort.Strings(up)
	sort.Strings(down)
	if int(sum) < c.cfg.MinWorkers {
		return Failed("expected at least %d Celery workers up at %s, found %d (%s is 1 for [%s], 0 for [%s])",
			c.cfg.MinWorkers, c.cfg.ExporterURL, int(sum), celeryWorkerUpMetric,
			strings.Join(up, ", "), strings.Join(down, ", "))
	}
	return Passed("%d Celery workers up at %s: %s", int(sum), c.cfg.ExporterURL, strings.Join(up, ", "))
}

// celerySampleValue is a gauge's (or untyped sample's) value; NaN counts as down.
func celerySampleValue(metric *dto.Metric) float64 {
	value := metric.GetGauge().GetValue()
	if metric.GetGauge() == nil {
		value = metric.GetUntyped().GetValue()
	}
	if math.IsNaN(value) {
		return 0
	}
	return value
}

// celeryWorkerName is a series' hostname label, or all its labels.
func celeryWorkerName(metric *dto.Metric) string {
	var labels []string
	for _, pair := range metric.GetLabel() {
		if pair.GetName() == "hostname" {
			return pair.GetValue()
		}
		labels = append(labels, fmt.Sprintf("%s=%q", pair.GetName(), pair.GetValue()))
	}
	return "{" + strings.Join(labels, ",") + "}"
}

func celeryExcerpt(body []byte) string {
	if len(body) > celeryBodyExcerptBytes {
		body = body[:celeryBodyExcerptBytes]
	}
	return strings.TrimSpace(string(body))
}

// broker listens for worker heartbeats on the broker until MinWorkers
// distinct workers have been heard, or just before ctx ends.
func (c celeryChecker) broker(ctx context.Context) Attempt {
	listenCtx, cancel := celeryListenWindow(ctx)
	defer cancel()
	client := newRedisClient(c.cfg.BrokerAddr, c.cfg.BrokerPassword, c.cfg.BrokerDB)
	defer client.Close()
	pubsub := client.PSubscribe(listenCtx, celeryEventPattern)
	defer pubsub.Close()
	// A cancelled (not expired) ctx must end a blocked read too.
	stop := context.AfterFunc(listenCtx, func() { _ = pubsub.Close() })
	defer stop()
	if _, err := pubsub.Receive(listenCtx); err != nil {
		return c.brokerFailure(err)
	}
	heard := newCeleryHeard(c.cfg.BrokerDB)
	for heard.count() < c.cfg.MinWorkers {
		message, err := pubsub.ReceiveMessage(listenCtx)
		if err != nil {
			// The read deadline is the window's end; it may fire a moment
			// before listenCtx reports it.
			var netErr net.Error
			if listenCtx.Err() != nil || (errors.As(err, &netErr) && netErr.Timeout()) {
				return c.tooFewWorkers(heard)
			}
			return c.brokerFailure(err)
		}
		heard.observe(message.Channel, message.Payload)
	}
	return Passed("%d Celery workers send heartbeats through redis at %s: %s",
		heard.count(), c.cfg.BrokerAddr, strings.Join(heard.names(), ", "))
}

func (c celeryChecker) brokerFailure(err error) Attempt {
	switch {
	case redis.IsAuthError(err):
		return Fatalf("celery broker (redis at %s): authentication failed: %v", c.cfg.BrokerAddr, err)
	case redis.IsPermissionError(err):
		return Fatalf("celery broker (redis at %s): PSUBSCRIBE %s not permitted: %v", c.cfg.BrokerAddr, celeryEventPattern, err)
	default:
		return Failed("celery broker (redis at %s): cannot listen for worker events: %v", c.cfg.BrokerAddr, err)
	}
}

func (c celeryChecker) tooFewWorkers(heard *celeryHeard) Attempt {
	names := "none"
	if heard.count() > 0 {
		names = strings.Join(heard.names(), ", ")
	}
	detail := ""
	if heard.undecodable > 0 {
		detail = fmt.Sprintf("; %d celeryev messages could not be decoded as kombu JSON (last: %s)", heard.undecodable, heard.lastProblem)
	}
	return Failed("expected heartbeats from at least %d Celery workers through redis at %s (db %d) within %s, heard %d (%s)%s; %s",
		c.cfg.MinWorkers, c.cfg.BrokerAddr, c.cfg.BrokerDB, heard.listened().Round(time.Millisecond),
		heard.count(), names, detail, celeryEventsHint)
}

// celeryListenWindow ends a little before ctx, so that the probe gives
// its own verdict rather than a timeout.
func celeryListenWindow(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithTimeout(ctx, celeryDefaultListen)
	}
	margin := min(celeryListenMargin, time.Until(deadline)/10)
	return context.WithDeadline(ctx, deadline.Add(-margin))
}

// celeryHeard is the workers heard on the celeryev channels.
type celeryHeard struct {
	db          int
	started     time.Time
	hostnames   map[string]bool
	undecodable int
	lastProblem string
}

func newCeleryHeard(db int) *celeryHeard {
	return &celeryHeard{db: db, started: time.Now(), hostnames: map[string]bool{}}
}

func (h *celeryHeard) count() int { return len(h.hostnames) }

func (h *celeryHeard) listened() time.Duration { return time.Since(h.started) }

func (h *celeryHeard) names() []string {
	names := make([]string, 0, len(h.hostnames))
	for name := range h.hostnames {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// observe records one published message: heartbeats and worker-online
// add a worker, worker-offline removes it, other events are ignored.
func (h *celeryHeard) observe(channel, payload string) {
	if !celeryChannelInDB(channel, h.db) {
		return
	}
	event, err := decodeCeleryEvent(payload)
	if err != nil {
		h.undecodable++
		h.lastProblem = err.Error()
		return
	}
	switch event.Type {
	case celeryEventHeartbeat, celeryEventOnline:
		if event.Hostname != "" {
			h.hostnames[event.Hostname] = true
		}
	case celeryEventOffline:
		delete(h.hostnames, event.Hostname)
	}
}

// celeryChannelInDB reports whether a kombu fanout channel belongs to
// db: with fanout_prefix, channels start "/<db>."; without, any db.
func celeryChannelInDB(channel string, db int) bool {
	rest, ok := strings.CutPrefix(channel, "/")
	if !ok {
		return true
	}
	prefix, _, ok := strings.Cut(rest, ".")
	if !ok {
		return true
	}
	n, err := strconv.Atoi(prefix)
	return err != nil || n == db
}

// celeryEvent is the part of a Celery event the probe reads.
type celeryEvent struct {
	Hostname string `json:"hostname"`
	Type     string `json:"type"`
}

// celeryKombuEnvelope is how kombu's Redis transport wraps a message.
type celeryKombuEnvelope struct {
	Body        string `json:"body"`
	ContentType string `json:"content-type"`
	Properties  struct {
		BodyEncoding string `json:"body_encoding"`
	} `json:"properties"`
}

// decodeCeleryEvent unwraps kombu's JSON envelope and its base64 body.
func decodeCeleryEvent(payload string) (celeryEvent, error) {
	var envelope celeryKombuEnvelope
	if err := json.Unmarshal([]byte(payload), &envelope); err != nil {
		return celeryEvent{}, fmt.Errorf("envelope is not JSON: %v", err)
	}
	if envelope.ContentType != "" && envelope.ContentType != "application/json" {
		return celeryEvent{}, fmt.Errorf("body is %s, not application/json", envelope.ContentType)
	}
	body := []byte(envelope.Body)
	if envelope.Properties.BodyEncoding == "base64" {
		decoded, err := base64.StdEncoding.DecodeString(envelope.Body)
		if err != nil {
			return celeryEvent{}, fmt.Errorf("body is not base64: %v", err)
		}
		body = decoded
	}
	var event celeryEvent
	if err := json.Unmarshal(body, &event); err != nil {
		return celeryEvent{}, fmt.Errorf("event is not JSON: %v", err)
	}
	return event, nil
}
