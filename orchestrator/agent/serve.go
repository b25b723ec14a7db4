// Package agent is obcd's vantage point inside an environment's network:
// a short-lived container of obcd's own binary, attached to the project's
// network, that runs the probes of services no address reaches from
// outside (PostgreSQL, PgBouncer, Redis, the monitoring plane) by their
// names on that network, and streams the results back.
//
// The probe plan, passwords included, travels on the container's standard
// input over the attach stream, never in its command line or environment,
// which docker inspect shows. The container lives as long as obcd's
// command: it exits when its standard input closes (obcd ended, or was
// killed and its connection dropped), and in any case at its deadline;
// the engine then removes it (AutoRemove).
package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/obcd/obcd/orchestrator/probe"
)

// request is one round of probes: a line of JSON on the agent's stdin.
type request struct {
	ID       int           `json:"id"`
	OnDemand bool          `json:"on_demand"`
	Timeout  time.Duration `json:"timeout_ns"`
	Specs    []probe.Spec  `json:"specs"`
}

// reply is a line of JSON on the agent's stdout: a result, the end of a
// round, or why a request could not be run.
type reply struct {
	ID     int           `json:"id"`
	Index  int           `json:"index"`
	Result *probe.Result `json:"result,omitempty"`
	Done   bool          `json:"done,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// maxRequest bounds one request line: a plan is a few kilobytes.
const maxRequest = 8 << 20

// Serve is the agent's side, in the container: it reads requests from in,
// runs each round of probes from here, and writes every verdict to out as
// it comes. It returns at the end of in (obcd closed it, or is gone),
// cutting a running round short, or when ctx ends (the agent's deadline).
func Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type parsed struct {
		req request
		err error
	}
	requests := make(chan parsed)
	readErr := make(chan error, 1)
	go func() {
		scanner := bufio.NewScanner(in)
		scanner.Buffer(make([]byte, 64<<10), maxRequest)
		for scanner.Scan() {
			var p parsed
			p.err = json.Unmarshal(scanner.Bytes(), &p.req)
			select {
			case requests <- p:
			case <-ctx.Done():
				return
			}
		}
		readErr <- scanner.Err()
		cancel() // nobody is left to hear a running round's verdicts
	}()
	w := &replyWriter{enc: json.NewEncoder(out)}
	for {
		select {
		case err := <-readErr:
			return err
		case <-ctx.Done():
			select {
			case err := <-readErr: // the end of the input cancelled it
				return err
			default:
			}
			return fmt.Errorf("agent deadline reached: %w", ctx.Err())
		case p := <-requests:
			if p.err != nil {
				w.write(reply{ID: p.req.ID, Error: fmt.Sprintf("the request is not valid: %v", p.err), Done: true})
				continue
			}
			serveRound(ctx, p.req, w)
		}
	}
}

// serveRound runs one request's probes under its timeout.
func serveRound(ctx context.Context, req request, w *replyWriter) {
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	index := map[string]int{}
	specs := make([]probe.Spec, len(req.Specs))
	for i, s := range req.Specs {
		s.Check = s.Config.Checker(s.Name)
		specs[i], index[s.Name] = s, i
	}
	notify := func(r probe.Result) { w.write(reply{ID: req.ID, Index: index[r.Name], Result: &r}) }
	// Run from here, which is inside the network: probe.RunOnDemand and
	// RunNotify run every spec locally, InNetwork or not.
	if req.OnDemand {
		probe.RunOnDemand(rctx, specs, notify)
	} else {
		probe.RunNotify(rctx, specs, notify)
	}
	w.write(reply{ID: req.ID, Done: true})
}

type replyWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
	err error
}

func (w *replyWriter) write(r reply) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = w.enc.Encode(r)
	}
}

// ErrUnavailable marks why the agent cannot run on an engine at all (its
// architecture, a dynamically linked obcd): the probes it would run fall
// back to declared addresses.
var ErrUnavailable = errors.New("the in-network agent cannot run here")
