package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/orchestrator/telemetry"
)

type serveOptions struct {
	*globalOptions
	probeOptions
	listen   string
	interval time.Duration
}

func newServeCommand(global *globalOptions) *cobra.Command {
	opts := &serveOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:     "serve ENV",
		Short:   "Serve the environment's status API and obcd's metrics",
		Long:    serveLong,
		Example: serveExample,
		Args:    exactEnv,
		RunE:    func(cmd *cobra.Command, args []string) error { return runServe(cmd.Context(), opts, args[0]) },
	}
	addProbeFlags(cmd, &opts.probeOptions)
	opts.timeout = 20 * time.Second
	cmd.Flags().Lookup("timeout").DefValue = "20s"
	cmd.Flags().StringVar(&opts.listen, "listen", "127.0.0.1:9401", "address to listen on")
	cmd.Flags().DurationVar(&opts.interval, "interval", 30*time.Second, "time between rounds of probes")
	return cmd
}

// statusServer holds the last round of probes and serves it.
type statusServer struct {
	stack   *stackhcl.Stack
	metrics *telemetry.Metrics
	mu      sync.RWMutex
	report  *probe.Report
}

func (s *statusServer) update(results []probe.Result) {
	report := probe.BuildStatus(s.stack, results)
	s.metrics.ObserveResults(results)
	s.mu.Lock()
	s.report = &report
	s.mu.Unlock()
}

func (s *statusServer) handleStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mu.RLock()
	report := s.report
	s.mu.RUnlock()
	w.Header().Set("Content-Type", "application/json")
	if report == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"overall_status":"unhealthy","message":"no probe results yet"}` + "\n"))
		return
	}
	data, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(report.HTTPStatus())
	_, _ = w.Write(append(data, '\n'))
}

func (s *statusServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/monitoring/status", s.handleStatus)
	mux.HandleFunc("/api/monitoring/status/", s.handleStatus)
	mux.Handle("/metrics", s.metrics.Handler())
	return mux
}

func runServe(ctx context.Context, opts *serveOptions, env string) error {
	environment, plan, err := opts.environmentProbes(env, &opts.probeOptions)
	if err != nil {
		return err
	}
	defer environment.close()
	stack := environment.stack
	if environment.agent != nil {
		environment.agent.Lifetime = serveAgentLifetime // one agent for many rounds
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	listener, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.listen, err)
	}
	srv := &statusServer{stack: stack, metrics: telemetry.New(stack.Name, stack.Environment, version)}
	httpServer := &http.Server{Handler: srv.handler(), ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(opts.stderr, "Serving %s %s on http://%s (/api/monitoring/status, /metrics); probes every %s.\n",
		stack.Name, stack.Environment, listener.Addr(), opts.interval)
	go srv.loop(ctx, plan, opts)
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = httpServer.Shutdown(shutdown)
	}()
	if err := httpServer.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// serveAgentLifetime is how long serve keeps one in-network agent before
// it starts a fresh one.
const serveAgentLifetime = 10 * time.Minute

// loop runs a round of probes, publishes it, and waits for the next.
func (s *statusServer) loop(ctx context.Context, plan probe.Plan, opts *serveOptions) {
	for {
		round, cancel := context.WithTimeout(ctx, opts.timeout)
		results := plan.Run(round, nil)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.update(results)
		select {
		case <-ctx.Done():
			return
		case <-time.After(opts.interval):
		}
	}
}

const serveLong = `Serve runs the environment's probes every --interval and serves:

  GET /api/monitoring/status  the status JSON of obcd status: 200 when
                              healthy or degraded, 503 when unhealthy (and
                              before the first round of probes finishes)
  GET /metrics                obcd's metrics: per-probe success and latency,
                              the last deploy and rollback, build info

It stops cleanly on SIGINT or SIGTERM.`

const serveExample = `  obcd serve production --listen 127.0.0.1:9401`
