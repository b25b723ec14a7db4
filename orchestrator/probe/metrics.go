package probe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// MetricsConfig says which Prometheus endpoint to scrape and which metric
// families it must expose.
type MetricsConfig struct {
	URL      string
	Require  []string // metric family names that must be present, e.g. django_http_requests_total_by_method_total
	Insecure bool
	Client   *http.Client `json:"-"`
}

// DjangoMetrics are the django-prometheus families a healthy app exposes (both
// middlewares on) once it has answered a request through a view. Families that
// only appear after an exception, an AJAX or streaming request, a template
// response or an unknown latency are left out: a healthy app may never have
// them.
var DjangoMetrics = []string{
	// PrometheusBeforeMiddleware
	"django_http_requests_before_middlewares_total",
	"django_http_responses_before_middlewares_total",
	"django_http_requests_latency_including_middlewares_seconds",
	// PrometheusAfterMiddleware
	"django_http_requests_total_by_method_total",
	"django_http_requests_total_by_transport_total",
	"django_http_requests_total_by_view_transport_method_total",
	"django_http_requests_body_total_bytes",
	"django_http_requests_latency_seconds_by_view_method",
	"django_http_responses_total_by_status_total",
	"django_http_responses_total_by_status_view_method_total",
	"django_http_responses_total_by_charset_total",
	"django_http_responses_body_total_bytes",
}

// metricsMaxBody bounds a scrape; a bigger body fails rather than being
// parsed truncated.
const metricsMaxBody = 16 << 20

// metricsAccept asks for the classic text format, which the parser reads.
const metricsAccept = "text/plain;version=0.0.4;q=1,*/*;q=0.1"

type metricsChecker struct {
	cfg    MetricsConfig
	client *http.Client
}

// Metrics returns a Checker that scrapes cfg.URL once, parses the text
// exposition format and requires every family in cfg.Require. A family that
// is declared but has no samples counts as missing: no results yet is never
// a pass.
func Metrics(cfg MetricsConfig) Checker {
	return &metricsChecker{cfg: cfg, client: httpClientFor(cfg.Client, cfg.Insecure)}
}

// Check implements Checker.
func (c *metricsChecker) Check(ctx context.Context) Attempt {
	target := "GET " + c.cfg.URL
	if parsed, err := url.Parse(c.cfg.URL); err != nil || parsed.Scheme == "" || parsed.Host == "" {
		return Fatalf("metrics probe %s: URL %q is not an absolute http(s) URL", c.cfg.URL, c.cfg.URL)
	}
	body, attempt := c.scrape(ctx, target)
	if attempt != nil {
		return *attempt
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return Failed("%s: metrics do not parse: %v; body: %s", target, err, httpExcerpt(body))
	}
	if len(families) == 0 {
		return Failed("%s: expected metrics, got no samples; body: %s", target, httpExcerpt(body))
	}
	var missing []string
	for _, name := range c.cfg.Require {
		if _, ok := families[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return Failed("%s: missing %d of %d required metric families: %s (found %d families)",
			target, len(missing), len(c.cfg.Require), strings.Join(missing, ", "), len(families))
	}
	return Passed("%s: 200, %d families, all %d required present", target, len(families), len(c.cfg.Require))
}

// scrape fetches the body; a non-nil Attempt is the failure.
func (c *metricsChecker) scrape(ctx context.Context, target string) ([]byte, *Attempt) {
	fail := func(format string, args ...any) ([]byte, *Attempt) {
		attempt := Failed(format, args...)
		return nil, &attempt
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.URL, nil)
	if err != nil {
		attempt := Fatalf("%s: %v", target, err)
		return nil, &attempt
	}
	req.Header.Set("Accept", metricsAccept)
	resp, err := c.client.Do(req)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return fail("%s: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, metricsMaxBody+1))
	switch {
	case err != nil:
		return fail("%s: reading the body after status %d: %v", target, resp.StatusCode, err)
	case resp.StatusCode != http.StatusOK:
		return fail("%s: expected status 200, got %d; body: %s", target, resp.StatusCode, httpExcerpt(body))
	case len(body) > metricsMaxBody:
		return fail("%s: body larger than %d bytes", target, metricsMaxBody)
	}
	return body, nil
}
