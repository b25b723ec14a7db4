package hcl

import (
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// outsideReads are the values a stack read from outside its own text:
// what file() returned and what env() found. They may be secrets (a
// key file, a token in the environment), and a diagnostic may quote
// them: a function's error quotes its argument (cty's `cannot convert
// "…" to number`), and HCL prints the values of the variables an
// expression uses ("with local.x as …"). Diagnostics are redacted of
// them before they are printed.
type outsideReads struct {
	values []string
	// pieces are what redact replaces, longest first, made from the
	// first counted values.
	pieces  []string
	counted int
}

// recording is f, noting each string it returns as read from outside.
func (o *outsideReads) recording(f function.Function) function.Function {
	return function.New(&function.Spec{
		Description: f.Description(),
		Params:      f.Params(),
		VarParam:    f.VarParam(),
		Type:        f.ReturnTypeForValues,
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v, err := f.Call(args)
			if err == nil && v.IsKnown() && !v.IsNull() && v.Type() == cty.String {
				o.values = append(o.values, v.AsString())
			}
			return v, err
		},
	})
}

// minRedacted is the shortest text redacted: shorter ones ("1", "yes")
// would blank words of the message that are not the value.
const minRedacted = 4

// redacted stands where a value read from outside was.
const redacted = "(redacted: a value read by file() or env())"

// redact replaces in s every value read from outside, whole, trimmed,
// line by line, and as Go would quote it, longest first.
func (o *outsideReads) redact(s string) string {
	if o == nil || len(o.values) == 0 {
		return s
	}
	for _, p := range o.redactedPieces() {
		s = strings.ReplaceAll(s, p, redacted)
	}
	return s
}

// redactedPieces are the texts redact replaces, made again only when
// more values were read since.
func (o *outsideReads) redactedPieces() []string {
	if o.counted == len(o.values) {
		return o.pieces
	}
	var parts []string
	for _, v := range o.values {
		parts = append(parts, v, strings.TrimSpace(v))
		for _, line := range strings.Split(v, "\n") {
			parts = append(parts, strings.TrimSpace(line))
		}
	}
	var pieces []string
	for _, p := range parts {
		if len(p) < minRedacted {
			continue
		}
		quoted := strconv.Quote(p)
		pieces = append(pieces, p, quoted[1:len(quoted)-1])
	}
	slices.SortFunc(pieces, func(a, b string) int { return len(b) - len(a) })
	o.pieces, o.counted = slices.Compact(pieces), len(o.values)
	return o.pieces
}

// redactDiagnostics redacts the summary and detail of each diagnostic.
func (o *outsideReads) redactDiagnostics(diags hcl.Diagnostics) {
	for _, d := range diags {
		d.Summary, d.Detail = o.redact(d.Summary), o.redact(d.Detail)
	}
}
