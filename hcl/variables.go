package hcl

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// variableBlock is `variable "name" { type, default, description, validation {} }`.
type variableBlock struct {
	Type        hcl.Expression    `hcl:"type,optional"`
	Default     cty.Value         `hcl:"default,optional"`
	Description string            `hcl:"description,optional"`
	Validations []validationBlock `hcl:"validation,block"`
	DeclRange   hcl.Range         `hcl:",def_range"`
}

type validationBlock struct {
	Condition    hcl.Expression `hcl:"condition"`
	ErrorMessage string         `hcl:"error_message"`
}

// evalVariables gives every variable its value: --var, then
// OBCD_VAR_<NAME>, then the default; converts it to the declared type;
// and runs its validation rules.
func (d *decoder) evalVariables() {
	d.vars = map[string]cty.Value{}
	decoded := map[string]*variableBlock{}
	for _, block := range d.blocks[blockVariable] {
		name := block.Labels[0]
		if _, dup := decoded[name]; dup {
			continue
		}
		var v variableBlock
		d.addDiags(gohcl.DecodeBody(block.Body, nil, &v))
		decoded[name] = &v
		d.vars[name] = d.variableValue(name, &v)
	}
	for _, name := range slices.Sorted(maps.Keys(d.opts.Vars)) {
		if _, declared := decoded[name]; !declared {
			known := "none"
			if len(decoded) > 0 {
				known = strings.Join(slices.Sorted(maps.Keys(decoded)), ", ")
			}
			detail := fmt.Sprintf("--var %s: the stack file declares no variable %q (it declares: %s).", name, name, known)
			if s := nameSuggestion(name, slices.Collect(maps.Keys(decoded))); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			d.addDiags(hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Undeclared variable",
				Detail:   detail + fmt.Sprintf(" Declare it with variable %q { ... }, or fix the name.", name),
			}})
		}
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{rootVar: cty.ObjectVal(d.vars)},
		Functions: d.funcs,
	}
	for _, name := range slices.Sorted(maps.Keys(decoded)) {
		for _, rule := range decoded[name].Validations {
			d.checkValidation(name, rule, ctx)
		}
	}
}

func (d *decoder) variableValue(name string, v *variableBlock) cty.Value {
	ty := cty.DynamicPseudoType
	if exprIsSet(v.Type) {
		var diags hcl.Diagnostics
		ty, diags = typeexpr.TypeConstraint(v.Type)
		if diags.HasErrors() {
			d.addDiags(diags)
			return cty.DynamicVal
		}
	}

	value, source, subject := v.Default, "default", v.DeclRange
	if raw, ok := d.rawVariable(name); ok {
		parsed, diags := parseVariable(raw.value, raw.source, ty)
		if diags.HasErrors() {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Invalid value for variable %q", name),
				Detail:   fmt.Sprintf("The value given by %s could not be parsed: %s", raw.source, diags[0].Detail),
				Subject:  subject.Ptr(),
			})
			return cty.DynamicVal
		}
		value, source = parsed, raw.source
	}
	if value.IsNull() {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("No value for variable %q", name),
			Detail: fmt.Sprintf("Variable %q has no default. Give it one in the block, pass --var %s=VALUE, or export %s.",
				name, name, varEnvName(name)),
			Subject: subject.Ptr(),
		})
		return cty.DynamicVal
	}
	converted, err := convert.Convert(value, ty)
	if err != nil {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid value for variable %q", name),
			Detail: fmt.Sprintf("The value from %s does not match the declared type %s: %s.",
				source, typeexpr.TypeString(ty), err),
			Subject: subject.Ptr(),
		})
		return cty.DynamicVal
	}
	return converted
}

type rawValue struct{ value, source string }

func (d *decoder) rawVariable(name string) (rawValue, bool) {
	if v, ok := d.opts.Vars[name]; ok {
		return rawValue{v, "--var " + name}, true
	}
	if v, ok := d.opts.LookupEnv(varEnvName(name)); ok {
		return rawValue{v, varEnvName(name)}, true
	}
	return rawValue{}, false
}

// parseVariable reads a value given on the command line or in the
// environment: taken literally for string and untyped variables, and as
// an HCL expression (["a", "b"], 3, true) for any other type.
func parseVariable(raw, source string, ty cty.Type) (cty.Value, hcl.Diagnostics) {
	if ty == cty.String || ty == cty.DynamicPseudoType {
		return cty.StringVal(raw), nil
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), source, hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	return expr.Value(nil)
}

func (d *decoder) checkValidation(name string, rule validationBlock, ctx *hcl.EvalContext) {
	result, diags := rule.Condition.Value(ctx)
	if diags.HasErrors() {
		d.addDiags(diags)
		return
	}
	if !result.IsKnown() || d.vars[name] == cty.DynamicVal {
		return
	}
	ok, err := convert.Convert(result, cty.Bool)
	if err != nil || ok.IsNull() {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid validation condition",
			Detail:   "A validation condition must evaluate to true or false.",
			Subject:  rule.Condition.Range().Ptr(),
		})
		return
	}
	if ok.True() {
		return
	}
	message := strings.TrimSpace(rule.ErrorMessage)
	if message == "" {
		message = "The value does not satisfy this rule."
	}
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Invalid value for variable %q", name),
		Detail: fmt.Sprintf("%s Set another value with --var %s=VALUE or %s, or change the default.",
			message, name, varEnvName(name)),
		Subject: rule.Condition.Range().Ptr(),
	})
}

func varEnvName(name string) string {
	return "OBCD_VAR_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}
