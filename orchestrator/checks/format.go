package checks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Markdown renders the report in the shape of the readiness audit seed:
// verdict, score table, blockers, then high and medium issues, positive
// findings, a checklist and the scoring rules. It holds no timestamps, so
// the same findings give the same bytes.
func (r Report) Markdown() string {
	var b strings.Builder
	title := fmt.Sprintf("%s %s", strings.ToUpper(r.Stack), capitalize(r.Environment))
	fmt.Fprintf(&b, "# %s Deployment Readiness Audit Report\n\n", title)
	fmt.Fprintf(&b, "**Stack file:** `%s`  \n", r.File)
	fmt.Fprintf(&b, "**Environment:** %s  \n", r.Environment)
	fmt.Fprintf(&b, "**Live checks:** %s  \n", map[bool]string{true: "included (--live)", false: "not run (add --live to check the target)"}[r.Live])
	fmt.Fprintf(&b, "**Overall Status:** %s  \n\n---\n\n", r.Headline())

	critical, high := r.ByPriority(PriorityCritical), r.ByPriority(PriorityHigh)
	medium, low := r.ByPriority(PriorityMedium), r.ByPriority(PriorityLow)
	b.WriteString("## Executive Summary\n\n")
	fmt.Fprintf(&b, "%s has **%d critical blocking issue(s)**, **%d high-priority gap(s)** and %d medium and %d low-priority finding(s) for %s.",
		strings.ToUpper(r.Stack), len(critical), len(high), len(medium), len(low), r.Environment)
	if len(r.Waived) > 0 {
		fmt.Fprintf(&b, " The stack file accepts %d more as risks (waive blocks); they are listed with their reasons and not scored.", len(r.Waived))
	}
	b.WriteString("\n\n")
	fmt.Fprintf(&b, "### Overall Readiness Score: %d/100\n\n", r.Score)
	b.WriteString("| Category | Score | Status |\n|----------|-------|--------|\n")
	for _, c := range r.Categories {
		status := c.Status
		if status == StatusComplete {
			status += " ✅"
		}
		fmt.Fprintf(&b, "| %s | %d/100 | %s |\n", c.Category, c.Score, status)
	}
	b.WriteString("\n---\n\n")

	n := 0
	sections := []struct {
		title    string
		status   string
		findings []Finding
	}{
		{"Critical Blocking Issues (Must Fix)", "CRITICAL - BLOCKS DEPLOYMENT", critical},
		{"High Priority Issues", "HIGH", high},
		{"Medium Priority Issues", "MEDIUM", medium},
		{"Low Priority Issues", "LOW", low},
	}
	for _, s := range sections {
		fmt.Fprintf(&b, "## %s\n\n", s.title)
		if len(s.findings) == 0 {
			b.WriteString("None.\n\n")
		}
		for _, f := range s.findings {
			n++
			writeIssue(&b, n, s.status, f)
		}
		b.WriteString("---\n\n")
	}
	r.writeAcceptedRisks(&b)
	r.writePositives(&b)
	r.writeChecklist(&b)
	b.WriteString("## Scoring\n\n")
	for _, rule := range ScoringRules {
		fmt.Fprintf(&b, "- %s\n", rule)
	}
	return b.String()
}

func writeIssue(b *strings.Builder, n int, status string, f Finding) {
	fmt.Fprintf(b, "### %d. %s\n", n, f.Rule.Title)
	fmt.Fprintf(b, "**Code:** `%s`  \n", f.Rule.Code)
	if loc := f.Location(); loc != "" {
		fmt.Fprintf(b, "**File:** `%s`  \n", loc)
	}
	fmt.Fprintf(b, "**Category:** %s  \n", f.Rule.Category)
	fmt.Fprintf(b, "**Status:** %s  \n", status)
	if f.Message != "" && f.Message != f.Rule.Title {
		fmt.Fprintf(b, "**Issue:** %s  \n", f.Message)
	}
	fmt.Fprintf(b, "**Impact:** %s  \n", f.Rule.Impact)
	fmt.Fprintf(b, "**Fix:** %s\n\n", f.Rule.Fix)
}

// writeAcceptedRisks lists the waived findings, each with the reason its
// waive block gives; a report without waivers has no such section.
func (r Report) writeAcceptedRisks(b *strings.Builder) {
	if len(r.Waived) == 0 {
		return
	}
	b.WriteString("## Accepted Risks (Waived)\n\n")
	for i, f := range r.Waived {
		fmt.Fprintf(b, "### %d. %s\n", i+1, f.Rule.Title)
		fmt.Fprintf(b, "**Code:** `%s`  \n", f.Rule.Code)
		if loc := f.Location(); loc != "" {
			fmt.Fprintf(b, "**File:** `%s`  \n", loc)
		}
		fmt.Fprintf(b, "**Category:** %s  \n", f.Rule.Category)
		fmt.Fprintf(b, "**Status:** ACCEPTED RISK (%s, not scored)  \n", f.Rule.Priority)
		if f.Message != "" && f.Message != f.Rule.Title {
			fmt.Fprintf(b, "**Issue:** %s  \n", f.Message)
		}
		fmt.Fprintf(b, "**Impact:** %s  \n", f.Rule.Impact)
		fmt.Fprintf(b, "**Reason accepted:** %s  \n", f.Waiver.Reason)
		fmt.Fprintf(b, "**Waiver:** `%s`\n\n", f.WaiverLocation())
	}
	b.WriteString("---\n\n")
}

func (r Report) writePositives(b *strings.Builder) {
	b.WriteString("## Positive Findings ✅\n\n")
	waived := map[Category]map[string]bool{}
	for _, f := range r.Waived {
		if waived[f.Rule.Category] == nil {
			waived[f.Rule.Category] = map[string]bool{}
		}
		waived[f.Rule.Category][f.Rule.Code] = true
	}
	complete := []string{}
	for _, c := range r.Categories {
		if c.Status != StatusComplete || c.Checks == 0 {
			continue
		}
		line := fmt.Sprintf("%s (%d checks pass)", c.Category, c.Checks)
		if n := len(waived[c.Category]); n > 0 {
			line = fmt.Sprintf("%s (%d checks pass, %d waived)", c.Category, c.Checks-n, n)
		}
		complete = append(complete, line)
	}
	if len(complete) > 0 {
		b.WriteString("### Complete (100%)\n")
		for _, c := range complete {
			fmt.Fprintf(b, "- %s\n", c)
		}
		b.WriteString("\n")
	}
	b.WriteString("### Checks that pass\n")
	for _, rule := range r.Passed {
		fmt.Fprintf(b, "- `%s` %s: no finding\n", rule.Code, rule.Title)
	}
	b.WriteString("\n---\n\n")
}

func (r Report) writeChecklist(b *strings.Builder) {
	b.WriteString("## Deployment Readiness Checklist\n\n")
	failed, waived := map[string]bool{}, map[string]bool{}
	for _, f := range r.Findings {
		failed[f.Rule.Code] = true
	}
	for _, f := range r.Waived {
		waived[f.Rule.Code] = true
	}
	for _, c := range Categories {
		fmt.Fprintf(b, "%s:\n", c)
		for _, rule := range catalog {
			if rule.Category != c {
				continue
			}
			mark, note := "x", ""
			switch {
			case rule.Live && !r.Live:
				mark, note = " ", " (live check: run with --live)"
			case failed[rule.Code]:
				mark = " "
			case waived[rule.Code]:
				mark, note = " ", " (waived: accepted risk)"
			}
			fmt.Fprintf(b, "- [%s] %s (`%s`)%s\n", mark, checklistItem(rule), rule.Code, note)
		}
		b.WriteString("\n")
	}
	b.WriteString("---\n\n")
}

// checklistItem phrases a rule as the thing to have done: its fix.
func checklistItem(rule *Rule) string {
	item := rule.Fix
	if i := strings.Index(item, ". "); i > 0 {
		item = item[:i]
	}
	return strings.TrimSuffix(item, ".")
}

// JSON is the machine-readable form of a report.
func (r Report) JSON() ([]byte, error) {
	type jsonFinding struct {
		Code         string `json:"code"`
		Severity     string `json:"severity"`
		Priority     string `json:"priority"`
		Category     string `json:"category"`
		Message      string `json:"message"`
		Location     string `json:"location,omitempty"`
		Impact       string `json:"impact"`
		Fix          string `json:"fix"`
		Waived       bool   `json:"waived"`
		WaiverReason string `json:"waiver_reason,omitempty"`
	}
	out := struct {
		Stack       string          `json:"stack"`
		Environment string          `json:"environment"`
		File        string          `json:"file"`
		Score       int             `json:"score"`
		Ready       bool            `json:"ready"`
		Live        bool            `json:"live"`
		Headline    string          `json:"headline"`
		Categories  []CategoryScore `json:"categories"`
		Findings    []jsonFinding   `json:"findings"`
		Accepted    []jsonFinding   `json:"accepted_risks"`
		Passed      []string        `json:"passed"`
		Scoring     []string        `json:"scoring_rules"`
	}{
		Stack: r.Stack, Environment: r.Environment, File: r.File, Score: r.Score, Ready: r.Ready,
		Live: r.Live, Headline: r.Headline(), Categories: r.Categories, Findings: []jsonFinding{},
		Accepted: []jsonFinding{}, Passed: []string{}, Scoring: ScoringRules,
	}
	encode := func(f Finding) jsonFinding {
		jf := jsonFinding{
			Code: f.Rule.Code, Severity: string(f.Rule.Severity), Priority: string(f.Rule.Priority),
			Category: string(f.Rule.Category), Message: f.Text(), Location: f.Location(),
			Impact: f.Rule.Impact, Fix: f.Rule.Fix, Waived: f.Waived(),
		}
		if f.Waived() {
			jf.WaiverReason = f.Waiver.Reason
		}
		return jf
	}
	for _, f := range r.Findings {
		out.Findings = append(out.Findings, encode(f))
	}
	for _, f := range r.Waived {
		out.Accepted = append(out.Accepted, encode(f))
	}
	for _, rule := range r.Passed {
		out.Passed = append(out.Passed, rule.Code)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	err := enc.Encode(out)
	return buf.Bytes(), err
}

// CatalogMarkdown documents every rule; docs/checks.md is this text, and
// a test keeps the two in sync.
func CatalogMarkdown() string {
	var b strings.Builder
	b.WriteString("# obcd checks\n\n")
	b.WriteString("Generated from the rule catalog in `orchestrator/checks` by `go test ./orchestrator/checks -update`; do not edit by hand.\n\n")
	b.WriteString("`obcd validate ENV` runs the static rules; `--deploy` adds the live ones (marked **live**), which reach the environment's Docker engine, database and Redis. ")
	b.WriteString("Exit codes: 0 all pass, 1 any error, 2 warnings under `--strict`. `obcd audit ENV` scores the same findings into a readiness report.\n\n")
	b.WriteString("A stack can accept the risk of a warning or info check with `waive \"<code>\" { reason = \"...\" }`: its findings are still shown, as waived with the reason, but count toward neither errors nor warnings and cost the audit nothing. ")
	b.WriteString("Errors cannot be waived: the `waiver.V*` checks refuse a waiver of an error or of an unknown code, and report a waiver that matches no finding.\n\n")
	b.WriteString("| Code | Severity | Priority | Category | Check |\n|---|---|---|---|---|\n")
	for _, rule := range catalog {
		live := ""
		if rule.Live {
			live = " **live**"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s%s |\n", rule.Code, rule.Severity, rule.Priority, rule.Category, rule.Title, live)
	}
	b.WriteString("\n## Rules\n\n")
	for _, rule := range catalog {
		fmt.Fprintf(&b, "### `%s`: %s\n\n", rule.Code, rule.Title)
		fmt.Fprintf(&b, "- **Severity:** %s; **priority:** %s; **category:** %s; **source:** %s\n", rule.Severity, rule.Priority, rule.Category, rule.Source)
		fmt.Fprintf(&b, "- **Impact:** %s\n", rule.Impact)
		fmt.Fprintf(&b, "- **Fix:** %s\n\n", rule.Fix)
	}
	b.WriteString("## Audit scoring\n\n")
	for _, rule := range ScoringRules {
		fmt.Fprintf(&b, "- %s\n", rule)
	}
	return b.String()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
