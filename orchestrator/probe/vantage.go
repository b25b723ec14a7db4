package probe

import (
	"context"
	"fmt"
	"sync"
)

// vantage.go runs a plan from two places at once: the probes that reach
// a declared address run here, and the ones that reach a service by its
// name on the environment's network run through the plan's Vantage (the
// in-network agent).

// Config is a probe's check as data, so that it can be run elsewhere:
// the in-network agent receives it and builds the checker. Exactly one
// field is set. It holds the passwords the check logs in with, so it
// travels only on the agent's standard input, never in a command line,
// an environment or a file.
type Config struct {
	HTTP         *HTTPConfig         `json:"http,omitempty"`
	Metrics      *MetricsConfig      `json:"metrics,omitempty"`
	Postgres     *PostgresConfig     `json:"postgres,omitempty"`
	Redis        *RedisConfig        `json:"redis,omitempty"`
	Celery       *CeleryConfig       `json:"celery,omitempty"`
	Prometheus   *PrometheusConfig   `json:"prometheus,omitempty"`
	Alertmanager *AlertmanagerConfig `json:"alertmanager,omitempty"`
	Grafana      *GrafanaConfig      `json:"grafana,omitempty"`
}

// Checker builds the check; name is the probe's, for the error when the
// config is empty.
func (c *Config) Checker(name string) Checker {
	switch {
	case c == nil:
	case c.HTTP != nil:
		return HTTP(*c.HTTP)
	case c.Metrics != nil:
		return Metrics(*c.Metrics)
	case c.Postgres != nil:
		return Postgres(*c.Postgres)
	case c.Redis != nil:
		return Redis(*c.Redis)
	case c.Celery != nil:
		return Celery(*c.Celery)
	case c.Prometheus != nil:
		return Prometheus(*c.Prometheus)
	case c.Alertmanager != nil:
		return Alertmanager(*c.Alertmanager)
	case c.Grafana != nil:
		return Grafana(*c.Grafana)
	}
	return CheckFunc(func(context.Context) Attempt { return Fatalf("probe %q has nothing to check", name) })
}

// Vantage runs probes from inside the environment's network. Run returns
// a result for every spec, in their order, and calls notify (from one
// goroutine at a time) as each has its verdict. A vantage that cannot
// run at all reports every spec failed, saying why.
type Vantage interface {
	Run(ctx context.Context, specs []Spec, onDemand bool, notify func(Result)) []Result
}

// Run runs the plan as a deploy's verification does: each probe retries
// until it passes or ctx ends.
func (p Plan) Run(ctx context.Context, notify func(Result)) []Result {
	return p.run(ctx, false, notify)
}

// RunOnDemand runs the plan as obcd verify does (RunOnDemand): a
// definite failure is reported at once.
func (p Plan) RunOnDemand(ctx context.Context, notify func(Result)) []Result {
	return p.run(ctx, true, notify)
}

// With is the plan with only specs (a subset of its own).
func (p Plan) With(specs []Spec) Plan {
	p.Specs = specs
	return p
}

// InNetwork counts the specs that run through the vantage.
func (p Plan) InNetwork() int {
	n := 0
	for _, s := range p.Specs {
		if s.InNetwork {
			n++
		}
	}
	return n
}

func (p Plan) run(ctx context.Context, onDemand bool, notify func(Result)) []Result {
	var local, remote []Spec
	var localAt, remoteAt []int
	for i, s := range p.Specs {
		if s.InNetwork {
			remote, remoteAt = append(remote, s), append(remoteAt, i)
		} else {
			local, localAt = append(local, s), append(localAt, i)
		}
	}
	var mu sync.Mutex
	serialized := func(r Result) {
		if notify != nil {
			mu.Lock()
			defer mu.Unlock()
			notify(r)
		}
	}
	results := make([]Result, len(p.Specs))
	var wg sync.WaitGroup
	if len(remote) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got []Result
			if p.Vantage != nil {
				got = p.Vantage.Run(ctx, remote, onDemand, serialized)
			}
			for j, s := range remote {
				r := Unrun(s, "no in-network agent ran it")
				if j < len(got) {
					r = got[j]
				} else {
					serialized(r)
				}
				results[remoteAt[j]] = r
			}
		}()
	}
	for j, r := range runAll(ctx, local, serialized, onDemand) {
		results[localAt[j]] = r
	}
	wg.Wait()
	return results
}

// Unrun is the result of a probe that could not be run: a failure,
// definite, saying why.
func Unrun(s Spec, format string, args ...any) Result {
	return Result{Name: s.Name, Kind: s.Kind, Target: s.Target, Component: s.Component, Critical: s.Critical,
		Status: StatusFail, Message: fmt.Sprintf(format, args...), InNetwork: s.InNetwork}
}
