package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/internal/atomicfile"
	"github.com/obcd/obcd/orchestrator/probe"
	"github.com/obcd/obcd/orchestrator/telemetry"
	"github.com/obcd/obcd/templates"
)

type verifyOptions struct {
	*globalOptions
	probeOptions
	json  bool
	junit string
	wait  time.Duration
}

func newVerifyCommand(global *globalOptions) *cobra.Command {
	opts := &verifyOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:     "verify ENV",
		Short:   "Prove that a running environment works, with probes",
		Long:    verifyLong,
		Example: verifyExample,
		Args:    exactEnv,
		RunE:    func(_ *cobra.Command, args []string) error { return runVerify(opts, args[0]) },
	}
	addProbeFlags(cmd, &opts.probeOptions)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print results as JSON on stdout")
	cmd.Flags().StringVar(&opts.junit, "junit", "", "also write results as a JUnit XML report to FILE")
	cmd.Flags().DurationVar(&opts.wait, "wait", 0, "retry failing probes until they pass or D has passed, as a deploy's verification does (default: report a definite failure at once)")
	return cmd
}

func addProbeFlags(cmd *cobra.Command, po *probeOptions) {
	cmd.Flags().DurationVar(&po.timeout, "timeout", 60*time.Second, "deadline for all probes together")
	cmd.Flags().StringSliceVar(&po.only, "only", nil, "run only these probes (comma-separated names)")
	cmd.Flags().BoolVar(&po.noDocker, "no-docker", false, "skip the container probe")
	cmd.Flags().StringVar(&po.pushgateway, "pushgateway", "", "push obcd's metrics to this Prometheus Pushgateway afterwards")
}

func runVerify(opts *verifyOptions, env string) error {
	environment, plan, err := opts.environmentProbes(env, &opts.probeOptions)
	if err != nil {
		return err
	}
	defer environment.close()
	stack := environment.stack
	var results []probe.Result
	if opts.wait > 0 {
		results = opts.runProbes(plan, opts.wait, false)
	} else {
		results = opts.runProbes(plan, opts.timeout, true)
	}
	passed := probe.AllCriticalPassed(results)
	if opts.json {
		err = printResultsJSON(opts.stdout, stack, plan, results, passed)
	} else {
		err = printResults(opts.stdout, plan, results, passed)
	}
	if err != nil {
		return err
	}
	if opts.junit != "" {
		if err := writeJUnit(opts.junit, stack, results); err != nil {
			return err
		}
	}
	if err := opts.push(stack, results); err != nil {
		return err
	}
	if !passed {
		return reportedError{fmt.Errorf("verification failed"), ExitFailure}
	}
	return nil
}

// push sends obcd's metrics to the Pushgateway, when one is given.
func (po *probeOptions) push(stack *stackhcl.Stack, results []probe.Result) error {
	if po.pushgateway == "" {
		return nil
	}
	m := telemetry.New(stack.Name, stack.Environment, version)
	m.ObserveResults(results)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.Push(ctx, po.pushgateway, templates.ProjectName(stack))
}

func printResults(w io.Writer, plan probe.Plan, results []probe.Result, passed bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROBE\tTARGET\tRESULT\tLATENCY\tMESSAGE")
	for _, r := range results {
		result := strings.ToUpper(string(r.Status))
		if !r.Critical {
			result += " (optional)"
		}
		latency := "-"
		if r.Attempts > 0 {
			latency = r.Latency.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Target, result, latency, oneLine(r.Message))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range plan.Skipped {
		fmt.Fprintf(w, "skipped %s\n", s)
	}
	failed := probe.Failures(results)
	verdict := "PASSED"
	if !passed {
		verdict = "FAILED"
	}
	where := ""
	if n := plan.InNetwork(); n > 0 {
		where = fmt.Sprintf(" (%d from inside the network, through the agent)", n)
	}
	_, err := fmt.Fprintf(w, "\n%d probes%s, %d did not pass. Verification %s.\n", len(results), where, len(failed), verdict)
	return err
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

func printResultsJSON(w io.Writer, stack *stackhcl.Stack, plan probe.Plan, results []probe.Result, passed bool) error {
	type jsonResult struct {
		probe.Result
		LatencyMS float64 `json:"latency_ms"`
	}
	out := struct {
		Stack       string       `json:"stack"`
		Environment string       `json:"environment"`
		Passed      bool         `json:"passed"`
		Results     []jsonResult `json:"results"`
		Skipped     []string     `json:"skipped"`
	}{Stack: stack.Name, Environment: stack.Environment, Passed: passed, Results: []jsonResult{}, Skipped: plan.Skipped}
	if out.Skipped == nil {
		out.Skipped = []string{}
	}
	for _, r := range results {
		out.Results = append(out.Results, jsonResult{r, float64(r.Latency.Microseconds()) / 1000})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// writeJUnit writes one testcase per probe; failed and pending probes
// carry a failure with the probe's message.
func writeJUnit(path string, stack *stackhcl.Stack, results []probe.Result) error {
	type failure struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
	type testcase struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Time      string   `xml:"time,attr"`
		Failure   *failure `xml:"failure,omitempty"`
	}
	type suite struct {
		XMLName  xml.Name   `xml:"testsuite"`
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Cases    []testcase `xml:"testcase"`
	}
	s := suite{Name: "obcd verify " + stack.Name + " " + stack.Environment, Tests: len(results)}
	for _, r := range results {
		tc := testcase{Name: r.Name, Classname: "obcd." + r.Kind, Time: fmt.Sprintf("%.3f", r.Latency.Seconds())}
		if !r.Passed() {
			s.Failures++
			tc.Failure = &failure{Message: string(r.Status) + ": " + oneLine(r.Message), Text: r.Target + "\n" + r.Message}
		}
		s.Cases = append(s.Cases, tc)
	}
	data, err := xml.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode junit: %w", err)
	}
	return atomicfile.WriteFile(path, append([]byte(xml.Header), append(data, '\n')...), 0o644)
}

const verifyLong = `Verify runs every probe of the environment at once under one deadline and
prints a table: probe, target, result, latency, message. Probes come from
the stack: each service gets its natural ones (web /health/ and /ready/,
/metrics, HTTPS with HSTS through nginx, PgBouncer logins for every user,
migrations, replication, a Redis round trip, Prometheus targets and rules,
Alertmanager, Grafana, Celery workers, container health). probe blocks
in the stack tune, add or turn them off.

Each service is probed from inside the environment's network, by its name
and port there, through a short-lived agent container of obcd's own
binary: nothing but nginx needs publishing, and it works the same on an
ssh:// engine. A service that declares address is probed at that address
from here instead; nginx at the environment's public_url. The agent is
removed when verify ends (see the README's "The in-network agent").

A failure says what was expected and what came back. A probe with no
result yet never counts as a pass.

A probe that fails for a definite reason (the connection is refused, the
name does not resolve, no container runs, the answer is not the expected
one) is reported at once, so verify against an environment that is down
answers in seconds. Only a probe with no answer yet is retried, until
--timeout. --wait D retries every failing probe until it passes or D has
passed, as a deploy's verification does: for an environment still
starting.

Exit codes: 0 every critical probe passed; 1 a critical probe failed or
has no result; 64 usage error.`

const verifyExample = `  obcd verify staging
  obcd verify staging --only web-ready,redis-roundtrip --json
  obcd verify production --junit verify.xml --timeout 2m
  obcd verify staging --wait 2m     # an environment that is still starting`
