package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/templates"
)

// ErrWatch: the release failed inside its watch window, after the switch.
var ErrWatch = errors.New("watch")

// Watch timing.
const (
	// watchProbeEvery is how often the critical probes run in the window.
	watchProbeEvery = 5 * time.Second
	// watchProbeRound bounds one round of probes.
	watchProbeRound = 10 * time.Second
	// watchReportEvery is how often the window says how long is left.
	watchReportEvery = 10 * time.Second
)

// watch keeps watching the release for the watch window once the old
// replicas are gone: any exit or restart of one of the project's
// containers, any turn to unhealthy (both from the engine's event stream,
// since the switch) and any failing critical probe fails the release.
// It returns when the window has passed, or at the first failure.
func (x *executor) watch(ctx context.Context, since time.Time) error {
	window := x.d.Watch
	if window <= 0 {
		return nil
	}
	plan, err := x.d.probePlan(ctx)
	if err != nil {
		return errors.Join(err, ErrWatch)
	}
	x.d.emit("watch", "", "", "watching release %s for %s: container exits, unhealthy containers and the critical probes of the release (the monitoring plane's were proven in the verification window)",
		x.planned.Release.ID, window)
	wctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	failures, streamErrs := x.d.Engine.WatchFailures(wctx, templates.ProjectName(x.d.Stack), since)
	probes, report := time.NewTicker(watchProbeEvery), time.NewTicker(watchReportEvery)
	defer probes.Stop()
	defer report.Stop()
	end := time.Now().Add(window)
	for {
		select {
		case failure, ok := <-failures:
			if ok {
				return errors.Join(fmt.Errorf("%s, %s into the watch window", failure, failure.Time.Sub(since).Round(time.Second)), ErrWatch)
			}
			failures = nil
		case err := <-streamErrs:
			if err != nil {
				return errors.Join(fmt.Errorf("cannot watch the release: %w", err), ErrWatch)
			}
			streamErrs = nil
		case <-probes.C:
			if err := watchRound(wctx, plan); err != nil {
				return errors.Join(err, ErrWatch)
			}
		case <-report.C:
			x.d.emit("watch", "", "", "%s left in the watch window", time.Until(end).Round(time.Second))
		case <-wctx.Done():
			if err := ctx.Err(); err != nil {
				return errors.Join(err, ErrWatch)
			}
			x.d.emit("watch", "", "", "release %s held for %s", x.planned.Release.ID, window)
			return nil
		}
	}
}

// watchRound runs the critical probes once; a probe that fails for good
// fails the release. One still without a verdict when the round ends
// (the window closing on it) is not a failure: the next round asks again.
// The monitoring plane's probes are left to the verification window:
// Prometheus finds the web replicas by DNS, refreshed every 30 s, so for
// a while after every roll it sees only the replicas that left, all down,
// and that says nothing about the release.
func watchRound(ctx context.Context, plan probe.Plan) error {
	rctx, cancel := context.WithTimeout(ctx, watchProbeRound)
	defer cancel()
	var critical []probe.Spec
	for _, spec := range plan.Specs {
		if spec.Critical && !monitoringPlane[spec.Component] {
			critical = append(critical, spec)
		}
	}
	for _, result := range plan.With(critical).Run(rctx, nil) {
		if result.Status == probe.StatusFail && ctx.Err() == nil {
			return fmt.Errorf("probe %s failed in the watch window: %s", result.Name, result.Message)
		}
	}
	return nil
}

// monitoringPlane are the components whose probes judge the monitoring,
// not the release: the watch window leaves them out.
var monitoringPlane = map[string]bool{probe.ComponentPrometheus: true, probe.ComponentAlertmanager: true, probe.ComponentGrafana: true}
