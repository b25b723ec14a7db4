package checks

// rules_waivers.go holds the accepted risks: how a stack's waive blocks
// apply to findings, and the checks of the waivers themselves
// (waiver.V*). A waived finding is still reported, with its waiver, but
// counts toward neither errors nor warnings, and costs the audit nothing.
// Only warning and info checks can be waived.

import (
	"fmt"
	"strings"

	stackhcl "github.com/obcd/obcd/hcl"
)

var (
	waiverUnknownCode = &Rule{
		Code: "waiver.V001", Severity: SeverityError, Priority: PriorityHigh, Category: CategoryPreDeploy,
		Title:  "A waiver names a check that does not exist",
		Impact: "The waiver accepts nothing: the finding it was meant for still counts, and reviewers cannot tell which risk was accepted.",
		Fix:    "Name a check code that obcd validate --list prints in every waive block. The finding suggests the closest code.",
		Source: "obcd",
		Check:  checkWaiverCodesExist,
	}
	waiverRefused = &Rule{
		Code: "waiver.V002", Severity: SeverityError, Priority: PriorityHigh, Category: CategoryPreDeploy,
		Title:  "A waiver names a check that cannot be waived",
		Impact: "An error means the stack will not work or is unsafe in production; accepting it as a risk would let it deploy.",
		Fix:    "Fix errors instead of waiving them; only warning and info checks can be waived. Then remove the waive block.",
		Source: "obcd",
		Check:  checkWaiversWaivable,
	}
	// waiverStale is info, not a warning: waivers hold for every
	// environment, and a check may fire in one environment only (Sentry in
	// production, say). As a warning, a waiver still needed in production
	// would fail validate --strict in staging; as info it is shown for
	// clean-up and never fails.
	waiverStale = &Rule{
		Code: "waiver.V003", Severity: SeverityInfo, Priority: PriorityLow, Category: CategoryPreDeploy,
		Title:  "A waiver matches no finding",
		Impact: "A stale waiver would accept the risk again, unreviewed, the day the finding comes back.",
		Fix:    "Remove waive blocks that match no finding. Keep one that still matches in another environment: waivers apply to all of them.",
		Source: "obcd",
		Check:  checkWaiversMatch,
	}
)

// waiverRules judge the stack's waive blocks, registered by the catalog.
var waiverRules = []*Rule{waiverUnknownCode, waiverRefused, waiverStale}

// waiverFamily prefixes the codes of the waivers' own checks.
const waiverFamily = "waiver."

// waivable reports whether a waive block may accept findings of the rule:
// warnings and info may be, errors may not, and neither may the checks of
// the waivers themselves.
func waivable(rule *Rule) bool {
	return rule.Severity != SeverityError && !strings.HasPrefix(rule.Code, waiverFamily)
}

// waive attaches to each finding the waiver that accepts it, if any.
func waive(stack *stackhcl.Stack, findings []Finding) {
	if stack == nil {
		return
	}
	for i := range findings {
		if w := stack.Waiver(findings[i].Rule.Code); w != nil && waivable(findings[i].Rule) {
			findings[i].Waiver = w
		}
	}
}

// checkWaiverCodesExist is waiver.V001: a waiver of a code the catalog
// does not have, with the closest code when there is one.
func checkWaiverCodesExist(in *Input) []Finding {
	var findings []Finding
	for _, w := range in.Stack.Waivers {
		if Lookup(w.Code) != nil {
			continue
		}
		message := fmt.Sprintf("waive %q names no check", w.Code)
		if s := stackhcl.Suggestion(w.Code, catalogCodes()); s != "" {
			message += fmt.Sprintf("; did you mean %q (%s)?", s, Lookup(s).Title)
		} else {
			message += "; obcd validate --list prints every code"
		}
		findings = append(findings, Finding{Message: message, Range: w.DeclRange})
	}
	return findings
}

// checkWaiversWaivable is waiver.V002: a waiver of an error, or of a
// waiver check. The finding it names still counts.
func checkWaiversWaivable(in *Input) []Finding {
	var findings []Finding
	for _, w := range in.Stack.Waivers {
		rule := Lookup(w.Code)
		switch {
		case rule == nil || waivable(rule):
			continue
		case rule.Severity == SeverityError:
			findings = append(findings, Finding{Range: w.DeclRange, Message: fmt.Sprintf(
				"waive %q is refused: %s (%q) is an error, and errors cannot be waived: fix them, then remove this block",
				w.Code, w.Code, rule.Title)})
		default:
			findings = append(findings, Finding{Range: w.DeclRange, Message: fmt.Sprintf(
				"waive %q is refused: the check of stale waivers cannot itself be waived; remove the waive blocks it reports", w.Code)})
		}
	}
	return findings
}

// checkWaiversMatch is waiver.V003: a waiver of a static check that finds
// nothing in this environment. Waivers of live checks are never judged
// stale: without --deploy their check did not run, and with it their
// findings follow the target's state (an image missing today is pulled
// tomorrow), so one run that matched nothing says nothing about the waiver.
func checkWaiversMatch(in *Input) []Finding {
	var findings []Finding
	for _, w := range in.Stack.Waivers {
		rule := Lookup(w.Code)
		if rule == nil || !waivable(rule) || rule.Check == nil || len(rule.Check(in)) > 0 {
			continue
		}
		findings = append(findings, Finding{Range: w.DeclRange, Message: fmt.Sprintf(
			"waive %q matches no finding in environment %q: %s (%q) passes; remove the waiver unless another environment needs it",
			w.Code, in.Stack.Environment, w.Code, rule.Title)})
	}
	return findings
}

func catalogCodes() []string {
	codes := make([]string, len(catalog))
	for i, rule := range catalog {
		codes[i] = rule.Code
	}
	return codes
}
