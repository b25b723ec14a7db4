package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/checks"
)

type validateOptions struct {
	*globalOptions
	strict  bool
	deploy  bool
	json    bool
	list    bool
	timeout time.Duration
}

func newValidateCommand(global *globalOptions) *cobra.Command {
	opts := &validateOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:     "validate ENV",
		Short:   "Check that an environment is ready to deploy",
		Long:    validateLong,
		Example: validateExample,
		Args: func(cmd *cobra.Command, args []string) error {
			if opts.list {
				return nil
			}
			return exactEnv(cmd, args)
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if opts.list {
				return listCatalog(opts.stdout, opts.json)
			}
			return runValidate(opts, args[0])
		},
	}
	cmd.Flags().BoolVar(&opts.strict, "strict", false, "fail (exit 2) on warnings too")
	cmd.Flags().BoolVar(&opts.deploy, "deploy", false, "add live checks against the environment's target")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print findings as JSON on stdout")
	cmd.Flags().BoolVar(&opts.list, "list", false, "print the rule catalog and exit")
	cmd.Flags().DurationVar(&opts.timeout, "timeout", 5*time.Second, "timeout of each live check")
	return cmd
}

// evaluation is the outcome of running the checks once.
type evaluation struct {
	stack    *stackhcl.Stack
	findings []checks.Finding
	live     *checks.LiveReport
}

// evaluate loads the stack and runs the static rules, and the live ones
// when asked.
func (o *globalOptions) evaluate(env string, live bool, timeout time.Duration) (*evaluation, error) {
	environment, err := o.open(env)
	if err != nil {
		return nil, err
	}
	stack, store := environment.stack, environment.secrets
	ev := &evaluation{stack: stack, findings: checks.Run(&checks.Input{Stack: stack, Secrets: store})}
	if live {
		ctx, cancel := context.WithTimeout(context.Background(), 4*timeout+10*time.Second)
		defer cancel()
		report := checks.RunLive(ctx, checks.LiveOptions{Stack: stack, Secrets: store, Timeout: timeout})
		ev.live = &report
		ev.findings = append(ev.findings, report.Findings...)
		checks.Sort(ev.findings)
	}
	return ev, nil
}

func runValidate(opts *validateOptions, env string) error {
	ev, err := opts.evaluate(env, opts.deploy, opts.timeout)
	var invalid invalidStack
	if err != nil && opts.json && errors.As(err, &invalid) {
		if perr := printInvalidStackJSON(opts.stdout, env, opts.strict, invalid.diags); perr != nil {
			return perr
		}
	}
	if err != nil {
		return err
	}
	code := checks.ExitCode(ev.findings, opts.strict)
	if opts.json {
		err = printFindingsJSON(opts.stdout, ev, opts.strict, code)
	} else {
		err = printFindings(opts.stdout, ev, code)
	}
	if err != nil {
		return err
	}
	if code != ExitOK {
		return reportedError{fmt.Errorf("validation failed"), code}
	}
	return nil
}

var severityHeadings = []struct {
	severity checks.Severity
	title    string
	mark     string
}{
	{checks.SeverityError, "Errors", "✗"},
	{checks.SeverityWarning, "Warnings", "!"},
	{checks.SeverityInfo, "Info", "i"},
}

func printFindings(w io.Writer, ev *evaluation, code int) error {
	printTarget(w, ev)
	for _, h := range severityHeadings {
		printGroup(w, h.title, h.mark, slices.DeleteFunc(slices.Clone(ev.findings), func(f checks.Finding) bool {
			return f.Rule.Severity != h.severity || f.Waived()
		}))
	}
	printWaived(w, slices.DeleteFunc(slices.Clone(ev.findings), func(f checks.Finding) bool { return !f.Waived() }))
	return printSummary(w, ev, code)
}

// printTarget heads the report: the environment, and the target when
// live checks ran.
func printTarget(w io.Writer, ev *evaluation) {
	fmt.Fprintf(w, "obcd validate %s (%s)\n", ev.stack.Environment, ev.stack.File)
	fmt.Fprintf(w, "Rules for tier %s, %s\n", ev.stack.Tier, tierSource(ev.stack))
	if ev.live == nil {
		return
	}
	fmt.Fprintf(w, "Docker engine: %s (API %s)\n", ev.stack.DockerHost, cmp.Or(ev.live.DockerAPIVersion, "unreachable"))
	if ev.live.Migrations >= 0 {
		fmt.Fprintf(w, "Migrations applied: %d\n", ev.live.Migrations)
	}
}

// tierSource says where the environment's tier comes from.
func tierSource(s *stackhcl.Stack) string {
	if s.TierRange.Filename != "" {
		return fmt.Sprintf("as declared at %s", checks.Location(s.TierRange))
	}
	return fmt.Sprintf("from the environment's name (declare tier = %q, %q or %q in environment %q to choose)",
		stackhcl.TierProduction, stackhcl.TierStaging, stackhcl.TierDevelopment, s.Environment)
}

func printGroup(w io.Writer, title, mark string, group []checks.Finding) {
	if len(group) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s (%d):\n", title, len(group))
	for _, f := range group {
		fmt.Fprintf(w, "  %s %s  %s\n    %s\n    fix: %s\n", mark, f.Rule.Code, findingLocation(f), f.Text(), f.Rule.Fix)
	}
}

func printWaived(w io.Writer, waived []checks.Finding) {
	if len(waived) == 0 {
		return
	}
	fmt.Fprintf(w, "\nWaived (%d):\n", len(waived))
	for _, f := range waived {
		fmt.Fprintf(w, "  ~ %s  %s\n    %s\n    reason: %s\n    waiver: %s\n",
			f.Rule.Code, findingLocation(f), f.Text(), f.Waiver.Reason, f.WaiverLocation())
	}
}

func printSummary(w io.Writer, ev *evaluation, code int) error {
	c := checks.Count(ev.findings)
	verdict := "PASSED"
	switch {
	case code == 1:
		verdict = "FAILED"
	case code == 2:
		verdict = "FAILED (--strict: warnings fail)"
	case c.Warnings > 0:
		verdict = "PASSED with warnings (--strict would fail)"
	}
	mode := "static checks"
	if ev.live != nil {
		mode = "static and live checks"
	}
	accepted := ""
	if c.Waived > 0 {
		accepted = fmt.Sprintf(", %d waived", c.Waived)
	}
	_, err := fmt.Fprintf(w, "\nSummary: %d error(s), %d warning(s), %d info%s; %s. Validation %s.\n",
		c.Errors, c.Warnings, c.Info, accepted, mode, verdict)
	return err
}

// findingLocation is where a finding points, or "(target)" for a live
// finding about the target rather than the file.
func findingLocation(f checks.Finding) string {
	if loc := f.Location(); loc != "" {
		return loc
	}
	return "(target)"
}

type jsonFinding struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Priority string `json:"priority"`
	Category string `json:"category"`
	Message  string `json:"message"`
	Fix      string `json:"fix"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
	Live     bool   `json:"live"`
	// Waived findings count in the summary's waived, in no severity.
	Waived       bool   `json:"waived"`
	WaiverReason string `json:"waiver_reason,omitempty"`
}

// printInvalidStackJSON is validate --json for a stack that does not
// load: its diagnostics as findings of code "stack.invalid", with their
// file, line and column, and exit code 1.
func printInvalidStackJSON(w io.Writer, env string, strict bool, diags hcl.Diagnostics) error {
	out := struct {
		Environment string        `json:"environment"`
		Strict      bool          `json:"strict"`
		Findings    []jsonFinding `json:"findings"`
		Summary     checks.Counts `json:"summary"`
		ExitCode    int           `json:"exit_code"`
	}{Environment: env, Strict: strict, Findings: []jsonFinding{}, ExitCode: ExitFailure}
	for _, d := range diags {
		f := jsonFinding{Code: "stack.invalid", Severity: string(checks.SeverityError), Priority: string(checks.PriorityHigh),
			Category: "stack", Message: d.Summary, Fix: d.Detail}
		if d.Severity != hcl.DiagError {
			f.Severity = string(checks.SeverityWarning)
			out.Summary.Warnings++
		} else {
			out.Summary.Errors++
		}
		if d.Subject != nil {
			f.File, f.Line, f.Column = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
		}
		out.Findings = append(out.Findings, f)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func printFindingsJSON(w io.Writer, ev *evaluation, strict bool, code int) error {
	out := struct {
		Stack       string             `json:"stack"`
		Environment string             `json:"environment"`
		Tier        string             `json:"tier"`
		TierFrom    string             `json:"tier_from"`
		Strict      bool               `json:"strict"`
		Findings    []jsonFinding      `json:"findings"`
		Summary     checks.Counts      `json:"summary"`
		ExitCode    int                `json:"exit_code"`
		Live        *checks.LiveReport `json:"-"`
		DockerAPI   string             `json:"docker_api_version,omitempty"`
		Migrations  *int               `json:"migrations_applied,omitempty"`
	}{Stack: ev.stack.Name, Environment: ev.stack.Environment, Tier: ev.stack.Tier, TierFrom: "name", Strict: strict, Findings: []jsonFinding{},
		Summary: checks.Count(ev.findings), ExitCode: code}
	if ev.stack.TierRange.Filename != "" {
		out.TierFrom = "declared"
	}
	if ev.live != nil {
		out.DockerAPI = ev.live.DockerAPIVersion
		if ev.live.Migrations >= 0 {
			out.Migrations = &ev.live.Migrations
		}
	}
	for _, f := range ev.findings {
		jf := jsonFinding{
			Code: f.Rule.Code, Severity: string(f.Rule.Severity), Priority: string(f.Rule.Priority),
			Category: string(f.Rule.Category), Message: f.Text(), Fix: f.Rule.Fix,
			File: f.Range.Filename, Line: f.Range.Start.Line, Column: f.Range.Start.Column, Live: f.Rule.Live,
			Waived: f.Waived(),
		}
		if f.Waived() {
			jf.WaiverReason = f.Waiver.Reason
		}
		out.Findings = append(out.Findings, jf)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func listCatalog(w io.Writer, asJSON bool) error {
	rules := checks.Catalog()
	if asJSON {
		// The keys are lower case, as in validate --json's findings.
		type entry struct {
			Code     string `json:"code"`
			Severity string `json:"severity"`
			Priority string `json:"priority"`
			Category string `json:"category"`
			Title    string `json:"title"`
			Impact   string `json:"impact"`
			Fix      string `json:"fix"`
			Source   string `json:"source"`
			Live     bool   `json:"live"`
		}
		var out []entry
		for _, r := range rules {
			out = append(out, entry{r.Code, string(r.Severity), string(r.Priority), string(r.Category), r.Title, r.Impact, r.Fix, r.Source, r.Live})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CODE\tSEVERITY\tPRIORITY\tCATEGORY\tCHECK")
	for _, r := range rules {
		title := r.Title
		if r.Live {
			title += " [live]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Code, r.Severity, r.Priority, r.Category, strings.TrimSpace(title))
	}
	return tw.Flush()
}

const validateLong = `Validate runs the rule catalog (docs/checks.md) over the stack file for one
environment: the monitoring checks (monitoring.E001-E013, W001-W008), the
readiness audit's findings (audit.A*) and secret hygiene (secrets.S*).
Findings are grouped by severity, each with file:line and how to fix it.

A warning or info check the stack cannot satisfy can be accepted in the
stack file, with a reason that is reviewed like code:

  waive "audit.A007" {
    reason = "Grafana is not packaged by Debian; this stack runs only Debian-built images."
  }

Waived findings are listed apart, with their reasons; they count toward
neither errors nor warnings and never change the exit code. Errors cannot
be waived (waiver.V002), an unknown code is an error (waiver.V001), and a
waiver that matches nothing is reported as info (waiver.V003).

--deploy adds live checks against the environment's target: the Docker
engine and its free disk, the images, that every secret has a value, the
rendered env (DEBUG off, a real SECRET_KEY), the database and its
migrations, and Redis. Each has a timeout; an unreachable target is a
finding, never a hang.

Exit codes: 0 all checks pass; 1 errors (or an invalid stack file);
2 warnings under --strict; 64 usage error.`

const validateExample = `  obcd validate staging --stack stacks/obcms.hcl
  obcd validate production --strict --deploy
  obcd validate staging --json | jq '.findings[].code'
  obcd validate --list`
