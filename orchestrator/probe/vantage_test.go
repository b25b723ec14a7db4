package probe

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/templates"
)

// fakeVantage runs nothing: it answers every spec it is given with a
// pass, saying it did, and records what it got.
type fakeVantage struct {
	got      []Spec
	onDemand bool
}

func (f *fakeVantage) Run(_ context.Context, specs []Spec, onDemand bool, notify func(Result)) []Result {
	f.got, f.onDemand = specs, onDemand
	out := make([]Result, len(specs))
	for i, s := range specs {
		out[i] = Result{Name: s.Name, Component: s.Component, Critical: s.Critical, Status: StatusPass, Message: "through the fake", InNetwork: true}
		notify(out[i])
	}
	return out
}

// TestBuild_OBCMSWithNoAddressProbesEveryServiceInsideTheNetwork: the
// OBCMS stack declares no address; with a vantage, every probe kind is
// built against the service's name and port on the network, nothing is
// skipped, and only the public site's probes (and the containers') run
// from here.
func TestBuild_OBCMSWithNoAddressProbesEveryServiceInsideTheNetwork(t *testing.T) {
	stack := loadStack(t, "production") // the environment with streaming replicas
	plan, err := Build(BuildOptions{Stack: stack, Vantage: &fakeVantage{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, note := range plan.Skipped {
		if strings.Contains(note, "declares no address") {
			t.Errorf("skipped with a vantage: %s", note)
		}
	}
	targets := map[string]string{}
	for _, s := range plan.Specs {
		targets[s.Name] = s.Target
		here := strings.HasPrefix(s.Name, "site-") || s.Kind == "container"
		if s.InNetwork == here {
			t.Errorf("probe %s (%s): in network %v", s.Name, s.Target, s.InNetwork)
		}
		if s.InNetwork && s.Config == nil {
			t.Errorf("probe %s runs through the vantage with no config to send", s.Name)
		}
	}
	for name, target := range map[string]string{
		"web-health":                 "http://web:8000/health/",
		"web-metrics":                "http://web:8000/metrics",
		"pgbouncer-login-obcms_user": "pgbouncer:6432",
		"db-migrations":              "pgbouncer:6432",
		"db-replication":             "db:5432",
		"redis-roundtrip":            "redis:6379",
		"prometheus-targets":         "http://prometheus:9090",
		"prometheus-alertmanagers":   "http://prometheus:9090",
		"alertmanager-ready":         "http://alertmanager:9093",
		"grafana":                    "http://grafana:3000",
	} {
		if targets[name] != target {
			t.Errorf("probe %s targets %q, want %q", name, targets[name], target)
		}
	}
	if _, ok := targets["celery-workers"]; !ok {
		t.Error("no celery-workers probe")
	}
}

// TestBuild_WithoutAVantageTheReasonIsShown: where the agent cannot run,
// services without an address fall back to being skipped, each saying
// why the agent cannot probe it, and how to probe it from outside.
func TestBuild_WithoutAVantageTheReasonIsShown(t *testing.T) {
	stack := loadStack(t, "staging")
	plan, err := Build(BuildOptions{Stack: stack, NoVantage: "the Docker engine runs linux/arm64 and this obcd is built for linux/amd64"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range plan.Specs {
		if s.InNetwork {
			t.Errorf("probe %s is in the network with no vantage", s.Name)
		}
	}
	skipped := strings.Join(plan.Skipped, "\n")
	for _, want := range []string{`redis probe: service "redis" declares no address`, "linux/arm64", `set address = "host:port"`} {
		if !strings.Contains(skipped, want) {
			t.Errorf("skipped notes lack %q:\n%s", want, skipped)
		}
	}
}

// TestBuild_AnAddressIsProbedFromHere: address is the override for
// probing from outside; a probe block's url too.
func TestBuild_AnAddressIsProbedFromHere(t *testing.T) {
	stack := loadStack(t, "staging")
	stack.Service("redis").Address = "10.0.0.5:6379"
	stack.Probes = nil
	plan, err := Build(BuildOptions{Stack: stack, Vantage: &fakeVantage{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range plan.Specs {
		if s.Name == "redis-roundtrip" && (s.InNetwork || s.Target != "10.0.0.5:6379") {
			t.Errorf("redis-roundtrip: in network %v, target %s; want from here at the declared address", s.InNetwork, s.Target)
		}
	}
}

// TestPlanRun_SplitsBetweenHereAndTheVantage: the in-network specs go to
// the vantage, the others run here, and the results keep the plan's
// order; with no vantage, the in-network ones fail saying so.
func TestPlanRun_SplitsBetweenHereAndTheVantage(t *testing.T) {
	here := func(name string) Spec {
		return Spec{Name: name, Critical: true, Check: CheckFunc(func(context.Context) Attempt { return Passed("from here") })}
	}
	remote := func(name string) Spec {
		return Spec{Name: name, Critical: true, InNetwork: true, Config: &Config{Redis: &RedisConfig{Addr: "redis:6379"}},
			Check: CheckFunc(func(context.Context) Attempt { return Fatalf("ran here, not through the vantage") })}
	}
	specs := []Spec{remote("a"), here("b"), remote("c"), here("d")}
	vantage := &fakeVantage{}
	var notified []string
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	results := Plan{Specs: specs, Vantage: vantage}.RunOnDemand(ctx, func(r Result) { notified = append(notified, r.Name) })
	if len(vantage.got) != 2 || vantage.got[0].Name != "a" || vantage.got[1].Name != "c" || !vantage.onDemand {
		t.Fatalf("the vantage got %+v (on demand %v), want a and c on demand", vantage.got, vantage.onDemand)
	}
	for i, want := range []string{"a", "b", "c", "d"} {
		if results[i].Name != want || results[i].Status != StatusPass {
			t.Errorf("result %d = %s %s (%s), want %s pass", i, results[i].Name, results[i].Status, results[i].Message, want)
		}
	}
	if wantIn := []bool{true, false, true, false}; results[0].InNetwork != wantIn[0] || results[1].InNetwork != wantIn[1] {
		t.Errorf("in_network of results = %v, %v; want %v", results[0].InNetwork, results[1].InNetwork, wantIn)
	}
	if len(notified) != 4 {
		t.Errorf("notified %v, want all four", notified)
	}

	results = Plan{Specs: specs}.Run(ctx, nil)
	if results[0].Status != StatusFail || !strings.Contains(results[0].Message, "no in-network agent") || results[1].Status != StatusPass {
		t.Errorf("with no vantage: %+v", results[:2])
	}
}

// TestBuild_FromARecordedStackModel: a rollback proves the release it
// returns to with the probes of the stack that release recorded; built
// from that model, they are the probes the stack itself gives.
func TestBuild_FromARecordedStackModel(t *testing.T) {
	for _, env := range []string{"staging", "production"} {
		stack := loadStack(t, env)
		model, err := templates.StackModel(stack)
		if err != nil {
			t.Fatal(err)
		}
		recorded, ok, err := templates.ReadStackModel([]templates.Artifact{model})
		if err != nil || !ok {
			t.Fatalf("%s: ReadStackModel = %v, %v", env, ok, err)
		}
		specsJSON := func(s *stackhcl.Stack) string {
			plan, err := Build(BuildOptions{Stack: s, Vantage: &fakeVantage{}})
			if err != nil {
				t.Fatal(err)
			}
			data, err := json.Marshal(struct {
				Specs   []Spec
				Skipped []string
			}{plan.Specs, plan.Skipped})
			if err != nil {
				t.Fatal(err)
			}
			return string(data)
		}
		if want, got := specsJSON(stack), specsJSON(recorded); got != want {
			t.Errorf("%s: probes from the recorded model differ:\n got %s\nwant %s", env, got, want)
		}
	}
}
