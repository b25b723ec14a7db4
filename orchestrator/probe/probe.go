// Package probe proves that a running environment works: typed checks
// (HTTP, metrics, Postgres, Redis, Prometheus, ...) run in parallel under
// one deadline, each to an exact, explained verdict.
package probe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Outcome is what one attempt found.
type Outcome int

// Outcomes of an attempt.
const (
	// Pass: the check holds.
	Pass Outcome = iota
	// Fail: it does not hold now; the probe keeps trying until its deadline.
	Fail
	// Fatal: it cannot hold without a change (a wrong password, a missing
	// table); the probe stops at once, after its start period.
	Fatal
)

// Attempt is the result of one try.
type Attempt struct {
	Outcome Outcome
	// Message says, on failure, what was expected and what came back
	// (a status, a body excerpt, a lastError); on success, a short detail.
	Message string
	// Definite: it failed for a reason that holds now, not for want of
	// time (the connection was refused, the name does not resolve, no
	// container runs, the answer is not the expected one). A deploy's
	// verification retries it all the same, since a service may still be
	// starting; an on-demand check (RunOnDemand) reports it at once.
	Definite bool
}

// Passed returns a passing attempt.
func Passed(format string, args ...any) Attempt {
	return Attempt{Outcome: Pass, Message: fmt.Sprintf(format, args...)}
}

// Failed returns a failing attempt that may recover. It is Definite when
// one of args is an error that holds now (DefiniteError).
func Failed(format string, args ...any) Attempt {
	definite := false
	for _, arg := range args {
		if err, ok := arg.(error); ok && DefiniteError(err) {
			definite = true
		}
	}
	return Attempt{Outcome: Fail, Message: fmt.Sprintf(format, args...), Definite: definite}
}

// Definitef returns a failing attempt whose reason holds now: an answer
// that is not the expected one.
func Definitef(format string, args ...any) Attempt {
	return Attempt{Outcome: Fail, Message: fmt.Sprintf(format, args...), Definite: true}
}

// DefiniteError reports whether err is a failure that holds now: a
// refused connection, an unreachable host or network, a name that does
// not resolve. A timeout is not: the server may only be slow.
func DefiniteError(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsNotFound
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// Fatalf returns a failing attempt that retrying cannot fix.
func Fatalf(format string, args ...any) Attempt {
	return Attempt{Outcome: Fatal, Message: fmt.Sprintf(format, args...)}
}

// Checker makes one attempt. It must return when ctx is done.
type Checker interface {
	Check(ctx context.Context) Attempt
}

// CheckFunc adapts a function to Checker.
type CheckFunc func(ctx context.Context) Attempt

// Check implements Checker.
func (f CheckFunc) Check(ctx context.Context) Attempt { return f(ctx) }

// Spec is one probe: what to check, against what, and how patiently.
type Spec struct {
	Name      string // unique, e.g. "web-ready"
	Kind      string // http, metrics, postgres, redis, prometheus, alertmanager, grafana, celery, container
	Target    string // what it reaches, for people: a URL or host:port
	Component string // status component it feeds, e.g. "database"
	Critical  bool   // a failing critical probe fails verify and makes status unhealthy

	Timeout          time.Duration // per attempt
	Interval         time.Duration // between attempts
	StartPeriod      time.Duration // failures before this are not final
	SuccessThreshold int           // consecutive passes needed

	// InNetwork: Target is a name and port on the environment's network,
	// reached from inside it through the plan's Vantage, not from here.
	InNetwork bool
	// Config is the check as data, from which a vantage elsewhere builds
	// it; nil for the container probe, which always runs here.
	Config *Config
	Check  Checker `json:"-"`
}

// Status is a probe's verdict.
type Status string

// Verdicts. A probe with no completed attempt, or too few passes, is
// pending; pending never counts as a pass.
const (
	StatusPass    Status = "pass"
	StatusFail    Status = "fail"
	StatusPending Status = "pending"
)

// Result is a probe's verdict with its evidence.
type Result struct {
	Name      string        `json:"name"`
	Kind      string        `json:"kind"`
	Target    string        `json:"target"`
	Component string        `json:"component"`
	Critical  bool          `json:"critical"`
	Status    Status        `json:"status"`
	Latency   time.Duration `json:"latency_ns"` // of the last attempt
	Attempts  int           `json:"attempts"`
	Message   string        `json:"message"`
	// InNetwork: the probe ran from inside the environment's network,
	// through the in-network agent.
	InNetwork bool `json:"in_network"`
}

// Passed reports whether the probe passed.
func (r Result) Passed() bool { return r.Status == StatusPass }

// Defaults fill a Spec's zero timing fields.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultInterval = 1 * time.Second
)

func (s Spec) withDefaults() Spec {
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Interval <= 0 {
		s.Interval = DefaultInterval
	}
	if s.SuccessThreshold <= 0 {
		s.SuccessThreshold = 1
	}
	return s
}

// Run runs every probe at once, from here, until each has a verdict or
// ctx ends, and returns the results in the order of specs. Plan.Run runs
// a plan's in-network probes through its vantage as well.
func Run(ctx context.Context, specs []Spec) []Result {
	return RunNotify(ctx, specs, nil)
}

// RunNotify is Run, calling notify (from one goroutine at a time) as each
// probe reaches its verdict, so callers can show progress.
func RunNotify(ctx context.Context, specs []Spec, notify func(Result)) []Result {
	return runAll(ctx, specs, notify, false)
}

// RunOnDemand is RunNotify for a check on demand (obcd verify): a probe
// whose attempt fails for a definite reason, or fatally, has its verdict
// at once, with no start period and no retry. A probe that only has not
// answered yet is retried until ctx ends, as RunNotify does.
func RunOnDemand(ctx context.Context, specs []Spec, notify func(Result)) []Result {
	return runAll(ctx, specs, notify, true)
}

func runAll(ctx context.Context, specs []Spec, notify func(Result), onDemand bool) []Result {
	results := make([]Result, len(specs))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, spec := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runOne(ctx, spec.withDefaults(), onDemand)
			if notify != nil {
				mu.Lock()
				notify(results[i])
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return results
}

// runOne tries a probe until it passes SuccessThreshold times in a row,
// fails fatally after its start period, or ctx ends. On demand, a
// definite or fatal failure ends it at once.
func runOne(ctx context.Context, spec Spec, onDemand bool) Result {
	r := Result{Name: spec.Name, Kind: spec.Kind, Target: spec.Target, Component: spec.Component,
		Critical: spec.Critical, Status: StatusPending, Message: "no result yet", InNetwork: spec.InNetwork}
	start := time.Now()
	passes := 0
	for {
		attempt, latency := attemptOnce(ctx, spec)
		if ctx.Err() != nil && attempt.Outcome != Pass && r.Attempts > 0 {
			break // cut short by the overall deadline: keep the last complete verdict
		}
		r.Attempts++
		r.Latency, r.Message = latency, attempt.Message
		switch {
		case attempt.Outcome == Pass:
			passes++
			if passes >= spec.SuccessThreshold {
				r.Status = StatusPass
				return r
			}
			r.Status = StatusPending
			r.Message = fmt.Sprintf("%d of %d consecutive passes: %s", passes, spec.SuccessThreshold, attempt.Message)
		default:
			passes = 0
			r.Status = StatusFail
			if attempt.Outcome == Fatal && time.Since(start) >= spec.StartPeriod {
				return r
			}
			if onDemand && (attempt.Outcome == Fatal || attempt.Definite) {
				return r
			}
		}
		if !sleep(ctx, jitter(spec.Interval)) {
			break
		}
	}
	if r.Status == StatusPending && r.Attempts == 0 {
		r.Message = "no result before the deadline"
	}
	return r
}

// attemptOnce runs one attempt under the probe's timeout, and turns a
// timeout into an explicit message.
func attemptOnce(ctx context.Context, spec Spec) (Attempt, time.Duration) {
	actx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	began := time.Now()
	attempt := spec.Check.Check(actx)
	latency := time.Since(began)
	if attempt.Outcome != Pass && errors.Is(actx.Err(), context.DeadlineExceeded) {
		msg := attempt.Message
		if msg == "" {
			msg = "no detail"
		}
		attempt.Message = fmt.Sprintf("no answer within %s (%s)", spec.Timeout, msg)
	}
	return attempt, latency
}

// jitter spreads retries by up to a fifth of the interval.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Failures returns the results that did not pass, critical first.
func Failures(results []Result) []Result {
	var out []Result
	for _, r := range results {
		if !r.Passed() {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Critical && !out[j].Critical })
	return out
}

// AllCriticalPassed reports whether every critical probe passed: the
// verdict of obcd verify and of a deploy's verification window.
func AllCriticalPassed(results []Result) bool {
	for _, r := range results {
		if r.Critical && !r.Passed() {
			return false
		}
	}
	return true
}
