package probe

import (
	"context"
	"flag"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obcd/obcd/internal/testsvc"
)

var update = flag.Bool("update", false, "rewrite golden files")

// sequence returns a checker that plays back outcomes, then repeats the last.
func sequence(outcomes ...Outcome) (Checker, *atomic.Int32) {
	var calls atomic.Int32
	return CheckFunc(func(context.Context) Attempt {
		n := int(calls.Add(1)) - 1
		if n >= len(outcomes) {
			n = len(outcomes) - 1
		}
		return Attempt{Outcome: outcomes[n], Message: "attempt"}
	}), &calls
}

func testSpec(name string, check Checker) Spec {
	return Spec{Name: name, Check: check, Timeout: 100 * time.Millisecond, Interval: 10 * time.Millisecond, Critical: true}
}

func TestRun_PassesAfterRecovering(t *testing.T) {
	check, calls := sequence(Fail, Fail, Pass)
	r := Run(context.Background(), []Spec{testSpec("x", check)})[0]
	if r.Status != StatusPass || calls.Load() != 3 || r.Attempts != 3 {
		t.Errorf("result %+v after %d calls", r, calls.Load())
	}
}

func TestRun_SuccessThresholdNeedsConsecutivePasses(t *testing.T) {
	check, calls := sequence(Pass, Fail, Pass, Pass, Pass)
	s := testSpec("x", check)
	s.SuccessThreshold = 3
	r := Run(context.Background(), []Spec{s})[0]
	if r.Status != StatusPass || calls.Load() != 5 {
		t.Errorf("status %s after %d calls, want pass after 5", r.Status, calls.Load())
	}
}

func TestRun_TooFewPassesIsPendingNotPass(t *testing.T) {
	check, _ := sequence(Pass)
	s := testSpec("x", check)
	s.SuccessThreshold = 1000
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r := Run(ctx, []Spec{s})[0]
	if r.Status != StatusPending || r.Passed() || !strings.Contains(r.Message, "of 1000 consecutive passes") {
		t.Errorf("result %+v: a threshold not reached must stay pending", r)
	}
	if AllCriticalPassed([]Result{r}) {
		t.Error("a pending critical probe counted as passed")
	}
}

func TestRun_FatalStopsAtOnceAfterStartPeriod(t *testing.T) {
	check, calls := sequence(Fatal)
	r := Run(context.Background(), []Spec{testSpec("x", check)})[0]
	if r.Status != StatusFail || calls.Load() != 1 {
		t.Errorf("fatal retried: %d calls, %+v", calls.Load(), r)
	}
	check, calls = sequence(Fatal, Fatal, Pass)
	s := testSpec("y", check)
	s.StartPeriod = time.Second
	r = Run(context.Background(), []Spec{s})[0]
	if r.Status != StatusPass || calls.Load() != 3 {
		t.Errorf("a fatal outcome inside the start period must be retried: %d calls, %+v", calls.Load(), r)
	}
}

func TestRun_HungCheckFailsAtItsTimeoutWithinTheDeadline(t *testing.T) {
	hang := CheckFunc(func(ctx context.Context) Attempt {
		<-ctx.Done()
		return Failed("read: %v", ctx.Err())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	began := time.Now()
	r := Run(ctx, []Spec{testSpec("hung", hang)})[0]
	if elapsed := time.Since(began); elapsed > 900*time.Millisecond {
		t.Errorf("Run took %s past a 500ms deadline", elapsed)
	}
	if r.Status != StatusFail || !strings.Contains(r.Message, "no answer within 100ms") {
		t.Errorf("result %+v", r)
	}
}

func TestRun_DeadlineBeforeAnyResultIsNotAPass(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	check := CheckFunc(func(ctx context.Context) Attempt { return Failed("%v", ctx.Err()) })
	r := Run(ctx, []Spec{testSpec("late", check)})[0]
	if r.Passed() {
		t.Fatalf("%+v passed without a result", r)
	}
}

func TestRun_ProbesRunInParallel(t *testing.T) {
	slow := CheckFunc(func(ctx context.Context) Attempt {
		select {
		case <-time.After(200 * time.Millisecond):
			return Passed("ok")
		case <-ctx.Done():
			return Failed("cancelled")
		}
	})
	var specs []Spec
	for i := 0; i < 20; i++ {
		s := testSpec("p", slow)
		s.Timeout = time.Second
		specs = append(specs, s)
	}
	began := time.Now()
	results := Run(context.Background(), specs)
	if elapsed := time.Since(began); elapsed > time.Second {
		t.Errorf("20 probes of 200ms took %s: not parallel", elapsed)
	}
	if !AllCriticalPassed(results) {
		t.Error("not all passed")
	}
}

func TestFailures_CriticalFirst(t *testing.T) {
	results := []Result{
		{Name: "opt", Status: StatusFail},
		{Name: "ok", Status: StatusPass, Critical: true},
		{Name: "crit", Status: StatusFail, Critical: true},
	}
	f := Failures(results)
	if len(f) != 2 || f[0].Name != "crit" || f[1].Name != "opt" {
		t.Errorf("failures = %+v", f)
	}
	if AllCriticalPassed(results) {
		t.Error("a failed critical probe passed the verdict")
	}
}

// TestRunOnDemand_ReportsADefiniteFailureAtOnceAndRetriesTheRest: on
// demand, a refused connection or a wrong answer is the verdict after one
// attempt; a failure with no definite reason (no answer yet) is retried
// until it passes; the deploy's RunNotify retries both.
func TestRunOnDemand_ReportsADefiniteFailureAtOnceAndRetriesTheRest(t *testing.T) {
	closed := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	_, dialErr := net.Dial("tcp", closed)
	if !DefiniteError(dialErr) || !Failed("GET: %v", dialErr).Definite {
		t.Fatalf("a refused connection (%v) is not definite", dialErr)
	}
	if DefiniteError(context.DeadlineExceeded) || !DefiniteError(&net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}) {
		t.Error("a timeout must not be definite, and a name that does not resolve must be")
	}
	var slow atomic.Int32
	specs := []Spec{
		{Name: "refused", Check: CheckFunc(func(context.Context) Attempt { return Failed("GET: %v", dialErr) }), Interval: 10 * time.Millisecond},
		{Name: "wrong", Check: CheckFunc(func(context.Context) Attempt { return Definitef("expected 200, got 503") }), Interval: 10 * time.Millisecond},
		{Name: "slow", Check: CheckFunc(func(context.Context) Attempt {
			if slow.Add(1) < 3 {
				return Failed("not scraped yet")
			}
			return Passed("up")
		}), Interval: 10 * time.Millisecond},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	results := RunOnDemand(ctx, specs, nil)
	if results[0].Status != StatusFail || results[0].Attempts != 1 || results[1].Status != StatusFail || results[1].Attempts != 1 {
		t.Errorf("definite failures: %+v %+v; want fail after one attempt each", results[0], results[1])
	}
	if results[2].Status != StatusPass || results[2].Attempts != 3 {
		t.Errorf("a failure with no definite reason: %+v; want retried until it passed", results[2])
	}
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	if deploy := RunNotify(short, specs[:1], nil); deploy[0].Attempts < 2 {
		t.Errorf("a deploy's verification retries a refused connection: %+v", deploy[0])
	}
}
