package probe_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obcd/obcd/orchestrator/probe"
)

// httpProbeOnce makes one attempt of an HTTP check, as the runner would.
func httpProbeOnce(t *testing.T, cfg probe.HTTPConfig) probe.Attempt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return probe.HTTP(cfg).Check(ctx)
}

func httpWantPass(t *testing.T, attempt probe.Attempt, contains ...string) {
	t.Helper()
	if attempt.Outcome != probe.Pass {
		t.Fatalf("expected a pass, got outcome %d: %s", attempt.Outcome, attempt.Message)
	}
	httpWantMessage(t, attempt, contains...)
}

func httpWantFail(t *testing.T, attempt probe.Attempt, contains ...string) {
	t.Helper()
	if attempt.Outcome != probe.Fail {
		t.Fatalf("expected a failure, got outcome %d: %s", attempt.Outcome, attempt.Message)
	}
	httpWantMessage(t, attempt, contains...)
}

func httpWantMessage(t *testing.T, attempt probe.Attempt, contains ...string) {
	t.Helper()
	for _, want := range contains {
		if !strings.Contains(attempt.Message, want) {
			t.Errorf("message %q does not contain %q", attempt.Message, want)
		}
	}
}

// httpServe starts a test server for handler and stops it with the test.
func httpServe(t *testing.T, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	server := httptest.NewServer(handler)
	t.Cleanup(server.Close)
	return server
}

func httpReply(status int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Add(header[i], header[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestHTTP_StatusDefaultsTo200(t *testing.T) {
	ok := httpServe(t, httpReply(http.StatusOK, "ok"))
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: ok.URL + "/health/"}), "GET "+ok.URL+"/health/", "200")

	down := httpServe(t, httpReply(http.StatusServiceUnavailable, "<h1>maintenance</h1>"))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: down.URL + "/health/"}),
		down.URL+"/health/", "expected status 200, got 503", `"<h1>maintenance</h1>"`)
}

func TestHTTP_ExpectStatusOtherThan200(t *testing.T) {
	noContent := httpServe(t, httpReply(http.StatusNoContent, ""))
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: noContent.URL, ExpectStatus: 204}), "204")

	ok := httpServe(t, httpReply(http.StatusOK, "ok"))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: ok.URL, ExpectStatus: 204}), "expected status 204, got 200")
}

func TestHTTP_ReadyWithDatabaseDownFailsNamingTheField(t *testing.T) {
	ready := map[string]any{"database": true, "cache": true}

	healthy := httpServe(t, httpReply(http.StatusOK, `{"database": true, "cache": true}`))
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: healthy.URL + "/ready/", ExpectJSON: ready}))

	broken := httpServe(t, httpReply(http.StatusOK, `{"database": false, "cache": true}`))
	attempt := httpProbeOnce(t, probe.HTTPConfig{URL: broken.URL + "/ready/", ExpectJSON: ready})
	httpWantFail(t, attempt, broken.URL+"/ready/", `JSON field "database": expected true, got false`)
	if strings.Contains(attempt.Message, `"cache"`+":") {
		t.Errorf("a matching field is reported as a problem: %s", attempt.Message)
	}
}

func TestHTTP_ExpectJSONMissingFieldAndNonJSONBodyFail(t *testing.T) {
	partial := httpServe(t, httpReply(http.StatusOK, `{"cache": true}`))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: partial.URL, ExpectJSON: map[string]any{"database": true}}),
		`JSON field "database": expected true, got no such field`)

	html := httpServe(t, httpReply(http.StatusOK, "<html>ready</html>"))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: html.URL, ExpectJSON: map[string]any{"database": true}}),
		"expected a JSON object", `"<html>ready</html>"`)
}

func TestHTTP_ExpectJSONComparesNestedObjectsDeeply(t *testing.T) {
	server := httpServe(t, httpReply(http.StatusOK,
		`{"status": "ok", "checks": {"database": true, "cache": {"ok": true, "latency_ms": 3}}}`))
	expect := func(latency int) map[string]any {
		return map[string]any{"status": "ok", "checks": map[string]any{
			"database": true, "cache": map[string]any{"ok": true, "latency_ms": latency}}}
	}
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, ExpectJSON: expect(3)}))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, ExpectJSON: expect(4)}),
		`JSON field "checks": expected {"cache":{"latency_ms":4,"ok":true},"database":true}, got {"cache":{"latency_ms":3,"ok":true},"database":true}`)
}

func TestHTTP_ExpectJSONThatCannotBeEncodedIsFatal(t *testing.T) {
	server := httpServe(t, httpReply(http.StatusOK, `{}`))
	attempt := httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, ExpectJSON: map[string]any{"x": make(chan int)}})
	if attempt.Outcome != probe.Fatal || !strings.Contains(attempt.Message, "ExpectJSON") {
		t.Fatalf("expected a fatal configuration error, got %d: %s", attempt.Outcome, attempt.Message)
	}
}

func TestHTTP_RelativeURLIsFatal(t *testing.T) {
	attempt := httpProbeOnce(t, probe.HTTPConfig{URL: "/health/"})
	if attempt.Outcome != probe.Fatal || !strings.Contains(attempt.Message, `"/health/"`) {
		t.Fatalf("expected a fatal error naming the URL, got %d: %s", attempt.Outcome, attempt.Message)
	}
}

func TestHTTP_ExpectBody(t *testing.T) {
	server := httpServe(t, httpReply(http.StatusOK, "<html><title>OBCMS login</title></html>"))
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, ExpectBody: "OBCMS login"}))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, ExpectBody: "Dashboard"}),
		`expected the body to contain "Dashboard"`, "status 200", `"<html><title>OBCMS login</title></html>"`)
}

func TestHTTP_BodyReadIsLimitedTo1MiB(t *testing.T) {
	server := httpServe(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("a", 1<<20))
		_, _ = io.WriteString(w, "MARKER")
	})
	attempt := httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, ExpectBody: "MARKER"})
	httpWantFail(t, attempt, `expected the body to contain "MARKER"`)
	if len(attempt.Message) > 500 {
		t.Errorf("message is %d bytes; the body excerpt must stay short: %s", len(attempt.Message), attempt.Message)
	}
}

func TestHTTP_ExpectHeaders(t *testing.T) {
	server := httpServe(t, httpReply(http.StatusOK, "ok",
		"Strict-Transport-Security", "max-age=31536000; includeSubDomains; preload",
		"X-Frame-Options", "DENY"))
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, ExpectHeaders: map[string]string{
		"strict-transport-security": "max-age=31536000",
		"X-Frame-Options":           "",
	}}))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, ExpectHeaders: map[string]string{
		"Content-Security-Policy": "",
	}}), "expected header Content-Security-Policy, got none")
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, ExpectHeaders: map[string]string{
		"X-Frame-Options": "SAMEORIGIN",
	}}), `expected header X-Frame-Options to contain "SAMEORIGIN", got "DENY"`)
}

func TestHTTP_HostOverrideIsSent(t *testing.T) {
	server := httpServe(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "obcms.example.org" {
			http.Error(w, "Invalid HTTP_HOST header: "+r.Host, http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, Host: "obcms.example.org"}), "(Host obcms.example.org)")
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL}), "expected status 200, got 400", "Invalid HTTP_HOST header")
}

func TestHTTP_RedirectsAreNeverFollowed(t *testing.T) {
	server := httpServe(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			http.Redirect(w, r, "/accounts/login/", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "login")
	})
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL + "/"}), "expected status 200, got 302")
	// A caller's client that would follow redirects is not allowed to either.
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL + "/", Client: &http.Client{}}), "expected status 200, got 302")
}

func TestHTTP_RedirectToHTTPS(t *testing.T) {
	redirectTo := func(status int, location string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", location+r.URL.Path)
			w.WriteHeader(status)
		}
	}
	permanent := httpServe(t, redirectTo(http.StatusMovedPermanently, "https://obcms.example.org"))
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: permanent.URL + "/health/", RedirectToHTTPS: true}),
		"301 to https://obcms.example.org/health/")

	temporary := httpServe(t, redirectTo(http.StatusFound, "https://obcms.example.org"))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: temporary.URL, RedirectToHTTPS: true}),
		"expected 301 to https://, got 302", `"https://obcms.example.org/"`)

	plain := httpServe(t, redirectTo(http.StatusMovedPermanently, "http://obcms.example.org"))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: plain.URL, RedirectToHTTPS: true}),
		`expected 301 to https://, got 301 to "http://obcms.example.org/"`)

	relative := httpServe(t, redirectTo(http.StatusMovedPermanently, ""))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: relative.URL + "/x", RedirectToHTTPS: true}),
		`got 301 to "/x"`)

	served := httpServe(t, httpReply(http.StatusOK, "plain http page"))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: served.URL, RedirectToHTTPS: true}),
		"expected 301 to https://, got 200", `"plain http page"`)
}

// httpBadHostServer answers the good host and treats the bad one with reject.
func httpBadHostServer(t *testing.T, reject http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	var badHostSeen atomic.Int32
	return httpServe(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Host == probe.BadProbeHost {
			badHostSeen.Add(1)
			reject(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}), &badHostSeen
}

func TestHTTP_BadHostRejectedPassesWhenTheConnectionIsDropped(t *testing.T) {
	server, seen := httpBadHostServer(t, func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack() // nginx "return 444"
		if err == nil {
			_ = conn.Close()
		}
	})
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, BadHostRejected: true}),
		"(Host obcd-probe.invalid)", "refused without a response")
	if seen.Load() != 1 {
		t.Errorf("the server saw Host %s %d times, want 1", probe.BadProbeHost, seen.Load())
	}
}

func TestHTTP_BadHostRejectedPassesOn400(t *testing.T) {
	server, _ := httpBadHostServer(t, httpReply(http.StatusBadRequest, "Bad Request (400)"))
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, BadHostRejected: true}), "400")
}

func TestHTTP_BadHostRejectedFailsWhenTheBadHostIsServed(t *testing.T) {
	server, _ := httpBadHostServer(t, httpReply(http.StatusOK, "welcome to OBCMS"))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, BadHostRejected: true}),
		"(Host obcd-probe.invalid)", "expected 400 or a dropped connection for a bad Host, got 200", `"welcome to OBCMS"`)

	redirecting, _ := httpBadHostServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://obcd-probe.invalid/", http.StatusMovedPermanently)
	})
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: redirecting.URL, BadHostRejected: true}), "got 301")
}

func TestHTTP_BadHostRejectedPassesOnTLSHandshakeRefusal(t *testing.T) {
	server := httptest.NewUnstartedServer(httpReply(http.StatusOK, "ok"))
	server.Config.ErrorLog = log.New(io.Discard, "", 0)
	server.TLS = &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if hello.ServerName == probe.BadProbeHost { // nginx ssl_reject_handshake
			return nil, errors.New("unknown server name")
		}
		return nil, nil
	}}
	server.StartTLS()
	t.Cleanup(server.Close)

	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, BadHostRejected: true}), "refused without a response", "tls")
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, Insecure: true}), "200")
}

func TestHTTP_BadHostRejectedFailsWhenNothingListens(t *testing.T) {
	url := "http://" + httpClosedAddr(t) + "/"
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: url, BadHostRejected: true}),
		"expected 400 or a dropped connection", "connection refused")
}

func TestHTTP_CSRFToken(t *testing.T) {
	form := `<form method="post"><input type="hidden" name="csrfmiddlewaretoken" value="abc123"></form>`
	cookie := "csrftoken=Xyz789; expires=Wed, 20 Oct 2027 00:00:00 GMT; Path=/; SameSite=Lax; Secure"

	both := httpServe(t, httpReply(http.StatusOK, form, "Set-Cookie", cookie))
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: both.URL + "/accounts/login/", CSRFToken: true}))

	noCookie := httpServe(t, httpReply(http.StatusOK, form, "Set-Cookie", "sessionid=s1; Path=/"))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: noCookie.URL, CSRFToken: true}),
		`expected a csrftoken cookie, got Set-Cookie "sessionid=s1; Path=/"`)

	noField := httpServe(t, httpReply(http.StatusOK, `<form method="post"></form>`, "Set-Cookie", cookie))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: noField.URL, CSRFToken: true}),
		`expected a form field name="csrfmiddlewaretoken", found none`, `"<form method=\"post\"></form>"`)
}

func TestHTTP_ThrottlePassesOnceA429Comes(t *testing.T) {
	var hits atomic.Int32
	server := httpServe(t, func(w http.ResponseWriter, _ *http.Request) {
		if hits.Add(1) > 3 {
			w.Header().Set("Retry-After", "60")
			http.Error(w, "Request was throttled.", http.StatusTooManyRequests)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL + "/api/", ThrottleAfter: 3}),
		"429 after 4 requests", `Retry-After "60"`)
	if hits.Load() != 4 {
		t.Errorf("server got %d requests, want 4", hits.Load())
	}
}

func TestHTTP_ThrottleFailsWhenNo429Comes(t *testing.T) {
	var hits atomic.Int32
	server := httpServe(t, func(w http.ResponseWriter, _ *http.Request) {
		if hits.Add(1) == 2 {
			http.Error(w, "oops", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL + "/api/", ThrottleAfter: 5}),
		"expected 429 within 6 requests, got 5×200, 1×503")
	if hits.Load() != 6 {
		t.Errorf("server got %d requests, want ThrottleAfter+1 = 6", hits.Load())
	}
}

// httpCORSServer allows preflights from allowedOrigin; GET always fails, so
// a pass proves only the preflight ran.
func httpCORSServer(t *testing.T, allowedOrigin string) *httptest.Server {
	return httpServe(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodOptions {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		origin := r.Header.Get("Origin")
		if r.Header.Get("Access-Control-Request-Method") == http.MethodGet && (allowedOrigin == "*" || origin == allowedOrigin) {
			w.Header().Set("Access-Control-Allow-Origin", map[bool]string{true: "*", false: origin}[allowedOrigin == "*"])
		}
		w.WriteHeader(http.StatusOK)
	})
}

func TestHTTP_CORSPreflight(t *testing.T) {
	const origin = "https://app.obcms.example.org"
	exact := httpCORSServer(t, origin)
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: exact.URL + "/api/", CORSOrigin: origin}),
		"OPTIONS", "Access-Control-Allow-Origin "+origin)

	wildcard := httpCORSServer(t, "*")
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: wildcard.URL + "/api/", CORSOrigin: origin}), "Access-Control-Allow-Origin *")

	other := httpCORSServer(t, "https://other.example.org")
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: other.URL + "/api/", CORSOrigin: origin}),
		"from Origin "+origin, `expected Access-Control-Allow-Origin "`+origin+`" or "*", got none (status 200)`)
}

func TestHTTP_CORSFailsOnAnotherOriginEchoed(t *testing.T) {
	server := httpServe(t, httpReply(http.StatusOK, "", "Access-Control-Allow-Origin", "https://other.example.org"))
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, CORSOrigin: "https://app.example.org"}),
		`got "https://other.example.org"`)
}

func TestHTTP_ChecksCombineAndTheFirstFailureWins(t *testing.T) {
	server := httpServe(t, httpReply(http.StatusOK, `{"database": true}`, "Access-Control-Allow-Origin", "*"))
	cfg := probe.HTTPConfig{URL: server.URL, CORSOrigin: "https://app.example.org", ExpectJSON: map[string]any{"database": true}}
	httpWantPass(t, httpProbeOnce(t, cfg), "OPTIONS", "; GET")

	cfg.ExpectJSON = map[string]any{"database": true, "cache": true}
	httpWantFail(t, httpProbeOnce(t, cfg), `JSON field "cache"`)
}

func TestHTTP_InsecureSkipsCertificateVerification(t *testing.T) {
	server := httptest.NewUnstartedServer(httpReply(http.StatusOK, "ok"))
	server.Config.ErrorLog = log.New(io.Discard, "", 0)
	server.StartTLS()
	t.Cleanup(server.Close)

	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL}), server.URL, "certificate")
	httpWantPass(t, httpProbeOnce(t, probe.HTTPConfig{URL: server.URL, Insecure: true}), "200")
}

func TestHTTP_ClosedPortFailsWithConnectionRefused(t *testing.T) {
	url := "http://" + httpClosedAddr(t) + "/health/"
	httpWantFail(t, httpProbeOnce(t, probe.HTTPConfig{URL: url}), "GET "+url, "connection refused")
}

func TestHTTP_SlowEndpointFailsWithNoAnswerWithin(t *testing.T) {
	server := httpServe(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
			_, _ = io.WriteString(w, "too late")
		case <-r.Context().Done():
		}
	})
	httpRunUntilDeadline(t, server.URL+"/health/")
}

func TestHTTP_SilentListenerFailsWithNoAnswerWithin(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, conn) // accepted, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = listener.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range held {
			_ = conn.Close()
		}
	})
	httpRunUntilDeadline(t, fmt.Sprintf("http://%s/health/", listener.Addr()))
}

// httpRunUntilDeadline runs an HTTP probe on url through the runner and
// expects it to fail on its per-attempt timeout, within the overall deadline.
func httpRunUntilDeadline(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	began := time.Now()
	results := probe.Run(ctx, []probe.Spec{{
		Name: "web-health", Kind: "http", Target: url, Critical: true,
		Timeout: 200 * time.Millisecond, Interval: 50 * time.Millisecond,
		Check: probe.HTTP(probe.HTTPConfig{URL: url}),
	}})
	if elapsed := time.Since(began); elapsed > 1500*time.Millisecond {
		t.Errorf("Run took %s, want about the 1s deadline", elapsed)
	}
	result := results[0]
	if result.Status != probe.StatusFail {
		t.Fatalf("status %s, want fail: %s", result.Status, result.Message)
	}
	for _, want := range []string{"no answer within 200ms", url} {
		if !strings.Contains(result.Message, want) {
			t.Errorf("message %q does not contain %q", result.Message, want)
		}
	}
	if result.Attempts < 2 {
		t.Errorf("%d attempts, want the runner to retry after each timeout", result.Attempts)
	}
}

// httpClosedAddr returns a loopback address nothing listens on.
func httpClosedAddr(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := listener.Addr().String()
	if err := listener.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
