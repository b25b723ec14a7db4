package hcl

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

var expressionType = reflect.TypeOf((*hcl.Expression)(nil)).Elem()

// decodeExpr decodes one expression into a Go value; an hcl.Expression
// target receives the expression itself, for later, typed resolution.
func decodeExpr(expr hcl.Expression, ctx *hcl.EvalContext, target any) hcl.Diagnostics {
	if p, ok := target.(*hcl.Expression); ok {
		*p = expr
		return nil
	}
	return gohcl.DecodeExpression(expr, ctx, target)
}

// applyOverride decodes the attributes of an environment's override block
// over already-decoded targets: each attribute replaces the field with the
// same hcl tag in whichever target declares it. Override blocks set
// attributes only; nested blocks are rejected with a hint.
func applyOverride(block *hcl.Block, ctx *hcl.EvalContext, ranges map[string]hcl.Range, targets ...any) hcl.Diagnostics {
	fields := map[string]reflect.Value{}
	schema := &hcl.BodySchema{}
	for _, target := range targets {
		v := reflect.ValueOf(target).Elem()
		for i := 0; i < v.NumField(); i++ {
			name, kind := hclTag(v.Type().Field(i))
			if kind != "attr" && kind != "optional" {
				continue
			}
			fields[name] = v.Field(i)
			schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: name})
		}
	}
	content, diags := block.Body.Content(schema)
	for _, d := range diags {
		if d.Summary == "Unsupported block type" {
			d.Detail += " An environment override may only set attributes; put nested blocks in the service itself."
		}
	}
	for _, name := range slices.Sorted(maps.Keys(content.Attributes)) {
		attr := content.Attributes[name]
		field := fields[name]
		if field.Type() == expressionType {
			field.Set(reflect.ValueOf(attr.Expr))
		} else {
			fresh := reflect.New(field.Type())
			d := gohcl.DecodeExpression(attr.Expr, ctx, fresh.Interface())
			diags = append(diags, d...)
			if !d.HasErrors() {
				field.Set(fresh.Elem())
			}
		}
		if ranges != nil {
			ranges[name] = attr.Range
		}
	}
	return diags
}

// hclTag returns a struct field's hcl name and its first option.
func hclTag(field reflect.StructField) (name, kind string) {
	tag, ok := field.Tag.Lookup("hcl")
	if !ok {
		return "", ""
	}
	name, kind, _ = strings.Cut(tag, ",")
	if kind == "" {
		kind = "attr"
	}
	return name, kind
}

// attrRanges returns where each attribute of a native-syntax body is
// written, so checks can point at the exact line.
func attrRanges(body hcl.Body) map[string]hcl.Range {
	ranges := map[string]hcl.Range{}
	syntaxBody, ok := body.(*hclsyntax.Body)
	if !ok {
		return ranges
	}
	for name, attr := range syntaxBody.Attributes {
		ranges[name] = attr.SrcRange
	}
	return ranges
}

// nestedRanges adds to ranges, for each named nested block of body, the
// block itself (key "metrics") and its attributes (key "metrics.enabled").
func nestedRanges(body hcl.Body, ranges map[string]hcl.Range, blockTypes ...string) {
	syntaxBody, ok := body.(*hclsyntax.Body)
	if !ok {
		return
	}
	for _, block := range syntaxBody.Blocks {
		for _, want := range blockTypes {
			if block.Type != want {
				continue
			}
			ranges[want] = block.DefRange()
			for name, attr := range block.Body.Attributes {
				ranges[want+"."+name] = attr.SrcRange
			}
		}
	}
}

// resolveService resolves an expression that must reference a declared
// service of one of the wanted kinds, and returns its name.
func (d *decoder) resolveService(expr hcl.Expression, attrName string, want ...Kind) string {
	if !exprIsSet(expr) {
		return ""
	}
	name, diags := refName(expr, rootService, attrName, "service."+exampleServiceName(want))
	if diags.HasErrors() {
		d.addDiags(diags)
		return ""
	}
	header, ok := d.declared.services[name]
	if !ok {
		return "" // already reported by checkReferences
	}
	for _, kind := range want {
		if header.kind == kind {
			return name
		}
	}
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Wrong kind of service",
		Detail: fmt.Sprintf("The %s argument needs a %s service, but service %q is a %s (declared at %s).",
			attrName, joinKinds(want), name, header.kind, at(header.declRange)),
		Subject: expr.Range().Ptr(),
	})
	return ""
}

// resolveSecret resolves an expression that must reference a declared
// secret, and returns its name.
func (d *decoder) resolveSecret(expr hcl.Expression, attrName string) string {
	if !exprIsSet(expr) {
		return ""
	}
	name, diags := refName(expr, rootSecret, attrName, "secret."+attrName)
	if diags.HasErrors() {
		for _, diag := range diags {
			diag.Detail += " Credentials never belong in the stack file: declare secret \"name\" {} and let obcd secrets init generate its value."
		}
		d.addDiags(diags)
		return ""
	}
	return name
}

func exampleServiceName(kinds []Kind) string {
	if len(kinds) == 0 {
		return "name"
	}
	return strings.ReplaceAll(string(kinds[0]), "_", "-")
}

func joinKinds(kinds []Kind) string {
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = string(k)
	}
	return strings.Join(parts, " or ")
}

// checkSchema reports unknown or missing arguments and blocks of a body
// decoded in several parts (common arguments plus a kind's own), against
// the union of their schemas, so a typo's suggestion draws on every name
// the block accepts. It returns the subjects it reported, so the same
// problem found again by each part's decode can be dropped.
func checkSchema(body hcl.Body, targets ...any) (hcl.Diagnostics, []hcl.Range) {
	merged := &hcl.BodySchema{}
	for _, target := range targets {
		schema, _ := gohcl.ImpliedBodySchema(target)
		merged.Attributes = append(merged.Attributes, schema.Attributes...)
		merged.Blocks = append(merged.Blocks, schema.Blocks...)
	}
	_, diags := body.Content(merged)
	var subjects []hcl.Range
	for _, d := range diags {
		if d.Subject != nil {
			subjects = append(subjects, *d.Subject)
		}
	}
	return diags, subjects
}
