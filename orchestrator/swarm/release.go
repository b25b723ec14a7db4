package swarm

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/obcd/obcd/orchestrator/engine"
)

// Step is what a release's apply did to one service.
type Step struct {
	Service string // the stack's service name
	Change  Change
	Cause   string // why it changed (Cause); "" when unchanged
}

// Waves orders specs for an apply: each wave holds the services whose
// dependencies (DependsOn) are all in earlier waves, in the order given.
// Swarm ignores depends_on; obcd keeps it, so the database is healthy
// before migrate runs, and migrate is done before web changes. A cycle or
// a dependency on no service is an error.
func Waves(specs []engine.ServiceSpec) ([][]engine.ServiceSpec, error) {
	names := map[string]bool{}
	for _, s := range specs {
		names[s.Name] = true
	}
	done := map[string]bool{}
	var waves [][]engine.ServiceSpec
	for len(done) < len(specs) {
		var wave []engine.ServiceSpec
		for _, s := range specs {
			if done[s.Name] {
				continue
			}
			ready := true
			for _, dep := range s.DependsOn {
				if !names[dep] {
					return nil, fmt.Errorf("service %s depends on %s, which the release does not run", s.Name, dep)
				}
				ready = ready && done[dep]
			}
			if ready {
				wave = append(wave, s)
			}
		}
		if len(wave) == 0 {
			var left []string
			for _, s := range specs {
				if !done[s.Name] {
					left = append(left, s.Name)
				}
			}
			return nil, fmt.Errorf("services %v depend on each other in a cycle", left)
		}
		for _, s := range wave {
			done[s.Name] = true
		}
		waves = append(waves, wave)
	}
	return waves, nil
}

// Apply converges the project to one release's specs: the network, then
// wave by wave (Waves) each service's secrets and configs, the service
// itself, and a wait until it converged, before the next wave starts. It
// stops at the first service that does not converge (an update Swarm
// paused, a failed job, the timeout) and returns what it did so far,
// with the Swarm objects of the whole release. The same call with a
// previous release's specs is a release-level rollback: every service
// returns to that release's spec, the unchanged ones untouched.
func (e *Engine) Apply(ctx context.Context, specs []engine.ServiceSpec, opts Options, timeout time.Duration, progress func(Step)) ([]Service, []Step, error) {
	if progress == nil {
		progress = func(Step) {}
	}
	waves, err := Waves(specs)
	if err != nil {
		return nil, nil, err
	}
	var services []Service
	byName := map[string]*Service{}
	for _, spec := range specs {
		svc, err := Translate(spec, opts)
		if err != nil {
			return nil, nil, err
		}
		services = append(services, svc)
	}
	for i := range services {
		byName[specs[i].Name] = &services[i]
	}
	if len(specs) > 0 {
		if _, err := e.EnsureNetwork(ctx, specs[0].Project); err != nil {
			return services, nil, err
		}
	}
	var steps []Step
	for _, wave := range waves {
		var changed []string
		for _, spec := range wave {
			svc := byName[spec.Name]
			if err := e.EnsureObjects(ctx, svc); err != nil {
				return services, steps, err
			}
			change, cause, err := e.Converge(ctx, *svc)
			if err != nil {
				return services, steps, err
			}
			step := Step{Service: spec.Name, Change: change, Cause: cause}
			steps = append(steps, step)
			progress(step)
			changed = append(changed, svc.Spec.Name)
		}
		// A wave's services converge together; the next wave waits for
		// all of them.
		for _, name := range changed {
			if err := e.WaitConverged(ctx, name, timeout); err != nil {
				return services, steps, err
			}
		}
	}
	return services, steps, nil
}

// Changed says whether any step changed a service.
func Changed(steps []Step) bool {
	return slices.ContainsFunc(steps, func(s Step) bool { return s.Change != Unchanged })
}
