package hcl

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// Options controls how a stack file is evaluated.
type Options struct {
	// Environment selects the environment block to evaluate. Required.
	Environment string
	// Vars overrides variable values, as given by --var name=value.
	// A variable not listed here is read from OBCD_VAR_<NAME>, then
	// falls back to its default.
	Vars map[string]string
	// LookupEnv reads the process environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// AppTag, when set, is what every service running the app image
	// deploys instead of the stack's version: a tag of app_image, or a
	// whole image reference with a tag or digest (deploy --image); its
	// tag becomes the release version.
	AppTag string
	// AllowFile are directories file() may read besides the stack
	// file's own (--allow-file DIR).
	AllowFile []string
}

// Loader parses and evaluates stack files, and remembers their sources
// so diagnostics can be printed with snippets.
type Loader struct {
	parser *hclparse.Parser
	opts   Options
	// private are the files readable by their owner alone (0600, 0400):
	// a diagnostic shows no line of one.
	private map[string]bool
	// reads are what file() and env() returned, redacted from diagnostics.
	reads *outsideReads
}

// NewLoader returns a loader that evaluates for the given options.
func NewLoader(opts Options) *Loader {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	return &Loader{parser: hclparse.NewParser(), opts: opts, private: map[string]bool{}, reads: &outsideReads{}}
}

// Load reads, parses and evaluates the stack file at path. It returns
// every problem it finds, not only the first; the stack is nil whenever
// the diagnostics hold an error.
func (l *Loader) Load(path string) (*Stack, hcl.Diagnostics) {
	// Like file(), a stack file is read only if it is a regular file,
	// and only as far as MaxStackSize: --stack /dev/zero or a FIFO must
	// not hang obcd.
	src, err := readRegular(path, path, MaxStackSize)
	if info, serr := os.Stat(path); err == nil && serr == nil && info.Mode().Perm()&0o077 == 0 {
		l.private[path] = true
	}
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read stack file",
			Detail:   fmt.Sprintf("%s. Pass the stack file with --stack FILE, or create obcd.hcl in the current directory (see stacks/obcms.hcl for a complete example).", err),
		}}
	}
	return l.LoadSource(path, src)
}

// LoadSource is Load for a source already in memory.
func (l *Loader) LoadSource(filename string, src []byte) (*Stack, hcl.Diagnostics) {
	if diags := checkSize(filename, src); diags.HasErrors() {
		l.parser.AddFile(filename, &hcl.File{Bytes: src}) // for the diagnostic's snippet
		return nil, diags
	}
	if diags := checkNotSecrets(filename, src); diags.HasErrors() {
		return nil, diags
	}
	if diags := checkNesting(filename, src); diags.HasErrors() {
		l.parser.AddFile(filename, &hcl.File{Bytes: src}) // for the diagnostic's snippet
		return nil, diags
	}
	file, diags := l.parser.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, firstSyntaxError(diags)
	}
	d := newDecoder(filename, l.opts, l.reads)
	stack := d.decode(file.Body)
	diags = append(diags, dropFollowOns(d.diags)...)
	diags = firstDiagnostics(diags)
	l.reads.redactDiagnostics(diags)
	if diags.HasErrors() {
		return nil, diags
	}
	sum := sha256.Sum256(src)
	stack.Digest = hex.EncodeToString(sum[:])
	if l.opts.AppTag != "" {
		if err := stack.useAppImage(l.opts.AppTag); err != nil {
			return nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid --image", Detail: err.Error()})
		}
	}
	return stack, diags
}

// decoder holds the state of one evaluation. Its phases run in order:
// declare names, check references, evaluate variables, select the
// environment, evaluate locals, then decode every block against the full
// evaluation context.
type decoder struct {
	filename string
	opts     Options
	funcs    map[string]function.Function
	diags    hcl.Diagnostics
	reported []hcl.Range

	declared names
	blocks   map[string][]*hcl.Block // top-level blocks by type

	vars        map[string]cty.Value
	locals      map[string]cty.Value
	environment map[string]cty.Value
	envBlock    *hcl.Block
	overrides   overrides
	// evalContextCache is the full context, once built, and
	// localContextCache the one of variables, locals and environment.
	evalContextCache  *hcl.EvalContext
	localContextCache *hcl.EvalContext
}

// overrides are the override blocks of the selected environment.
type overrides struct {
	services   map[string]*hcl.Block
	probes     map[string]*hcl.Block
	django     *hcl.Block
	monitoring *hcl.Block
}

func newDecoder(filename string, opts Options, reads *outsideReads) *decoder {
	return &decoder{
		filename: filename,
		opts:     opts,
		funcs:    functions(filepath.Dir(filename), opts.AllowFile, opts.LookupEnv, reads),
		blocks:   map[string][]*hcl.Block{},
	}
}

func (d *decoder) addDiags(diags hcl.Diagnostics) {
	d.diags = append(d.diags, withHints(dropReported(diags, d.reported))...)
}

func (d *decoder) decode(body hcl.Body) *Stack {
	content, diags := body.Content(rootSchema)
	d.addDiags(diags)
	for _, block := range content.Blocks {
		d.blocks[block.Type] = append(d.blocks[block.Type], block)
	}

	d.declare()
	refDiags, reported := checkReferences(body, &d.declared)
	d.reported = reported
	d.diags = append(d.diags, refDiags...)

	d.evalVariables()
	d.selectEnvironment()
	d.evalLocals()

	stack := &Stack{Environment: d.opts.Environment, File: d.filename}
	stack.Environments = keysOfBlocks(d.blocks[blockEnvironment])
	d.decodeStack(stack)
	stack.Secrets = d.decodeSecrets()
	ctx := d.evalContext()
	d.evalContextCache = ctx
	stack.Services = d.decodeServices(ctx, stack)
	stack.Probes = d.decodeProbes(ctx)
	stack.State = d.decodeState(ctx)
	stack.Waivers = d.decodeWaivers()
	stack.Django = d.decodeDjango(ctx, stack)
	stack.Monitoring = d.decodeMonitoring(ctx)
	d.checkUnusedOverrides()
	if d.diags.HasErrors() {
		return nil
	}
	d.addDiags(validateStack(stack))
	return stack
}

// declare collects every declared name and reports duplicates, pointing
// at both definitions.
func (d *decoder) declare() {
	d.declared = names{
		variables: map[string]hcl.Range{},
		locals:    map[string]hcl.Range{},
		services:  map[string]*serviceHeader{},
		secrets:   map[string]hcl.Range{},
	}
	for _, singleton := range []string{blockStack, blockDjango, blockMonitoring, blockState} {
		blocks := d.blocks[singleton]
		for _, extra := range blocks[min(1, len(blocks)):] {
			d.diags = append(d.diags, duplicate(singleton+" block", "", blocks[0].DefRange, extra.DefRange))
		}
	}
	declareLabeled(d, blockVariable, d.declared.variables)
	declareLabeled(d, blockSecret, d.declared.secrets)
	environments := map[string]hcl.Range{}
	declareLabeled(d, blockEnvironment, environments)
	for _, block := range d.blocks[blockLocals] {
		attrs, diags := block.Body.JustAttributes()
		d.addDiags(diags)
		for _, name := range slices.Sorted(maps.Keys(attrs)) {
			attr := attrs[name]
			if first, ok := d.declared.locals[name]; ok {
				d.diags = append(d.diags, duplicate("local value", name, first, attr.NameRange))
				continue
			}
			d.declared.locals[name] = attr.NameRange
		}
	}
	d.declareServices()
}

func declareLabeled(d *decoder, blockType string, into map[string]hcl.Range) {
	for _, block := range d.blocks[blockType] {
		name := block.Labels[0]
		if first, ok := into[name]; ok {
			d.diags = append(d.diags, duplicate(blockType, name, first, block.DefRange))
			continue
		}
		if !validName(name) {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Invalid %s name", blockType),
				Detail:   fmt.Sprintf("%q is not a valid name. Use lowercase letters, digits, '_' and '-', starting with a letter.", name),
				Subject:  block.LabelRanges[0].Ptr(),
			})
		}
		into[name] = block.DefRange
	}
}

// duplicate reports a second definition, naming the first so the reader
// sees both places.
func duplicate(what, name string, first, second hcl.Range) *hcl.Diagnostic {
	label := what
	if name != "" {
		label = fmt.Sprintf("%s %q", what, name)
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Duplicate " + label,
		Detail: fmt.Sprintf("%s is defined twice: first at %s, again here at %s. Remove one of them, or rename it.",
			capitalize(label), at(first), at(second)),
		Subject: second.Ptr(),
		Extra:   firstPlace{first},
	}
}

// selectEnvironment finds the requested environment block and evaluates
// its own attributes (domain, docker_host).
func (d *decoder) selectEnvironment() {
	envs := d.blocks[blockEnvironment]
	for _, block := range envs {
		if block.Labels[0] == d.opts.Environment {
			d.envBlock = block
			break
		}
	}
	if d.envBlock == nil {
		d.diags = append(d.diags, unknownEnvironment(d.opts.Environment, envs, d.filename))
		d.environment = map[string]cty.Value{
			"name":             cty.StringVal(d.opts.Environment),
			"domain":           cty.StringVal(""),
			"docker_host":      cty.StringVal(""),
			"docker_cert_path": cty.StringVal(""),
			"engine":           cty.StringVal(EngineDocker),
			"public_url":       cty.StringVal(""),
			"watch":            cty.StringVal(DefaultWatch.String()),
			"tier":             cty.StringVal(TierByName(d.opts.Environment)),
		}
		return
	}
	content, diags := d.envBlock.Body.Content(environmentSchema)
	d.addDiags(diags)
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{
			rootVar:         cty.ObjectVal(d.vars),
			rootEnvironment: cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(d.opts.Environment)}),
		},
		Functions: d.funcs,
	}
	d.environment = map[string]cty.Value{
		"name":             cty.StringVal(d.opts.Environment),
		"domain":           d.evalString(content.Attributes["domain"], ctx, ""),
		"docker_host":      d.evalString(content.Attributes["docker_host"], ctx, "unix:///var/run/docker.sock"),
		"docker_cert_path": d.evalString(content.Attributes["docker_cert_path"], ctx, ""),
		"engine":           d.evalString(content.Attributes["engine"], ctx, EngineDocker),
		"watch":            d.evalString(content.Attributes["watch"], ctx, DefaultWatch.String()),
		"tier":             d.evalString(content.Attributes["tier"], ctx, TierByName(d.opts.Environment)),
	}
	domain := d.environment["domain"].AsString()
	d.environment["public_url"] = d.evalString(content.Attributes["public_url"], ctx, "https://"+domain)
	d.checkEnvironment(content)
	d.overrides.services = map[string]*hcl.Block{}
	d.overrides.probes = map[string]*hcl.Block{}
	for _, block := range content.Blocks {
		switch block.Type {
		case blockService:
			name := block.Labels[0]
			if first, ok := d.overrides.services[name]; ok {
				d.diags = append(d.diags, duplicate("override of service", name, first.DefRange, block.DefRange))
				continue
			}
			d.overrides.services[name] = block
		case blockProbe:
			name := block.Labels[0]
			if first, ok := d.overrides.probes[name]; ok {
				d.diags = append(d.diags, duplicate("override of probe", name, first.DefRange, block.DefRange))
				continue
			}
			d.overrides.probes[name] = block
		case blockDjango:
			if d.overrides.django != nil {
				d.diags = append(d.diags, duplicate("django override block", "", d.overrides.django.DefRange, block.DefRange))
				continue
			}
			d.overrides.django = block
		case blockMonitoring:
			if d.overrides.monitoring != nil {
				d.diags = append(d.diags, duplicate("monitoring override block", "", d.overrides.monitoring.DefRange, block.DefRange))
				continue
			}
			d.overrides.monitoring = block
		}
	}
}

func unknownEnvironment(name string, envs []*hcl.Block, filename string) *hcl.Diagnostic {
	declared := keysOfBlocks(envs)
	detail := fmt.Sprintf("The stack file declares no environment %q.", name)
	if s := nameSuggestion(name, declared); s != "" {
		detail += fmt.Sprintf(" Did you mean %q?", s)
	}
	if len(declared) > 0 {
		detail += fmt.Sprintf(" Declared environments: %s.", strings.Join(declared, ", "))
	}
	detail += fmt.Sprintf(` To add it, declare environment %q { domain = "..." } in the stack file.`, name)
	subject := hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}
	if len(envs) > 0 {
		subject = envs[0].DefRange
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Unknown environment %q", name),
		Detail:   detail,
		Subject:  &subject,
	}
}

func (d *decoder) localContext() *hcl.EvalContext {
	// Built once, after the locals: each block is decoded in it, and
	// building it costs as many steps as there are locals.
	if d.localContextCache == nil {
		d.localContextCache = &hcl.EvalContext{
			Variables: map[string]cty.Value{
				rootVar:         cty.ObjectVal(d.vars),
				rootLocal:       cty.ObjectVal(d.locals),
				rootEnvironment: cty.ObjectVal(d.environment),
			},
			Functions: d.funcs,
		}
	}
	return d.localContextCache
}

// evalContext is the full context every block is decoded in.
func (d *decoder) evalContext() *hcl.EvalContext {
	services := map[string]cty.Value{}
	for name, header := range d.declared.services {
		services[name] = cty.ObjectVal(map[string]cty.Value{
			"name": cty.StringVal(name),
			"kind": cty.StringVal(string(header.kind)),
			"host": cty.StringVal(name),
		})
	}
	secrets := map[string]cty.Value{}
	for name := range d.declared.secrets {
		secrets[name] = cty.CapsuleVal(secretRefType, &secretRef{name: name})
	}
	local := d.localContext()
	ctx := &hcl.EvalContext{Variables: maps.Clone(local.Variables), Functions: local.Functions}
	ctx.Variables[rootService] = cty.ObjectVal(services)
	ctx.Variables[rootSecret] = cty.ObjectVal(secrets)
	return ctx
}

// secretRef is what secret.<name> evaluates to: an opaque capsule, so a
// secret can be assigned to a secret-typed argument but never
// interpolated into a string, where its value would leak into output.
type secretRef struct{ name string }

var secretRefType = cty.CapsuleWithOps("secret", reflect.TypeOf(secretRef{}), &cty.CapsuleOps{
	GoString: func(v interface{}) string { return "secret." + v.(*secretRef).name },
	TypeGoString: func(reflect.Type) string {
		return "secret"
	},
})

func (d *decoder) evalString(attr *hcl.Attribute, ctx *hcl.EvalContext, fallback string) cty.Value {
	if attr == nil {
		return cty.StringVal(fallback)
	}
	var s string
	d.addDiags(decodeExpr(attr.Expr, ctx, &s))
	return cty.StringVal(s)
}

func (d *decoder) checkUnusedOverrides() {
	for _, name := range slices.Sorted(maps.Keys(d.overrides.services)) {
		if _, ok := d.declared.services[name]; ok {
			continue
		}
		block := d.overrides.services[name]
		detail := fmt.Sprintf("Environment %q overrides service %q, but no such service is declared.", d.opts.Environment, name)
		if s := nameSuggestion(name, slices.Sorted(maps.Keys(d.declared.services))); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Reference to undeclared service",
			Detail:   detail + " Overrides name a service by its name, the second label of its block.",
			Subject:  block.LabelRanges[0].Ptr(),
		})
	}
}

func keysOfBlocks(blocks []*hcl.Block) []string {
	seen := map[string]bool{}
	var out []string
	for _, b := range blocks {
		if len(b.Labels) > 0 && !seen[b.Labels[0]] {
			seen[b.Labels[0]] = true
			out = append(out, b.Labels[0])
		}
	}
	sort.Strings(out)
	return out
}

func validName(name string) bool {
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
