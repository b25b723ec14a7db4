package testsvc

// appimage.go builds the test app image: a FROM scratch image of a tiny
// static Go HTTP server standing in for a Django web container.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
	"github.com/obcd/obcd/orchestrator/engine"
)

// AppImageAPI is the part of the Docker client BuildAppImage uses.
type AppImageAPI interface {
	ImageBuild(ctx context.Context, buildContext io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error)
	ImageRemove(ctx context.Context, imageID string, options client.ImageRemoveOptions) (client.ImageRemoveResult, error)
}

var _ AppImageAPI = (*client.Client)(nil)

// AppImageOptions are baked into the app's binary.
type AppImageOptions struct {
	Version      string // served by /version, /health/ and /ready/; "dev" when empty
	ReadyFails   bool   // /ready/ answers 503 {"database": false, ...}
	CrashAtStart bool   // the server exits 1 at once, after one line on stderr
	// DieAfter, when set, makes the server exit 1 that long after it
	// started, healthy until then: a release that fails after the switch.
	DieAfter time.Duration
}

// AppPort is where the app serves, unless $PORT says otherwise; AppProxyPort
// is where -proxy mode listens, unless $PROXY_PORT says otherwise.
const (
	AppPort      = 8000
	AppProxyPort = 8080
)

// BuildAppImage builds the app into a FROM scratch image tagged tag with
// the classic builder, removes it when the test ends, and returns its ID.
// The image runs the server (ENTRYPOINT ["/app"]) and has a healthcheck,
// every second, of CMD ["/app", "-health"].
//
// The app's modes:
//   - no flags: serves on :8000 ($PORT): /health/ 200 {"status":"ok","version":…};
//     /ready/ 200 {"database":true,"cache":true,"version":…}, or 503 with
//     "database":false when ReadyFails; /version the version; /file/<path>
//     a file's content; /env/<NAME> a variable's value. Every answer has the
//     headers X-App-Version and X-Served-By (the container's hostname).
//   - -health: GETs $HEALTH_URL, default http://127.0.0.1:$PORT/health/,
//     and exits 0 on a 200, else 1.
//   - -proxy URL: a reverse proxy on :8080 ($PROXY_PORT) to URL that dials,
//     and so resolves, the upstream anew for every request (no keep-alive),
//     so that it follows a network alias as replicas change; like nginx's
//     proxy_next_upstream, it tries the host's next address when a connect
//     fails (500ms each), and sends a GET or HEAD again (three tries in
//     all) when the upstream failed before it answered.
//   - -exit N: prints a line on stdout and one on stderr, exits N (a one-off).
//
// A command that repeats the entrypoint (["/app", "-exit", "0"]) or starts
// with "serve" means the same as without it.
// It stops at once on SIGTERM, as PID 1.
func BuildAppImage(t testing.TB, api AppImageAPI, tag string, opts AppImageOptions) string {
	t.Helper()
	binary, err := appBinary(opts)
	if err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	buildContext, err := appBuildContext(binary, opts)
	if err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	built, err := api.ImageBuild(ctx, buildContext, client.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		t.Fatalf("testsvc: building image %s: %v", tag, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A test that built the same tag twice removes it once.
		if _, err := api.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("testsvc: removing image %s: %v", tag, err)
		}
	})
	defer built.Body.Close()
	imageID, err := appReadBuildOutput(built.Body)
	if err != nil {
		t.Fatalf("testsvc: building image %s: %v", tag, err)
	}
	return imageID
}

// appBuild is one compiled variant of the app, built once per process.
type appBuild struct {
	once   sync.Once
	binary []byte
	err    error
}

var (
	appBuildsMu sync.Mutex
	appBuilds   = map[AppImageOptions]*appBuild{}
)

// appBinary compiles the app for opts, once per process; the Go build
// cache makes the other variants a relink.
func appBinary(opts AppImageOptions) ([]byte, error) {
	appBuildsMu.Lock()
	variant, ok := appBuilds[opts]
	if !ok {
		variant = &appBuild{}
		appBuilds[opts] = variant
	}
	appBuildsMu.Unlock()
	variant.once.Do(func() { variant.binary, variant.err = appCompile(opts) })
	return variant.binary, variant.err
}

func appCompile(opts AppImageOptions) ([]byte, error) {
	version := opts.Version
	if version == "" {
		version = "dev"
	}
	if strings.ContainsAny(version, `'"\ `) {
		return nil, fmt.Errorf("app version %q must not hold quotes, backslashes or spaces", version)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the go tool is needed to build the test app: %w", err)
	}
	dir, err := os.MkdirTemp("", "testsvc-app-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for name, content := range map[string]string{"main.go": appSource, "go.mod": "module app\n\ngo 1.22\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.readyFails=%t -X main.crashAtStart=%t -X main.dieAfter=%s",
		version, opts.ReadyFails, opts.CrashAtStart, opts.DieAfter)
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags="+ldflags, "-o", "app", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build of the test app: %v\n%s", err, out)
	}
	return os.ReadFile(filepath.Join(dir, "app"))
}

const appDockerfile = `FROM scratch
COPY app /app
EXPOSE 8000
LABEL dev.obcd.test-app.version=%q
HEALTHCHECK --interval=1s --timeout=3s --retries=3 CMD ["/app", "-health"]
ENTRYPOINT ["/app"]
`

// appBuildContext is a tar holding the Dockerfile and the binary.
func appBuildContext(binary []byte, opts AppImageOptions) (io.Reader, error) {
	return engine.TarFiles([]engine.FileSpec{
		{Target: "/Dockerfile", Mode: 0o644, Data: fmt.Appendf(nil, appDockerfile, opts.Version)},
		{Target: "/app", Mode: 0o755, Data: binary},
	}, "")
}

// appReadBuildOutput reads the build's output to its end and returns the
// built image's ID, or the build's error.
func appReadBuildOutput(body io.Reader) (string, error) {
	imageID, err := engine.ReadBuildOutput(body)
	if err == nil && imageID == "" {
		err = errors.New("the build did not report an image ID")
	}
	return imageID, err
}

// appSource is the app: stdlib only, built as its own main package.
const appSource = `package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Set with -ldflags -X.
var (
	version      = "dev"
	readyFails   = "false"
	crashAtStart = "false"
	dieAfter     = "0s"
)

func main() {
	health := flag.Bool("health", false, "GET $HEALTH_URL (default http://127.0.0.1:$PORT/health/) and exit 0 on a 200")
	proxy := flag.String("proxy", "", "reverse-proxy :$PROXY_PORT (8080) to this URL")
	exit := flag.Int("exit", -1, "print a line and exit with this code")
	// A command may repeat the entrypoint (["/app", "-exit", "0"]) or name
	// the server mode (["serve"]): both are skipped.
	args := os.Args[1:]
	if len(args) > 0 && (args[0] == "/app" || args[0] == "app") {
		args = args[1:]
	}
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	flag.CommandLine.Parse(args)
	switch {
	case *health:
		os.Exit(checkHealth())
	case *exit >= 0:
		fmt.Printf("app %s: one-off ran, exiting %d\n", version, *exit)
		fmt.Fprintf(os.Stderr, "app %s: stderr of the one-off\n", version)
		os.Exit(*exit)
	case *proxy != "":
		serveProxy(*proxy)
		return
	}
	if crashAtStart == "true" {
		fmt.Fprintf(os.Stderr, "app %s: crashing at start as configured\n", version)
		os.Exit(1)
	}
	if after, err := time.ParseDuration(dieAfter); err == nil && after > 0 {
		time.AfterFunc(after, func() {
			fmt.Fprintf(os.Stderr, "app %s: dying %s after start as configured\n", version, after)
			os.Exit(1)
		})
	}
	serveApp()
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func checkHealth() int {
	target := env("HEALTH_URL", "http://127.0.0.1:"+env("PORT", "8000")+"/health/")
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(target)
	if err != nil {
		fmt.Println("unhealthy:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Println("unhealthy: HTTP", resp.StatusCode)
		return 1
	}
	fmt.Println("healthy")
	return 0
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func serveApp() {
	hostname, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/health/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "version": version})
	})
	mux.HandleFunc("/ready/", func(w http.ResponseWriter, r *http.Request) {
		if readyFails == "true" {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"database": false, "cache": true, "version": version})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"database": true, "cache": true, "version": version})
	})
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, version) })
	mux.HandleFunc("/file/", func(w http.ResponseWriter, r *http.Request) {
		data, err := os.ReadFile("/" + strings.TrimPrefix(r.URL.Path, "/file/"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(data)
	})
	mux.HandleFunc("/env/", func(w http.ResponseWriter, r *http.Request) {
		value, ok := os.LookupEnv(strings.TrimPrefix(r.URL.Path, "/env/"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, value)
	})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-App-Version", version)
		w.Header().Set("X-Served-By", hostname)
		mux.ServeHTTP(w, r)
	})
	serve("app "+version, ":"+env("PORT", "8000"), handler)
}

func serveProxy(upstream string) {
	target, err := url.Parse(upstream)
	if err != nil || target.Host == "" {
		fmt.Fprintf(os.Stderr, "proxy: bad upstream URL %q: %v\n", upstream, err)
		os.Exit(2)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// No keep-alive: every request dials, and so resolves, the upstream
	// host anew, following a network alias as replicas change.
	proxy.Transport = nextUpstream{&http.Transport{DisableKeepAlives: true, DialContext: dialEach}}
	proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, "proxy: upstream "+upstream+": "+err.Error(), http.StatusBadGateway)
	}
	serve("proxy to "+upstream, ":"+env("PROXY_PORT", "8080"), proxy)
}

// nextUpstream sends a GET or HEAD again, up to three times, when its
// upstream failed before it answered: a connection reset because the
// replica closed its listener with the request in its accept queue, as
// nginx's proxy_next_upstream (default: error, timeout) does. Each try
// dials, and so resolves, anew.
type nextUpstream struct{ http.RoundTripper }

func (n nextUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	for try := 1; ; try++ {
		resp, err := n.RoundTripper.RoundTrip(r)
		if err == nil || try == 3 || (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.Context().Err() != nil {
			return resp, err
		}
		fmt.Fprintf(os.Stderr, "proxy: %s %s: %v; trying again\n", r.Method, r.URL.Path, err)
	}
}

// dialEach resolves the host and tries its addresses in turn, each for a
// short while, as nginx's proxy_next_upstream does on a connect error: a
// replica that is starting, crashing or gone costs time, not the request.
func dialEach(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, addr := range addrs {
		dialer := net.Dialer{Timeout: 500 * time.Millisecond}
		conn, err := dialer.DialContext(ctx, network, net.JoinHostPort(addr, port))
		if err == nil {
			return conn, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// serve runs handler on addr until SIGTERM or SIGINT: as PID 1 in a
// container, the signal is ignored unless handled.
func serve(what, addr string, handler http.Handler) {
	server := &http.Server{Addr: addr, Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-stop
		fmt.Printf("%s: %v, stopping\n", what, sig)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		server.Shutdown(ctx)
	}()
	fmt.Printf("%s: listening on %s\n", what, addr)
	if err := server.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		os.Exit(1)
	}
}
`
