package probe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	stackhcl "github.com/obcd/obcd/hcl"
)

// Components of the status report. The first five are the monitoring
// seed's; obcd adds the database, the web tier and the alerting stack.
const (
	ComponentPrometheus   = "prometheus"
	ComponentSentry       = "sentry"
	ComponentLogging      = "logging"
	ComponentCelery       = "celery"
	ComponentRedis        = "redis"
	ComponentDatabase     = "database"
	ComponentWeb          = "web"
	ComponentAlertmanager = "alertmanager"
	ComponentGrafana      = "grafana"
)

// componentSpec says whether a component is critical and how to describe
// it; the seed's critical components are Prometheus metrics, logging and
// Redis, its optional ones Sentry and Celery.
type componentSpec struct {
	name     string
	critical bool
	healthy  string // message when healthy
}

var componentSpecs = []componentSpec{
	{ComponentPrometheus, true, "Metrics are being collected"},
	{ComponentSentry, false, "Error tracking is configured"},
	{ComponentLogging, true, "Logging is configured with PHI scrubbing"},
	{ComponentCelery, false, "Workers are running"},
	{ComponentRedis, true, "Cache and session storage working"},
	{ComponentDatabase, true, "Database reachable through the pool"},
	{ComponentWeb, true, "The site answers"},
	{ComponentAlertmanager, false, "Alertmanager is ready with its configuration"},
	{ComponentGrafana, false, "Grafana is up with its dashboards"},
}

// Overall statuses.
const (
	Healthy   = "healthy"   // every critical component works, optional ones too
	Degraded  = "degraded"  // critical components work, an optional one does not
	Unhealthy = "unhealthy" // a critical component does not work
)

// Component is one entry of the status report.
type Component struct {
	Healthy bool   `json:"healthy"`
	Message string `json:"message"`
}

// Report is the status of an environment, in the shape of the monitoring
// seed's /api/monitoring/status.
type Report struct {
	OverallStatus string
	Components    map[string]Component
	order         []string
}

// BuildStatus turns probe results, and what the stack file says about
// logging and Sentry (which no probe can see), into a status report.
func BuildStatus(stack *stackhcl.Stack, results []Result) Report {
	r := Report{Components: map[string]Component{}}
	byComponent := map[string][]Result{}
	for _, res := range results {
		byComponent[res.Component] = append(byComponent[res.Component], res)
	}
	critical, optional := true, true
	for _, spec := range componentSpecs {
		c := componentStatus(spec, stack, byComponent[spec.name])
		r.Components[spec.name] = c
		r.order = append(r.order, spec.name)
		switch {
		case c.Healthy:
		case spec.critical:
			critical = false
		default:
			optional = false
		}
	}
	switch {
	case !critical:
		r.OverallStatus = Unhealthy
	case !optional:
		r.OverallStatus = Degraded
	default:
		r.OverallStatus = Healthy
	}
	return r
}

func componentStatus(spec componentSpec, stack *stackhcl.Stack, results []Result) Component {
	switch spec.name {
	case ComponentLogging:
		return loggingStatus(stack)
	case ComponentSentry:
		return sentryStatus(stack)
	}
	if len(results) == 0 {
		if unused := unusedComponent(spec.name, stack); unused != "" {
			return Component{Healthy: !spec.critical, Message: unused}
		}
		return Component{Healthy: false, Message: "no probe: declare an address for the service so obcd can reach it"}
	}
	var failed []string
	for _, res := range results {
		if !res.Passed() {
			failed = append(failed, fmt.Sprintf("%s: %s", res.Name, res.Message))
		}
	}
	if len(failed) > 0 {
		return Component{Healthy: false, Message: strings.Join(failed, "; ")}
	}
	return Component{Healthy: true, Message: spec.healthy}
}

// unusedComponent explains a component the stack does not have at all.
func unusedComponent(name string, stack *stackhcl.Stack) string {
	kinds := map[string][]stackhcl.Kind{
		ComponentCelery:       {stackhcl.KindCeleryWorker, stackhcl.KindCeleryBeat},
		ComponentAlertmanager: {stackhcl.KindAlertmanager},
		ComponentGrafana:      {stackhcl.KindGrafana},
	}[name]
	for _, k := range kinds {
		if stack.First(k) != nil {
			return ""
		}
	}
	if len(kinds) == 0 {
		return ""
	}
	return "disabled: the stack declares no " + name
}

func loggingStatus(stack *stackhcl.Stack) Component {
	l := stack.Django.Logging
	switch {
	case !l.Configured:
		return Component{false, "Logging is not configured (monitoring.E005)"}
	case l.ScrubFilter == "":
		return Component{false, "Logging has no PHI scrubbing filter (monitoring.E006)"}
	case l.Output != "stdout" && l.Rotation == "":
		return Component{false, "Logging writes unrotated files (monitoring.W006)"}
	}
	return Component{true, "Logging is configured with PHI scrubbing"}
}

func sentryStatus(stack *stackhcl.Stack) Component {
	s := stack.Django.Sentry
	switch {
	case !s.Configured || s.DSN == "":
		return Component{false, "Sentry is not configured"}
	case !s.SDK:
		return Component{false, "Sentry DSN set but the SDK is not installed"}
	}
	return Component{true, "Error tracking is configured"}
}

// HTTPStatus is the HTTP status the status endpoint answers with: 200
// for healthy or degraded, 503 for unhealthy.
func (r Report) HTTPStatus() int {
	if r.OverallStatus == Unhealthy {
		return 503
	}
	return 200
}

// MarshalJSON writes the seed's shape: overall_status, one boolean per
// component, then "components" with healthy and message, in a fixed order.
func (r Report) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{")
	writeKV(&b, "overall_status", r.OverallStatus)
	for _, name := range r.order {
		b.WriteString(",")
		writeKV(&b, name, r.Components[name].Healthy)
	}
	b.WriteString(`,"components":{`)
	for i, name := range r.order {
		if i > 0 {
			b.WriteString(",")
		}
		writeKV(&b, name, r.Components[name])
	}
	b.WriteString("}}")
	return b.Bytes(), nil
}

func writeKV(b *bytes.Buffer, key string, value any) {
	k, _ := json.Marshal(key)
	v, _ := json.Marshal(value)
	b.Write(k)
	b.WriteString(":")
	b.Write(v)
}

// Names returns the component names in report order.
func (r Report) Names() []string { return append([]string(nil), r.order...) }

// ComponentSwarm is the replicas of an environment on a swarm: every
// service's tasks running where Swarm put them.
const ComponentSwarm = "swarm"

// AddOptional adds an optional component, after the others: one that
// does not work makes a healthy report degraded.
func (r *Report) AddOptional(name string, c Component) {
	r.Components[name] = c
	r.order = append(r.order, name)
	if !c.Healthy && r.OverallStatus == Healthy {
		r.OverallStatus = Degraded
	}
}
