package hcl

import (
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// evalLocals evaluates every local value in dependency order, in time
// linear in the locals and their references: the dependency graph is
// built once, each local is evaluated once it has no unevaluated
// dependency (Kahn's algorithm), and in a context holding only the
// locals it references. Locals left over are in a cycle.
func (d *decoder) evalLocals() {
	pending := map[string]*hcl.Attribute{}
	for _, block := range d.blocks[blockLocals] {
		attrs, _ := block.Body.JustAttributes()
		for name, attr := range attrs {
			if _, dup := pending[name]; !dup {
				pending[name] = attr
			}
		}
	}
	d.locals = map[string]cty.Value{}
	deps := map[string][]string{}       // local → the locals it references
	waiting := map[string]int{}         // local → how many of those are not evaluated yet
	dependents := map[string][]string{} // local → the locals that reference it
	names := slices.Sorted(maps.Keys(pending))
	for _, name := range names {
		seen := map[string]bool{}
		for _, traversal := range pending[name].Expr.Variables() {
			if traversal.RootName() != rootLocal || len(traversal) < 2 {
				continue
			}
			step, ok := traversal[1].(hcl.TraverseAttr)
			if _, declared := pending[step.Name]; !ok || !declared || seen[step.Name] {
				continue
			}
			seen[step.Name] = true
			deps[name] = append(deps[name], step.Name)
			dependents[step.Name] = append(dependents[step.Name], name)
		}
		waiting[name] = len(deps[name])
	}
	var ready []string
	for _, name := range names {
		if waiting[name] == 0 {
			ready = append(ready, name)
		}
	}
	vars, env := cty.ObjectVal(d.vars), cty.ObjectVal(d.environment)
	for len(ready) > 0 {
		name := ready[0]
		ready = ready[1:]
		d.locals[name] = d.evalLocal(pending[name], deps[name], vars, env)
		delete(pending, name)
		for _, dependent := range dependents[name] {
			if waiting[dependent]--; waiting[dependent] == 0 {
				ready = append(ready, dependent)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pending)) {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Cycle in local values",
			Detail:   fmt.Sprintf("local.%s depends, directly or through other locals, on itself. Break the cycle by computing one of them from variables instead.", name),
			Subject:  pending[name].NameRange.Ptr(),
		})
		d.locals[name] = cty.DynamicVal
	}
}

// evalLocal evaluates one local with the values of the locals it
// references, all evaluated already.
func (d *decoder) evalLocal(attr *hcl.Attribute, deps []string, vars, env cty.Value) cty.Value {
	known := make(map[string]cty.Value, len(deps))
	for _, dep := range deps {
		known[dep] = d.locals[dep]
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{
			rootVar:         vars,
			rootLocal:       cty.ObjectVal(known),
			rootEnvironment: env,
		},
		Functions: d.funcs,
	}
	value, diags := attr.Expr.Value(ctx)
	d.addDiags(diags)
	if diags.HasErrors() {
		return cty.DynamicVal
	}
	return value
}
