// Package checks is the gate in front of every deploy: a catalog of rules
// with stable codes, run over a stack (and, live, over its target), and
// the readiness audit built from their findings.
package checks

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/templates"
)

// Severity decides the exit code: errors fail validation, warnings fail
// it only under --strict, info never does.
type Severity string

// Severities, most severe first.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	SeverityInfo    Severity = "info"
)

func (s Severity) rank() int {
	switch s {
	case SeverityError:
		return 0
	case SeverityWarning:
		return 1
	default:
		return 2
	}
}

// Priority places a finding in the readiness audit, as the audit seed
// does: critical findings block deployment.
type Priority string

// Priorities, most urgent first.
const (
	PriorityCritical Priority = "critical"
	PriorityHigh     Priority = "high"
	PriorityMedium   Priority = "medium"
	PriorityLow      Priority = "low"
)

// Category is one of the audit seed's twelve readiness categories.
type Category string

// The twelve categories, in the audit seed's order.
const (
	CategoryEnvironment Category = "Environment Configuration"
	CategoryDatabase    Category = "Database Configuration"
	CategorySecurity    Category = "Security Settings"
	CategoryStatic      Category = "Static Files & Media"
	CategoryCelery      Category = "Celery & Background Tasks"
	CategoryRedis       Category = "Redis Configuration"
	CategoryEmail       Category = "Email Configuration"
	CategoryMonitoring  Category = "Logging & Monitoring"
	CategoryAPI         Category = "API Configuration"
	CategoryPreDeploy   Category = "Pre-Deployment Checks"
	CategoryDocker      Category = "Docker & Deployment"
	CategoryThirdParty  Category = "Third-party Services"
)

// Categories lists the twelve categories in report order.
var Categories = []Category{
	CategoryEnvironment, CategoryDatabase, CategorySecurity, CategoryStatic,
	CategoryCelery, CategoryRedis, CategoryEmail, CategoryMonitoring,
	CategoryAPI, CategoryPreDeploy, CategoryDocker, CategoryThirdParty,
}

// Rule is one entry of the catalog. Its code never changes meaning.
type Rule struct {
	Code     string // e.g. "monitoring.E001", "audit.A005", "secrets.S001", "deploy.D004"
	Severity Severity
	Priority Priority
	Category Category
	Title    string // one line: what is wrong
	Impact   string // what goes wrong in production because of it
	Fix      string // how to fix it, in stack-file terms
	Source   string // where the rule comes from, e.g. "monitoring seed E001", "audit seed #1"
	// Live rules need the target (validate --deploy, audit --live); the
	// rest are computed from the stack file alone.
	Live bool
	// Check finds violations of a static rule. Live rules leave it nil;
	// the live checker reports them.
	Check func(*Input) []Finding `json:"-"`
}

// Finding is one violation of a rule, pointing at the stack file.
type Finding struct {
	Rule    *Rule
	Message string    // specific to this violation; the rule's Title when empty
	Range   hcl.Range // what it points at; zero when nothing in the file applies
	// Waiver is the stack's waive block that accepts this finding as a
	// risk; nil when none does. A waived finding is still reported, but
	// counts toward neither errors nor warnings.
	Waiver *stackhcl.Waiver
}

// Waived reports whether a waive block accepts the finding.
func (f Finding) Waived() bool { return f.Waiver != nil }

// Text is the finding's message.
func (f Finding) Text() string {
	if f.Message != "" {
		return f.Message
	}
	return f.Rule.Title
}

// Location is file:line:col, or "" when the finding has no range.
func (f Finding) Location() string { return location(f.Range) }

// WaiverLocation is file:line:col of the waive block that accepts the
// finding, or "" when none does.
func (f Finding) WaiverLocation() string {
	if f.Waiver == nil {
		return ""
	}
	return location(f.Waiver.DeclRange)
}

// Location is file:line:col of r, or "" for a range in no file.
func Location(r hcl.Range) string { return location(r) }

func location(r hcl.Range) string {
	if r.Filename == "" {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// Input is what static rules read.
type Input struct {
	Stack *stackhcl.Stack
	// Secrets gives secret values for hygiene checks; nil or a missing
	// value means the rule cannot judge that secret and stays silent
	// (presence is the live rule deploy.D002's business).
	Secrets templates.SecretSource
}

// SecretValue returns a secret's value, or "" when it is unknown.
func (in *Input) SecretValue(name string) string {
	if in.Secrets == nil || name == "" {
		return ""
	}
	v, err := in.Secrets.Value(name)
	if err != nil {
		return ""
	}
	return v
}

// catalog holds every rule, in code order. Each rule file declares its
// table; the catalog registers them all here, once. (An init, not a
// variable's initializer: the waiver rules look codes up in the catalog.)
var catalog []*Rule

func init() {
	catalog = slices.Concat(monitoringRules, auditRules, secretsRules, waiverRules, liveRules)
	slices.SortFunc(catalog, func(a, b *Rule) int { return strings.Compare(a.Code, b.Code) })
}

// Catalog returns every rule, sorted by code.
func Catalog() []*Rule {
	return append([]*Rule(nil), catalog...)
}

// Lookup returns the rule with a code, or nil.
func Lookup(code string) *Rule {
	for _, r := range catalog {
		if r.Code == code {
			return r
		}
	}
	return nil
}

// Run applies every static rule to the input and returns the findings,
// most severe first, then by code and position, with the stack's waivers
// attached to the findings they accept.
func Run(in *Input) []Finding {
	var findings []Finding
	for _, rule := range catalog {
		if rule.Check == nil {
			continue
		}
		for _, f := range rule.Check(in) {
			f.Rule = rule
			findings = append(findings, f)
		}
	}
	waive(in.Stack, findings)
	Sort(findings)
	return findings
}

// Sort orders findings by severity, code, then position.
func Sort(findings []Finding) {
	sort.SliceStable(findings, func(i, j int) bool { return findingLess(findings[i], findings[j]) })
}

func findingLess(a, b Finding) bool {
	if a.Rule.Severity != b.Rule.Severity {
		return a.Rule.Severity.rank() < b.Rule.Severity.rank()
	}
	if a.Rule.Code != b.Rule.Code {
		return a.Rule.Code < b.Rule.Code
	}
	return a.Range.Start.Byte < b.Range.Start.Byte
}

// Counts tallies findings by severity; waived findings are counted apart,
// in none of the severities.
type Counts struct {
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
	Info     int `json:"info"`
	Waived   int `json:"waived"`
}

// Count tallies findings by severity, and the waived ones apart.
func Count(findings []Finding) Counts {
	var c Counts
	for _, f := range findings {
		switch {
		case f.Waived():
			c.Waived++
		case f.Rule.Severity == SeverityError:
			c.Errors++
		case f.Rule.Severity == SeverityWarning:
			c.Warnings++
		default:
			c.Info++
		}
	}
	return c
}

// ExitCode is the monitoring seed's contract: 1 when there are errors,
// 2 when there are warnings and strict is set, else 0. Waived findings
// never change it.
func ExitCode(findings []Finding, strict bool) int {
	c := Count(findings)
	switch {
	case c.Errors > 0:
		return 1
	case strict && c.Warnings > 0:
		return 2
	default:
		return 0
	}
}
