package hcl

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// names is what a stack file declares, collected before anything is
// evaluated so that every reference can be checked in one pass.
type names struct {
	variables map[string]hcl.Range
	locals    map[string]hcl.Range
	services  map[string]*serviceHeader
	secrets   map[string]hcl.Range
}

// checkReferences walks every expression in the file and reports each
// reference to something that is not declared, with a suggestion. It
// returns the ranges it reported so that the evaluator's own, less
// helpful, diagnostic for the same expression can be dropped.
func checkReferences(body hcl.Body, declared *names) (hcl.Diagnostics, []hcl.Range) {
	syntaxBody, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil, nil
	}
	var diags hcl.Diagnostics
	var reported []hcl.Range
	_ = hclsyntax.VisitAll(syntaxBody, func(node hclsyntax.Node) hcl.Diagnostics {
		expr, ok := node.(*hclsyntax.ScopeTraversalExpr)
		if !ok {
			return nil
		}
		if d := checkTraversal(expr.Traversal, declared); d != nil {
			diags = append(diags, d)
			reported = append(reported, *d.Subject)
		}
		return nil
	})
	return diags, reported
}

// namesIn gives a map's names, sorted (for an error only: sorting them
// per reference made references quadratic), and a membership test.
func namesIn[V any](m map[string]V) (func() []string, func(string) bool) {
	return func() []string { return slices.Sorted(maps.Keys(m)) }, func(name string) bool { _, ok := m[name]; return ok }
}

func checkTraversal(traversal hcl.Traversal, declared *names) *hcl.Diagnostic {
	root := traversal.RootName()
	var kind, declareHint string
	var known func() []string // sorted, computed only for the error
	var has func(string) bool
	switch root {
	case rootVar:
		kind, declareHint = "variable", `Declare it with a block: variable "%s" { type = string }.`
		known, has = namesIn(declared.variables)
	case rootLocal:
		kind, declareHint = "local value", `Define it in a locals block: locals { %s = ... }.`
		known, has = namesIn(declared.locals)
	case rootService:
		kind, declareHint = "service", `Declare it with a block: service "<kind>" "%s" { ... }.`
		known, has = namesIn(declared.services)
	case rootSecret:
		kind, declareHint = "secret", `Declare it with a block: secret "%s" {}.`
		known, has = namesIn(declared.secrets)
	case rootEnvironment:
		kind = "environment attribute"
		known, has = func() []string { return environmentAttrs }, func(name string) bool { return slices.Contains(environmentAttrs, name) }
	default:
		return nil
	}
	if len(traversal) < 2 {
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Incomplete %s reference", kind),
			Detail:   fmt.Sprintf("A reference to a %s needs a name after %q, like %s.name.", kind, root, root),
			Subject:  traversal.SourceRange().Ptr(),
		}
	}
	attr, ok := traversal[1].(hcl.TraverseAttr)
	if !ok {
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid %s reference", kind),
			Detail:   fmt.Sprintf("Write %s.<name>; an index such as %s[...] is not supported.", root, root),
			Subject:  traversal.SourceRange().Ptr(),
		}
	}
	if has(attr.Name) {
		return nil
	}
	names := known()
	detail := fmt.Sprintf("There is no %s named %q.", kind, attr.Name)
	if suggestion := nameSuggestion(attr.Name, names); suggestion != "" {
		detail += fmt.Sprintf(" Did you mean %q?", suggestion)
	}
	if len(names) > 0 {
		detail += fmt.Sprintf(" Declared: %s.", strings.Join(names, ", "))
	}
	if declareHint != "" {
		detail += " " + fmt.Sprintf(declareHint, attr.Name)
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Reference to undeclared %s", kind),
		Detail:   detail,
		Subject:  hcl.RangeBetween(traversal[0].SourceRange(), traversal[1].SourceRange()).Ptr(),
	}
}

// nameSuggestion returns the known name closest to given, if it is close
// enough to be a likely typo.
func nameSuggestion(given string, known []string) string {
	best, bestDist := "", 3
	for _, name := range known {
		if d := levenshtein.Distance(given, name, nil); d < bestDist {
			best, bestDist = name, d
		}
	}
	return best
}

// Suggestion returns the known name closest to given when it is close
// enough to be a likely typo, else "": the "did you mean" of a
// diagnostic or finding outside this package.
func Suggestion(given string, known []string) string { return nameSuggestion(given, known) }

// dropReported removes diagnostics whose subject lies inside a range that
// checkReferences already explained.
func dropReported(diags hcl.Diagnostics, reported []hcl.Range) hcl.Diagnostics {
	if len(reported) == 0 {
		return diags
	}
	out := diags[:0:0]
	for _, d := range diags {
		if d.Subject != nil && coveredBy(*d.Subject, reported) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// dropFollowOns drops the "value must be known" error that follows an
// expression's own error (a failing function call leaves its value
// unknown): it says nothing the first one did not.
func dropFollowOns(diags hcl.Diagnostics) hcl.Diagnostics {
	var failed []hcl.Range
	for _, d := range diags {
		if r := expressionRange(d); d.Severity == hcl.DiagError && r != nil && !isUnknownValueError(d) {
			failed = append(failed, *r)
		}
	}
	if len(failed) == 0 {
		return diags
	}
	out := diags[:0:0]
	for _, d := range diags {
		if r := expressionRange(d); isUnknownValueError(d) && r != nil && coveredBy(*r, failed) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// expressionRange is the whole expression a diagnostic is about: its
// context, or else its subject.
func expressionRange(d *hcl.Diagnostic) *hcl.Range {
	if d.Context != nil {
		return d.Context
	}
	return d.Subject
}

func isUnknownValueError(d *hcl.Diagnostic) bool {
	return d.Summary == "Unsuitable value type" && strings.Contains(d.Detail, "must be known")
}

func coveredBy(subject hcl.Range, ranges []hcl.Range) bool {
	for _, r := range ranges {
		if subject.Filename == r.Filename && r.Overlaps(subject) {
			return true
		}
	}
	return false
}

// refName resolves an expression that must be a plain reference such as
// service.db or secret.api_key, and returns the name after the root. It
// reports a diagnostic when the expression is anything else.
func refName(expr hcl.Expression, root, attrName, example string) (string, hcl.Diagnostics) {
	traversal, diags := hcl.AbsTraversalForExpr(expr)
	if diags.HasErrors() || traversal.RootName() != root || len(traversal) != 2 {
		return "", hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid %s reference", root),
			Detail:   fmt.Sprintf("The %s argument must be a reference such as %s, not a value or expression.", attrName, example),
			Subject:  expr.Range().Ptr(),
		}}
	}
	attr, ok := traversal[1].(hcl.TraverseAttr)
	if !ok {
		return "", hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid %s reference", root),
			Detail:   fmt.Sprintf("Write %s; an index is not supported here.", example),
			Subject:  expr.Range().Ptr(),
		}}
	}
	return attr.Name, nil
}

// exprIsSet reports whether an optional expression-typed attribute was
// written in the file; gohcl fills absent ones with a static null.
func exprIsSet(expr hcl.Expression) bool {
	if expr == nil {
		return false
	}
	if len(expr.Variables()) > 0 {
		return true
	}
	value, diags := expr.Value(nil)
	return diags.HasErrors() || !value.IsNull()
}

// withHints adds a fix to diagnostics that HCL itself produces with only
// a description of the problem. It matches HCL's own summaries, which are
// part of its API surface, and never drops or reorders anything.
func withHints(diags hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range diags {
		switch d.Summary {
		case "Unsuitable value type", "Incorrect attribute value type":
			d.Detail += ". Numbers and booleans are written without quotes (replicas = 2, debug = false), lists as [\"a\", \"b\"], maps as { KEY = \"value\" }."
		case "Invalid template interpolation value":
			if strings.Contains(d.Detail, "have secret") {
				d.Detail += " Secrets cannot be interpolated into strings, where their value would end up in rendered files; assign the secret to an argument that takes one (password, secret_key, ...) and the container receives it at deploy time."
			}
		case "Unsupported argument", "Unsupported block type":
			d.Detail += " stacks/obcms.hcl shows every block and argument the language accepts."
		}
	}
	return diags
}
