package probe

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// HTTPConfig says what one HTTP probe requests and what it expects back.
// Only the checks switched on run. RedirectToHTTPS, BadHostRejected,
// CORSOrigin and ThrottleAfter each make their own request(s) with their own
// expectation; the plain GET (ExpectStatus, ExpectJSON, ExpectBody,
// ExpectHeaders, CSRFToken) runs when none of those is on or when one of its
// own fields is set.
type HTTPConfig struct {
	URL             string            // absolute URL probed
	Host            string            // Host header override ("" = from URL)
	ExpectStatus    int               // 0 means 200
	ExpectJSON      map[string]any    // each field must be present and equal (JSON-decoded body); nested objects compared deeply
	ExpectBody      string            // substring
	ExpectHeaders   map[string]string // header must be present; non-empty value = must contain it (case-insensitive header name)
	RedirectToHTTPS bool              // request must answer 301 with Location https://... (do not follow redirects)
	BadHostRejected bool              // send Host: obcd-probe.invalid; pass on 400, or on a connection closed without response (nginx 444) or a TLS handshake refusal; fail on any 2xx/3xx
	CSRFToken       bool              // body contains name="csrfmiddlewaretoken" AND a csrftoken cookie is set
	ThrottleAfter   int               // >0: send up to ThrottleAfter+1 sequential GETs; pass when one returns 429, fail if none did
	CORSOrigin      string            // OPTIONS preflight with Origin + Access-Control-Request-Method: GET; pass when Access-Control-Allow-Origin equals the origin or *
	Insecure        bool              // skip TLS verification
	Client          *http.Client      `json:"-"` // nil = a default client with no redirects followed, TLS per Insecure
}

const (
	// httpMaxBody bounds every body read by the HTTP probe.
	httpMaxBody = 1 << 20
	// httpExcerptMax bounds the body excerpt quoted in a message.
	httpExcerptMax = 200
	// BadProbeHost is the Host the bad-host check sends; .invalid never resolves.
	BadProbeHost = "obcd-probe.invalid"
	// csrfFormField and csrfCookie are Django's defaults.
	csrfFormField = "csrfmiddlewaretoken"
	csrfCookie    = "csrftoken"
)

type httpChecker struct {
	cfg           HTTPConfig
	client        *http.Client
	badHostClient *http.Client
	expectJSON    map[string]any // cfg.ExpectJSON as it decodes from JSON
	configErr     error
}

// HTTP returns a Checker that makes one round of the requests cfg asks for.
// Redirects are never followed.
func HTTP(cfg HTTPConfig) Checker {
	checker := &httpChecker{cfg: cfg, client: httpClientFor(cfg.Client, cfg.Insecure)}
	if cfg.BadHostRejected {
		checker.badHostClient = httpBadHostClient(checker.client)
	}
	checker.expectJSON, checker.configErr = httpNormalizeJSON(cfg.ExpectJSON)
	if parsed, err := url.Parse(cfg.URL); err != nil || parsed.Scheme == "" || parsed.Host == "" {
		checker.configErr = fmt.Errorf("URL %q is not an absolute http(s) URL", cfg.URL)
	}
	return checker
}

// Check implements Checker.
func (c *httpChecker) Check(ctx context.Context) Attempt {
	if c.configErr != nil {
		return Fatalf("http probe %s: %v", c.cfg.URL, c.configErr)
	}
	var details []string
	for _, check := range c.checks() {
		attempt := check(ctx)
		if attempt.Outcome != Pass {
			return attempt
		}
		details = append(details, attempt.Message)
	}
	return Passed("%s", strings.Join(details, "; "))
}

func (c *httpChecker) checks() []func(context.Context) Attempt {
	var checks []func(context.Context) Attempt
	if c.cfg.RedirectToHTTPS {
		checks = append(checks, c.checkRedirect)
	}
	if c.cfg.BadHostRejected {
		checks = append(checks, c.checkBadHost)
	}
	if c.cfg.CORSOrigin != "" {
		checks = append(checks, c.checkCORS)
	}
	if c.cfg.ThrottleAfter > 0 {
		checks = append(checks, c.checkThrottle)
	}
	if len(checks) == 0 || c.wantsPlainGET() {
		checks = append(checks, c.checkResponse)
	}
	return checks
}

func (c *httpChecker) wantsPlainGET() bool {
	return c.cfg.ExpectStatus != 0 || len(c.cfg.ExpectJSON) > 0 || c.cfg.ExpectBody != "" ||
		len(c.cfg.ExpectHeaders) > 0 || c.cfg.CSRFToken
}

// checkResponse makes the plain GET: status, then body, JSON, headers, CSRF.
func (c *httpChecker) checkResponse(ctx context.Context) Attempt {
	target := c.target(http.MethodGet, c.cfg.Host)
	resp, body, err := c.do(ctx, c.client, http.MethodGet, c.cfg.Host, nil)
	if err != nil {
		return Failed("%s: %v", target, err)
	}
	want := c.cfg.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		return Definitef("%s: expected status %d, got %d; body: %s", target, want, resp.StatusCode, httpExcerpt(body))
	}
	var problems []string
	problems = append(problems, c.jsonProblems(body)...)
	if c.cfg.ExpectBody != "" && !strings.Contains(string(body), c.cfg.ExpectBody) {
		problems = append(problems, fmt.Sprintf("expected the body to contain %q", c.cfg.ExpectBody))
	}
	problems = append(problems, c.headerProblems(resp.Header)...)
	problems = append(problems, c.csrfProblems(resp, body)...)
	if len(problems) > 0 {
		return Definitef("%s: status %d, but %s; body: %s", target, resp.StatusCode, strings.Join(problems, "; "), httpExcerpt(body))
	}
	return Passed("%s: %d", target, resp.StatusCode)
}

func (c *httpChecker) jsonProblems(body []byte) []string {
	if len(c.expectJSON) == 0 {
		return nil
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		return []string{fmt.Sprintf("expected a JSON object, got undecodable JSON (%v)", err)}
	}
	var problems []string
	for _, field := range slices.Sorted(maps.Keys(c.expectJSON)) {
		want := c.expectJSON[field]
		value, present := got[field]
		switch {
		case !present:
			problems = append(problems, fmt.Sprintf("JSON field %q: expected %s, got no such field", field, httpJSONText(want)))
		case !reflect.DeepEqual(want, value):
			problems = append(problems, fmt.Sprintf("JSON field %q: expected %s, got %s", field, httpJSONText(want), httpJSONText(value)))
		}
	}
	return problems
}

func (c *httpChecker) headerProblems(header http.Header) []string {
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(c.cfg.ExpectHeaders)) {
		want := c.cfg.ExpectHeaders[name]
		values := header.Values(name)
		got := strings.Join(values, ", ")
		switch {
		case len(values) == 0:
			problems = append(problems, fmt.Sprintf("expected header %s, got none", http.CanonicalHeaderKey(name)))
		case want != "" && !strings.Contains(strings.ToLower(got), strings.ToLower(want)):
			problems = append(problems, fmt.Sprintf("expected header %s to contain %q, got %q", http.CanonicalHeaderKey(name), want, got))
		}
	}
	return problems
}

func (c *httpChecker) csrfProblems(resp *http.Response, body []byte) []string {
	if !c.cfg.CSRFToken {
		return nil
	}
	var problems []string
	text := string(body)
	if !strings.Contains(text, `name="`+csrfFormField+`"`) && !strings.Contains(text, `name='`+csrfFormField+`'`) {
		problems = append(problems, fmt.Sprintf("expected a form field name=%q, found none", csrfFormField))
	}
	hasCookie := false
	for _, cookie := range resp.Cookies() {
		hasCookie = hasCookie || (cookie.Name == csrfCookie && cookie.Value != "")
	}
	if !hasCookie {
		problems = append(problems, fmt.Sprintf("expected a %s cookie, got Set-Cookie %q", csrfCookie, strings.Join(resp.Header.Values("Set-Cookie"), ", ")))
	}
	return problems
}

// checkRedirect expects a permanent redirect to https.
func (c *httpChecker) checkRedirect(ctx context.Context) Attempt {
	target := c.target(http.MethodGet, c.cfg.Host)
	resp, body, err := c.do(ctx, c.client, http.MethodGet, c.cfg.Host, nil)
	if err != nil {
		return Failed("%s: %v", target, err)
	}
	location := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusMovedPermanently {
		return Definitef("%s: expected 301 to https://, got %d (Location %q); body: %s", target, resp.StatusCode, location, httpExcerpt(body))
	}
	if next, err := resp.Location(); err != nil || next.Scheme != "https" {
		return Definitef("%s: expected 301 to https://, got 301 to %q", target, location)
	}
	return Passed("%s: 301 to %s", target, location)
}

// checkBadHost expects a bogus Host to be refused: 400, a connection closed
// without a response (nginx 444), or a refused TLS handshake.
func (c *httpChecker) checkBadHost(ctx context.Context) Attempt {
	target := c.target(http.MethodGet, BadProbeHost)
	resp, body, err := c.do(ctx, c.badHostClient, http.MethodGet, BadProbeHost, nil)
	switch {
	case err != nil && ctx.Err() == nil && httpDropped(err):
		return Passed("%s: refused without a response (%v)", target, err)
	case err != nil:
		return Failed("%s: expected 400 or a dropped connection, got %v", target, err)
	case resp.StatusCode == http.StatusBadRequest:
		return Passed("%s: %d", target, resp.StatusCode)
	}
	return Definitef("%s: expected 400 or a dropped connection for a bad Host, got %d; body: %s", target, resp.StatusCode, httpExcerpt(body))
}

// httpDropped reports whether err means the server hung up on the request or
// refused the TLS handshake, as opposed to not being there at all.
func httpDropped(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "remote error" { // a TLS alert from the server
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// checkCORS sends a preflight and expects the origin to be allowed.
func (c *httpChecker) checkCORS(ctx context.Context) Attempt {
	origin := c.cfg.CORSOrigin
	target := fmt.Sprintf("%s from Origin %s", c.target(http.MethodOptions, c.cfg.Host), origin)
	header := http.Header{"Origin": {origin}, "Access-Control-Request-Method": {http.MethodGet}}
	resp, body, err := c.do(ctx, c.client, http.MethodOptions, c.cfg.Host, header)
	if err != nil {
		return Failed("%s: %v", target, err)
	}
	allowed := resp.Header.Values("Access-Control-Allow-Origin")
	if len(allowed) == 1 && (allowed[0] == origin || allowed[0] == "*") {
		return Passed("%s: %d, Access-Control-Allow-Origin %s", target, resp.StatusCode, allowed[0])
	}
	got := "none"
	if len(allowed) > 0 {
		got = strconv.Quote(strings.Join(allowed, ", "))
	}
	return Definitef("%s: expected Access-Control-Allow-Origin %q or \"*\", got %s (status %d); body: %s",
		target, origin, got, resp.StatusCode, httpExcerpt(body))
}

// checkThrottle sends sequential GETs until one is throttled.
func (c *httpChecker) checkThrottle(ctx context.Context) Attempt {
	target := c.target(http.MethodGet, c.cfg.Host)
	limit := c.cfg.ThrottleAfter + 1
	var statuses []int
	for sent := 1; sent <= limit; sent++ {
		resp, _, err := c.do(ctx, c.client, http.MethodGet, c.cfg.Host, nil)
		if err != nil {
			return Failed("%s: request %d of %d: %v", target, sent, limit, err)
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			return Passed("%s: 429 after %d requests (Retry-After %q)", target, sent, resp.Header.Get("Retry-After"))
		}
		statuses = append(statuses, resp.StatusCode)
	}
	return Definitef("%s: expected 429 within %d requests, got %s", target, limit, httpTally(statuses))
}

// do sends one request and returns the response with its body read (up to
// httpMaxBody) and closed. The error leaves out the URL, which callers name.
func (c *httpChecker) do(ctx context.Context, client *http.Client, method, host string, header http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.URL, nil)
	if err != nil {
		return nil, nil, err
	}
	for name, values := range header {
		req.Header[name] = values
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, httpMaxBody))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the body after status %d: %w", resp.StatusCode, err)
	}
	return resp, body, nil
}

// target names what a request reaches, for messages.
func (c *httpChecker) target(method, host string) string {
	if host == "" {
		return method + " " + c.cfg.URL
	}
	return fmt.Sprintf("%s %s (Host %s)", method, c.cfg.URL, host)
}

// httpClientFor returns a client that never follows redirects: a copy of
// client, or a fresh one that dials the target directly (no proxy) on a new
// connection each time.
func httpClientFor(client *http.Client, insecure bool) *http.Client {
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:   true,
			TLSHandshakeTimeout: 10 * time.Second,
			DisableKeepAlives:   true,
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: insecure}, //nolint:gosec // the operator asked for it
		}}
	} else {
		copied := *client
		client = &copied
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return client
}

// httpBadHostClient sends the bad Host as TLS server name too, so that a
// server refusing unknown names at the handshake is seen doing it. The
// certificate cannot match a name chosen to be wrong, so it is not verified
// here. A client whose transport is not an *http.Transport is used as it is.
func httpBadHostClient(client *http.Client) *http.Client {
	base := client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	transport, ok := base.(*http.Transport)
	if !ok {
		return client
	}
	transport = transport.Clone()
	tlsConfig := &tls.Config{}
	if transport.TLSClientConfig != nil {
		tlsConfig = transport.TLSClientConfig.Clone()
	}
	tlsConfig.ServerName = BadProbeHost
	tlsConfig.InsecureSkipVerify = true //nolint:gosec // see above
	transport.TLSClientConfig = tlsConfig
	transport.DisableKeepAlives = true
	copied := *client
	copied.Transport = transport
	return &copied
}

// httpNormalizeJSON round-trips the expected fields through JSON, so that
// they compare with reflect.DeepEqual to what a body decodes to.
func httpNormalizeJSON(fields map[string]any) (map[string]any, error) {
	if len(fields) == 0 {
		return nil, nil
	}
	encoded, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("ExpectJSON cannot be encoded as JSON: %w", err)
	}
	var normalized map[string]any
	if err := json.Unmarshal(encoded, &normalized); err != nil {
		return nil, fmt.Errorf("ExpectJSON does not decode back: %w", err)
	}
	return normalized, nil
}

func httpJSONText(value any) string {
	encoded, err := json.Marshal(value)
	if err != nil {
		return fmt.Sprint(value)
	}
	return string(encoded)
}

// httpTally renders statuses in order of first appearance: "10×200, 1×503".
func httpTally(statuses []int) string {
	counts := map[int]int{}
	var order []int
	for _, status := range statuses {
		if counts[status] == 0 {
			order = append(order, status)
		}
		counts[status]++
	}
	parts := make([]string, 0, len(order))
	for _, status := range order {
		parts = append(parts, fmt.Sprintf("%d×%d", counts[status], status))
	}
	return strings.Join(parts, ", ")
}

// httpExcerpt quotes at most httpExcerptMax bytes of a body, whitespace
// collapsed, cut on a rune boundary.
func httpExcerpt(body []byte) string {
	text := strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "\uFFFD")), " ")
	if text == "" {
		return "(empty)"
	}
	if len(text) > httpExcerptMax {
		const ellipsis = "…"
		cut := httpExcerptMax - len(ellipsis)
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + ellipsis
	}
	return strconv.Quote(text)
}
