package checks

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	stackhcl "github.com/obcd/obcd/hcl"
)

func findingsOf(findings []Finding, code string) []Finding {
	var out []Finding
	for _, f := range findings {
		if f.Rule.Code == code {
			out = append(out, f)
		}
	}
	return out
}

// TestWaivedFixtures_WaiverAcceptsOnlyWarningsAndInfo runs every
// <code>.waived.hcl: a waivable rule's findings are waived and fail
// nothing, even under --strict; an error's stay, and the waiver is refused.
func TestWaivedFixtures_WaiverAcceptsOnlyWarningsAndInfo(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(stackFixtures, "*.waived.hcl"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no *.waived.hcl fixtures: %v", err)
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".hcl")
		code := strings.TrimSuffix(name, ".waived")
		t.Run(code, func(t *testing.T) {
			rule := Lookup(code)
			if rule == nil {
				t.Fatalf("%s names no rule", path)
			}
			findings := Run(loadFixture(t, name).input)
			own := findingsOf(findings, code)
			if len(own) == 0 {
				t.Fatalf("no %s finding to waive:%s", code, describeFindings(findings))
			}
			for _, f := range own {
				if f.Waived() == (rule.Severity == SeverityError) {
					t.Errorf("%s (%s): waived = %v", code, rule.Severity, f.Waived())
				}
			}
			refused := findingsOf(findings, "waiver.V002")
			if rule.Severity == SeverityError {
				if len(refused) != 1 || ExitCode(findings, false) != 1 {
					t.Errorf("waiving error %s: want one waiver.V002 and exit 1:%s", code, describeFindings(findings))
				}
				return
			}
			if len(refused) != 0 || ExitCode(findings, true) != 0 {
				t.Errorf("waiving %s %s: want no refusal and exit 0 under --strict:%s", rule.Severity, code, describeFindings(findings))
			}
		})
	}
}

func TestWaiver_WaivedWarningNoLongerFailsStrict(t *testing.T) {
	unwaived := Run(loadFixture(t, "audit.A007").input)
	if ExitCode(unwaived, true) != 2 {
		t.Fatalf("audit.A007.hcl must fail --strict without the waiver:%s", describeFindings(unwaived))
	}
	findings := Run(loadFixture(t, "audit.A007.waived").input)
	if len(findings) != 1 || !findings[0].Waived() {
		t.Fatalf("want the one audit.A007 finding, waived:%s", describeFindings(findings))
	}
	f := findings[0]
	if want := "Grafana is not packaged by Debian; this stack runs only Debian-built images."; f.Waiver.Reason != want {
		t.Errorf("waiver reason = %q, want %q", f.Waiver.Reason, want)
	}
	if !strings.HasSuffix(f.WaiverLocation(), "audit.A007.waived.hcl:102:1") {
		t.Errorf("waiver location = %q, want the waive block at line 102", f.WaiverLocation())
	}
	if c := Count(findings); c != (Counts{Waived: 1}) {
		t.Errorf("counts = %+v, want only one waived", c)
	}
	if code := ExitCode(findings, true); code != 0 {
		t.Errorf("ExitCode(strict) = %d, want 0", code)
	}
}

func TestWaiver_ErrorCannotBeWaived(t *testing.T) {
	findings := Run(loadFixture(t, "monitoring.E001.waived").input)
	e001 := findingsOf(findings, "monitoring.E001")
	if len(e001) != 1 || e001[0].Waived() {
		t.Fatalf("monitoring.E001 must still count:%s", describeFindings(findings))
	}
	refused := findingsOf(findings, "waiver.V002")
	if len(refused) != 1 || refused[0].Rule.Severity != SeverityError ||
		!strings.Contains(refused[0].Text(), "errors cannot be waived: fix them") {
		t.Fatalf("want one waiver.V002 error saying errors cannot be waived:%s", describeFindings(findings))
	}
	if refused[0].Range.Start.Line != 104 {
		t.Errorf("waiver.V002 points at line %d, want the waive block at 104", refused[0].Range.Start.Line)
	}
	if c := Count(findings); c.Errors != 2 || c.Waived != 0 || ExitCode(findings, false) != 1 {
		t.Errorf("counts %+v, exit %d: want 2 errors, none waived, exit 1", c, ExitCode(findings, false))
	}
}

func TestWaiver_UnknownCodeIsRefusedWithASuggestion(t *testing.T) {
	findings := Run(loadFixture(t, "waiver.V001").input)
	unknown := findingsOf(findings, "waiver.V001")
	if len(unknown) != 1 || !strings.Contains(unknown[0].Text(), `did you mean "audit.A007"`) {
		t.Fatalf("want one waiver.V001 suggesting audit.A007:%s", describeFindings(findings))
	}
	if ExitCode(findings, false) != 1 {
		t.Errorf("an unknown code must fail validation: exit %d", ExitCode(findings, false))
	}
}

// waiverStack is clean.hcl with waive blocks appended.
func waiverStack(t *testing.T, env string, waivers string) *stackhcl.Stack {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(stackFixtures, "clean.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "waivers.hcl")
	if err := os.WriteFile(path, append(src, waivers...), 0o644); err != nil {
		t.Fatal(err)
	}
	return loadStack(t, path, env)
}

func TestWaiver_UnknownCodeFarFromAnyHasNoSuggestion(t *testing.T) {
	stack := waiverStack(t, "production", `
waive "grafana" {
  reason = "not packaged"
}
`)
	findings := Run(&Input{Stack: stack})
	unknown := findingsOf(findings, "waiver.V001")
	if len(unknown) != 1 || strings.Contains(unknown[0].Text(), "did you mean") || !strings.Contains(unknown[0].Text(), "obcd validate --list") {
		t.Errorf("want one waiver.V001 pointing at validate --list:%s", describeFindings(findings))
	}
}

func TestWaiver_StaleWaiverIsInfoAndNeverFails(t *testing.T) {
	findings := Run(loadFixture(t, "waiver.V003").input)
	if len(findings) != 1 || findings[0].Rule.Code != "waiver.V003" || findings[0].Rule.Severity != SeverityInfo {
		t.Fatalf("want one waiver.V003 info:%s", describeFindings(findings))
	}
	if ExitCode(findings, true) != 0 {
		t.Errorf("a stale waiver must not fail --strict")
	}
}

func TestWaiver_StaleCheckCannotBeWaived(t *testing.T) {
	stack := waiverStack(t, "production", `
waive "waiver.V003" {
  reason = "we like our waivers"
}
`)
	findings := Run(&Input{Stack: stack})
	if got := findingCodes(findings); strings.Join(got, ",") != "waiver.V002" {
		t.Errorf("codes = %v, want [waiver.V002]:%s", got, describeFindings(findings))
	}
}

// TestWaiver_LiveFindingsAreWaivedButNeverStale: a waiver of a live rule
// accepts the findings RunLive reports, and is not judged stale by the
// static run, which cannot see the target.
func TestWaiver_LiveFindingsAreWaivedButNeverStale(t *testing.T) {
	stack := waiverStack(t, "production", `
waive "deploy.D009" {
  reason = "obcd reaches no service directly on this host"
}
`)
	if findings := Run(&Input{Stack: stack}); len(findings) != 0 {
		t.Errorf("a waiver of a live rule is not stale in a static run:%s", describeFindings(findings))
	}
	report := RunLive(context.Background(), LiveOptions{
		Stack: stack, Secrets: strongFakeSecrets(stack), Docker: &fakeLiveDocker{}, Timeout: time.Second,
	})
	d009 := findingsOf(report.Findings, "deploy.D009")
	if len(d009) == 0 {
		t.Fatalf("clean.hcl declares no addresses, so RunLive must report deploy.D009:%s", describeFindings(report.Findings))
	}
	for _, f := range report.Findings {
		if f.Waived() != (f.Rule.Code == "deploy.D009") {
			t.Errorf("%s %s: waived = %v", f.Rule.Code, f.Text(), f.Waived())
		}
	}
	if c := Count(report.Findings); c.Waived != len(d009) || c.Info != 0 {
		t.Errorf("counts %+v: want the %d deploy.D009 findings waived, not info", c, len(d009))
	}
}

func TestAudit_WaivedFindingIsAnAcceptedRiskNotScored(t *testing.T) {
	unwaived := Audit(loadFixture(t, "audit.A007").input.Stack, Run(loadFixture(t, "audit.A007").input), false)
	fx := loadFixture(t, "audit.A007.waived")
	r := Audit(fx.input.Stack, Run(fx.input), false)
	if unwaived.Score >= 100 {
		t.Fatalf("audit.A007 must cost points without its waiver: score %d", unwaived.Score)
	}
	if r.Score != 100 || !r.Ready || len(r.Findings) != 0 || len(r.Waived) != 1 {
		t.Fatalf("score %d ready %v findings %d waived %d: want 100, ready, 0, 1", r.Score, r.Ready, len(r.Findings), len(r.Waived))
	}
	for _, rule := range r.Passed {
		if rule.Code == "audit.A007" {
			t.Error("a waived rule is listed as passed")
		}
	}
	md := r.Markdown()
	for _, want := range []string{
		"## Accepted Risks (Waived)",
		"**Code:** `audit.A007`",
		"**Reason accepted:** Grafana is not packaged by Debian; this stack runs only Debian-built images.",
		"(`audit.A007`) (waived: accepted risk)",
		"1 accepted risk(s)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	data, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Score         int
		Findings      []struct{ Code string }
		AcceptedRisks []struct {
			Code         string
			Waived       bool
			WaiverReason string `json:"waiver_reason"`
		} `json:"accepted_risks"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if out.Score != 100 || len(out.Findings) != 0 || len(out.AcceptedRisks) != 1 ||
		out.AcceptedRisks[0].Code != "audit.A007" || !out.AcceptedRisks[0].Waived || out.AcceptedRisks[0].WaiverReason == "" {
		t.Errorf("json = %s", data)
	}
}

func TestAudit_WithoutWaiversHasNoAcceptedRisks(t *testing.T) {
	r := Audit(&stackhcl.Stack{}, []Finding{fakeFinding("x.1", CategoryAPI, PriorityMedium, SeverityWarning)}, false)
	if strings.Contains(r.Markdown(), "Accepted Risks") || strings.Contains(r.Headline(), "accepted") {
		t.Errorf("a report without waivers mentions accepted risks: %s", r.Headline())
	}
	waived := fakeFinding("x.2", CategoryAPI, PriorityHigh, SeverityWarning)
	waived.Waiver = &stackhcl.Waiver{Code: "x.2", Reason: "r", DeclRange: hcl.Range{Filename: "s.hcl", Start: hcl.Pos{Line: 9, Column: 1}}}
	r = Audit(&stackhcl.Stack{}, []Finding{waived}, false)
	if r.Score != 100 || len(r.Waived) != 1 || len(r.Findings) != 0 {
		t.Errorf("a waived high finding must cost nothing: score %d, %d findings", r.Score, len(r.Findings))
	}
	for _, c := range r.Categories {
		if c.Score != 100 || c.Findings != 0 {
			t.Errorf("%s = %d with %d finding(s), want 100 and none", c.Category, c.Score, c.Findings)
		}
	}
}
