package checks

import (
	"fmt"
	"math"
	"sort"

	stackhcl "github.com/obcd/obcd/hcl"
)

// Scoring rules of the readiness audit. They are printed in every report
// and in docs/checks.md, and pinned by tests.
//
//   - Each of the twelve categories starts at 100 and loses, per finding
//     in it: critical 40, high 20, medium 10, low 5; never below 0.
//   - The overall score is the mean of the twelve category scores,
//     rounded to the nearest whole number.
//   - A category's status is COMPLETE at 100, GOOD from 80, PARTIAL from
//     60, and NEEDS WORK below.
//   - The environment is ready to deploy only when no finding is critical
//     and none has error severity.
//   - A finding a waive block accepts costs nothing: it is listed as an
//     accepted risk, with the waiver's reason. Errors cannot be waived.
var penalties = map[Priority]int{
	PriorityCritical: 40,
	PriorityHigh:     20,
	PriorityMedium:   10,
	PriorityLow:      5,
}

// Category statuses.
const (
	StatusComplete  = "COMPLETE"
	StatusGood      = "GOOD"
	StatusPartial   = "PARTIAL"
	StatusNeedsWork = "NEEDS WORK"
)

// ScoringRules describes the scoring in prose, for reports and docs.
var ScoringRules = []string{
	"Each of the twelve categories starts at 100 and loses 40 per critical, 20 per high, 10 per medium and 5 per low-priority finding, down to 0.",
	"The overall score is the mean of the twelve category scores, rounded to the nearest whole number.",
	"A category is COMPLETE at 100, GOOD from 80, PARTIAL from 60, and NEEDS WORK below 60.",
	"The environment is ready to deploy only when there is no critical finding and no error.",
	"A finding that a waive block accepts costs nothing: the report lists it as an accepted risk, with the waiver's reason. Errors cannot be waived.",
}

// StatusFor maps a category score to its status.
func StatusFor(score int) string {
	switch {
	case score >= 100:
		return StatusComplete
	case score >= 80:
		return StatusGood
	case score >= 60:
		return StatusPartial
	default:
		return StatusNeedsWork
	}
}

// CategoryScore is one row of the audit's category table.
type CategoryScore struct {
	Category Category `json:"category"`
	Score    int      `json:"score"`
	Status   string   `json:"status"`
	Findings int      `json:"findings"`
	Checks   int      `json:"checks"` // rules in this category that were evaluated
}

// Report is the readiness audit of one environment.
type Report struct {
	Stack       string
	Environment string
	File        string
	Score       int
	Ready       bool
	Live        bool // live rules were evaluated
	Categories  []CategoryScore
	Findings    []Finding // sorted by priority, then code; none waived
	// Waived are the accepted risks: findings a waive block accepts,
	// sorted like Findings. They are not scored.
	Waived []Finding
	// Passed lists the evaluated rules with no finding, waived or not:
	// the positive findings of the report.
	Passed []*Rule
}

// Audit scores findings into a report. Live rules count as evaluated
// only when live is true; waived findings are set apart, unscored.
func Audit(stack *stackhcl.Stack, findings []Finding, live bool) Report {
	r := Report{Stack: stack.Name, Environment: stack.Environment, File: stack.File, Live: live}
	failed := map[string]bool{}
	for _, f := range findings {
		failed[f.Rule.Code] = true
		if f.Waived() {
			r.Waived = append(r.Waived, f)
		} else {
			r.Findings = append(r.Findings, f)
		}
	}
	sortByPriority(r.Findings)
	sortByPriority(r.Waived)
	lost := map[Category]int{}
	count := map[Category]int{}
	r.Ready = true
	for _, f := range r.Findings {
		lost[f.Rule.Category] += penalties[f.Rule.Priority]
		count[f.Rule.Category]++
		if f.Rule.Priority == PriorityCritical || f.Rule.Severity == SeverityError {
			r.Ready = false
		}
	}
	checks := map[Category]int{}
	for _, rule := range catalog {
		if rule.Live && !live {
			continue
		}
		checks[rule.Category]++
		if !failed[rule.Code] {
			r.Passed = append(r.Passed, rule)
		}
	}
	total := 0
	for _, c := range Categories {
		score := max(0, 100-lost[c])
		total += score
		r.Categories = append(r.Categories, CategoryScore{
			Category: c, Score: score, Status: StatusFor(score), Findings: count[c], Checks: checks[c],
		})
	}
	r.Score = int(math.Round(float64(total) / float64(len(Categories))))
	return r
}

// ByPriority returns the report's findings of one priority.
func (r Report) ByPriority(p Priority) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Rule.Priority == p {
			out = append(out, f)
		}
	}
	return out
}

// Headline is the report's one-line verdict, and the accepted risks
// when there are any.
func (r Report) Headline() string {
	critical := len(r.ByPriority(PriorityCritical))
	var verdict string
	switch {
	case r.Ready && len(r.Findings) == 0:
		verdict = fmt.Sprintf("%d%% Ready, no findings", r.Score)
	case r.Ready:
		verdict = fmt.Sprintf("%d%% Ready, %d finding(s) to review", r.Score, len(r.Findings))
	case critical > 0:
		verdict = fmt.Sprintf("%d%% Ready with %d critical blocking issue(s)", r.Score, critical)
	default:
		verdict = fmt.Sprintf("%d%% Ready with blocking errors", r.Score)
	}
	if len(r.Waived) > 0 {
		verdict += fmt.Sprintf(", %d accepted risk(s)", len(r.Waived))
	}
	return verdict
}

var priorityRank = map[Priority]int{PriorityCritical: 0, PriorityHigh: 1, PriorityMedium: 2, PriorityLow: 3}

func sortByPriority(findings []Finding) {
	sort.SliceStable(findings, func(i, j int) bool {
		a, b := findings[i], findings[j]
		if pa, pb := priorityRank[a.Rule.Priority], priorityRank[b.Rule.Priority]; pa != pb {
			return pa < pb
		}
		return findingLess(a, b)
	})
}
