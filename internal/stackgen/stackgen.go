// Package stackgen builds random but well-formed stack files for the
// structure-aware fuzzer: it parses real stacks with hclwrite and, driven
// by the fuzzer's bytes, sets, copies, removes and duplicates their
// attributes and blocks, adds environment overrides and chains of
// locals, and repeats blocks up to megabytes. Every file it writes
// parses as HCL; what it means is for the loader and the gate to judge.
package stackgen

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Generator mutates seed stacks. Build one with New; it is not safe for
// concurrent use.
type Generator struct {
	seeds [][]byte
	// names are the attribute names the seeds use, and values the
	// expressions they give them, as source text: what a mutation sets.
	names  []string
	values []string
}

// extraValues are expressions the seeds do not hold that a demanding
// user (or a hostile one) would write: edges of every type, references
// that resolve and ones that do not, functions, and strings that break
// a URL, a config file or a shell.
var extraValues = []string{
	`0`, `1`, `-1`, `2`, `1000`, `1001`, `1000000`, `1.5`, `true`, `false`, `null`,
	`""`, `" "`, `"x"`, `"0s"`, `"-1s"`, `"2h"`, `"60s"`, `"eighty:80"`, `"99999:443"`, `"127.0.0.1:8080:80"`, `"-80"`,
	`"obcms/app:1.0"`, `"UPPER/Case"`, `"a\u202eb"`, `"x.example.org; } server {"`, `"` + strings.Repeat("a", 70) + `.example.org"`,
	`"ftp://engine.example"`, `"ssh://deploy@10.0.0.5"`, `"production"`, `"staging"`, `"development"`, `"prod"`,
	`"${environment.domain}"`, `"https://${environment.domain}"`, `environment.name`, `environment.tier`,
	`var.nope`, `local.nope`, `service.nope`, `secret.nope`, `upper("x")`, `format("%s-%d", "a", 1)`,
	`try(local.nope, "fallback")`, `coalesce("", "x")`, `jsonencode({a = 1})`, `file("nope.txt")`, `file("/etc/hostname")`,
	`env("HOME")`, `[]`, `["a", "b"]`, `[1, 2, 3]`, `{}`, `{ A = "b" }`, `{ PASSWORD = "hunter2" }`, `{ "x-y" = 1 }`,
	`"' \" \\ $ % @ / : ? # & ;"`, `"${"nested"}"`, `tostring(1)`, `tonumber("x")`, `length([1, 2])`,
}

var emptyBlock = regexp.MustCompile(`\{\}[ \t]*(\r?\n|$)`)

// New reads the names and values of seeds, which must parse as HCL.
func New(seeds ...[]byte) (*Generator, error) {
	g := &Generator{}
	for _, seed := range seeds {
		// An empty block on one line ({}) cannot take an attribute:
		// hclwrite would write one inside it on the same line.
		g.seeds = append(g.seeds, emptyBlock.ReplaceAll(seed, []byte("{\n}")))
	}
	seeds = g.seeds
	seenName, seenValue := map[string]bool{}, map[string]bool{}
	for i, seed := range seeds {
		file, diags := hclwrite.ParseConfig(seed, fmt.Sprintf("seed%d.hcl", i), hcl.InitialPos)
		if diags.HasErrors() {
			return nil, fmt.Errorf("seed %d: %s", i, diags.Error())
		}
		walk(file.Body(), func(body *hclwrite.Body) {
			for name, attr := range body.Attributes() {
				if !seenName[name] {
					seenName[name] = true
					g.names = append(g.names, name)
				}
				value := strings.TrimSpace(string(attr.Expr().BuildTokens(nil).Bytes()))
				if !seenValue[value] {
					seenValue[value] = true
					g.values = append(g.values, value)
				}
			}
		})
	}
	slices.Sort(g.names)
	slices.Sort(g.values)
	g.values = append(g.values, extraValues...)
	return g, nil
}

// walk calls fn on body and every body nested in it.
func walk(body *hclwrite.Body, fn func(*hclwrite.Body)) {
	fn(body)
	for _, block := range body.Blocks() {
		walk(block.Body(), fn)
	}
}

// bodies lists body and every body nested in it, in order.
func bodies(body *hclwrite.Body) []*hclwrite.Body {
	var out []*hclwrite.Body
	walk(body, func(b *hclwrite.Body) { out = append(out, b) })
	return out
}

// source reads the fuzzer's bytes as choices; when they run out, every
// choice is 0.
type source struct {
	data []byte
	at   int
}

func (s *source) byte() int {
	if s.at >= len(s.data) {
		return 0
	}
	b := s.data[s.at]
	s.at++
	return int(b)
}

// pick is a choice in [0, n).
func (s *source) pick(n int) int {
	if n <= 0 {
		return 0
	}
	return (s.byte()<<8 | s.byte()) % n
}

func (s *source) done() bool { return s.at >= len(s.data) }

// MaxSize is where Generate stops growing a stack: a little past the
// 2 MiB the loader accepts (hcl.MaxStackSize), so that the refusal is
// fuzzed too; past that, a run would spend its time generating.
const MaxSize = 4 << 20

// Generate builds one stack file from choices: a seed, then mutations
// until the choices run out (at most 64). The result parses as HCL.
func (g *Generator) Generate(choices []byte) []byte {
	src := &source{data: choices}
	file, diags := hclwrite.ParseConfig(g.seeds[src.pick(len(g.seeds))], "seed.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		panic("stackgen: a seed stopped parsing: " + diags.Error())
	}
	for n := 0; n < 64 && !src.done(); n++ {
		if grew := g.mutate(src, file.Body()); grew && len(file.Bytes()) > MaxSize {
			break
		}
	}
	return hclwrite.Format(file.Bytes())
}

// mutate makes one change, and says whether it may have grown the stack
// by more than a line.
func (g *Generator) mutate(src *source, root *hclwrite.Body) (grew bool) {
	all := bodies(root)
	body := all[src.pick(len(all))]
	switch src.pick(9) {
	case 0, 1: // set an attribute the block has, or any known one, to a value
		body.SetAttributeRaw(g.attrName(src, body), raw(g.values[src.pick(len(g.values))]))
	case 2: // copy an attribute's value to another attribute
		if name, other := g.attrName(src, body), g.attrName(src, body); body.GetAttribute(other) != nil {
			body.SetAttributeRaw(name, body.GetAttribute(other).Expr().BuildTokens(nil))
		}
	case 3: // remove an attribute
		if names := sortedAttrs(body); len(names) > 0 {
			body.RemoveAttribute(names[src.pick(len(names))])
		}
	case 4: // remove a block
		if blocks := body.Blocks(); len(blocks) > 0 {
			body.RemoveBlock(blocks[src.pick(len(blocks))])
		}
	case 5: // duplicate a top-level block, with the same labels or new ones
		grew = true
		if blocks := root.Blocks(); len(blocks) > 0 {
			copyBlock(root, blocks[src.pick(len(blocks))], src.pick(3) == 0, src.pick(1000))
		}
	case 6: // an environment override of a service's attribute
		g.override(src, root)
	case 7: // a chain of locals, up to tens of thousands long
		grew = true
		chain(root, src.pick(4), 1<<src.pick(15))
	case 8: // repeat a block many times under new labels: size
		grew = true
		if blocks := root.Blocks(); len(blocks) > 0 {
			block := blocks[src.pick(len(blocks))]
			for i, n := 0, 1<<src.pick(11); i < n; i++ {
				copyBlock(root, block, false, i)
			}
		}
	}
	return grew
}

// attrName is one of the block's attributes, or any name the seeds use.
func (g *Generator) attrName(src *source, body *hclwrite.Body) string {
	if names := sortedAttrs(body); len(names) > 0 && src.pick(2) == 0 {
		return names[src.pick(len(names))]
	}
	return g.names[src.pick(len(g.names))]
}

func sortedAttrs(body *hclwrite.Body) []string {
	var names []string
	for name := range body.Attributes() {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// override adds, to a random environment, an override block of a random
// service that sets one attribute.
func (g *Generator) override(src *source, root *hclwrite.Body) {
	var envs, services []*hclwrite.Block
	for _, b := range root.Blocks() {
		switch {
		case b.Type() == "environment":
			envs = append(envs, b)
		case b.Type() == "service" && len(b.Labels()) == 2:
			services = append(services, b)
		}
	}
	if len(envs) == 0 || len(services) == 0 {
		return
	}
	env, svc := envs[src.pick(len(envs))], services[src.pick(len(services))]
	override := env.Body().AppendNewBlock("service", []string{svc.Labels()[1]})
	override.Body().SetAttributeRaw(g.names[src.pick(len(g.names))], raw(g.values[src.pick(len(g.values))]))
}

// copyBlock appends a copy of block to root: with its labels, or with its
// last label given a suffix.
func copyBlock(root *hclwrite.Body, block *hclwrite.Block, sameLabels bool, suffix int) {
	labels := slices.Clone(block.Labels())
	if !sameLabels && len(labels) > 0 {
		labels[len(labels)-1] = fmt.Sprintf("%s-%d", labels[len(labels)-1], suffix)
	}
	file, diags := hclwrite.ParseConfig(block.BuildTokens(nil).Bytes(), "block.hcl", hcl.InitialPos)
	if diags.HasErrors() || len(file.Body().Blocks()) != 1 {
		return
	}
	copied := file.Body().Blocks()[0]
	copied.SetLabels(labels)
	root.AppendBlock(copied)
}

// chain appends a locals block of n locals, each referencing the one
// before it, of one of a few shapes. It is written as text and parsed
// once: setting n attributes one by one costs n² in hclwrite.
func chain(root *hclwrite.Body, shape, n int) {
	var b strings.Builder
	prefix := fmt.Sprintf("gen%d_%d", shape, n)
	fmt.Fprintf(&b, "locals {\n  %s_0 = \"start\"\n", prefix)
	for i := 1; i < n; i++ {
		prev := fmt.Sprintf("local.%s_%d", prefix, i-1)
		var expr string
		switch shape {
		case 0:
			expr = prev
		case 1:
			expr = fmt.Sprintf(`"${%s}x"`, prev)
		case 2:
			expr = fmt.Sprintf(`[%s]`, prev)
		default:
			expr = fmt.Sprintf(`{ v = %s }`, prev)
		}
		fmt.Fprintf(&b, "  %s_%d = %s\n", prefix, i, expr)
	}
	b.WriteString("}\n")
	file, diags := hclwrite.ParseConfig([]byte(b.String()), "locals.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		panic("stackgen: a chain of locals does not parse: " + diags.Error())
	}
	root.AppendBlock(file.Body().Blocks()[0])
}

// raw is src as the tokens of an expression.
func raw(src string) hclwrite.Tokens {
	return hclwrite.Tokens{{Type: hclsyntax.TokenIdent, Bytes: []byte(src)}}
}
