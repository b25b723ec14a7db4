package orchestrator

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/obcd/obcd/orchestrator/engine"
)

// TestDeploy_KilledAtFiveRandomPointsUnderLoad kills `obcd deploy` with
// SIGKILL at five random points of its run, under steady load through
// the proxy. After each kill the next deploy (once the stale lock is
// broken) converges to the version asked for, no one-off container is
// left on the engine, the site keeps serving, and history records each
// killed deploy as interrupted.
func TestDeploy_KilledAtFiveRandomPointsUnderLoad(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	if _, err := e.deployer("v1").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	obcd := func(version string, args ...string) *exec.Cmd { return e.obcdCommand(t, version, args...) }
	// A full deploy first, to count the lines of progress a deploy prints:
	// the kills fall on random lines among them.
	full, err := obcd("v2", "deploy", "staging", "--skip-checks", "--watch", "10s", "--keep", "20").CombinedOutput()
	if err != nil {
		t.Fatalf("deploy v2: %v\n%s", err, full)
	}
	// A deploy killed while it shows its plan has changed nothing and
	// makes no release (its lock is left stale all the same), and one
	// killed once it has said "live and stable" has recorded that: the
	// kills fall from its first change to the line before its outcome.
	progress := strings.Split(strings.TrimRight(string(full), "\n"), "\n")
	first := slices.IndexFunc(progress, func(line string) bool { return strings.Contains(line, "] converge") })
	done := slices.IndexFunc(progress, func(line string) bool { return strings.Contains(line, "] done") })
	if first < 0 || done < first {
		t.Fatalf("the deploy printed no converge step, or no done line after it:\n%s", full)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill points drawn with seed %d from lines %d-%d of %d lines of progress", seed, first+1, done, len(progress))
	random := rand.New(rand.NewPCG(seed, seed>>1))

	stop := e.load()
	want := "v2"
	for round := 1; round <= 5; round++ {
		want = map[string]string{"v1": "v2", "v2": "v1"}[want]
		at := first + 1 + random.IntN(done-first)
		said := killDeployAtLine(t, obcd(want, "deploy", "staging", "--skip-checks", "--watch", "10s", "--keep", "20"), at)
		t.Logf("round %d: killed the deploy of %s after line %d: %q", round, want, at, said)

		if out, err := obcd(want, "unlock", "staging").CombinedOutput(); err != nil && !strings.Contains(string(out), "not locked") {
			t.Fatalf("round %d: unlock: %v\n%s", round, err, out)
		}
		if out, err := obcd(want, "deploy", "staging", "--skip-checks", "--watch", "10s", "--keep", "20").CombinedOutput(); err != nil {
			t.Fatalf("round %d: the deploy after the kill did not converge: %v\n%s", round, err, out)
		}
		if got := e.served(); got != want {
			t.Errorf("round %d: serves %q after converging, want %s", round, got, want)
		}
		leftover, err := exec.Command("docker", "ps", "-a", "--filter", "label="+engine.LabelProject+"="+e.project,
			"--filter", "label="+engine.LabelOneOff+"=True", "--format", "{{.Names}} {{.Status}}").CombinedOutput()
		if err != nil {
			t.Fatalf("docker ps: %v\n%s", err, leftover)
		}
		if s := strings.TrimSpace(string(leftover)); s != "" {
			t.Errorf("round %d: one-off containers left on the engine:\n%s", round, s)
		}
	}
	ok, failed := stop()
	t.Logf("load during five killed deploys and their recoveries: %d ok, %d failed", ok, failed)
	if ok < 100 {
		t.Errorf("only %d requests succeeded under load; want a steady stream", ok)
	}
	if failed != 0 {
		t.Errorf("%d of %d requests failed across five killed deploys; want 0", failed, ok+failed)
	}

	// --keep 20 keeps every record of the run; retention would prune them.
	history, err := e.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, r := range history {
		outcomes = append(outcomes, string(r.Outcome))
	}
	want5 := "succeeded succeeded" + strings.Repeat(" interrupted succeeded", 5)
	if got := strings.Join(outcomes, " "); got != want5 {
		t.Errorf("history outcomes = %s\nwant %s", got, want5)
	}
}

// killDeployAtLine starts deploy, kills it with SIGKILL once it has
// printed line n of its progress, and returns that line. A deploy that
// ends first fails the test: the kill must land inside the run.
func killDeployAtLine(t *testing.T, deploy *exec.Cmd, n int) string {
	t.Helper()
	stderr, err := deploy.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	deploy.Stdout = deploy.Stderr
	if err := deploy.Start(); err != nil {
		t.Fatal(err)
	}
	scanner := bufio.NewScanner(stderr)
	var seen []string
	for scanner.Scan() {
		seen = append(seen, scanner.Text())
		if len(seen) == n {
			if err := deploy.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = deploy.Wait()
			return scanner.Text()
		}
	}
	_ = deploy.Wait()
	t.Fatalf("the deploy ended after %d lines, before line %d where it was to be killed:\n%s", len(seen), n, strings.Join(seen, "\n"))
	return ""
}
