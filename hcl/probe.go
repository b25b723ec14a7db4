package hcl

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// ProbeConfig is a `probe "name" { ... }` block: it tunes one of the
// probes obcd derives from the stack (same name), or adds a new one.
// Every field is optional; nil means "keep the default".
type ProbeConfig struct {
	Name             string
	Type             *string // http | metrics | postgres | redis | prometheus | alertmanager | grafana | celery | container
	Target           string  // service name, "" when not set
	URL              *string // absolute URL; otherwise the target's address or the public URL
	Path             *string
	Enabled          *bool
	Critical         *bool
	Timeout          *string
	Interval         *string
	StartPeriod      *string
	SuccessThreshold *int

	// http
	ExpectStatus    *int
	ExpectJSON      json.RawMessage // object of expected fields; nil when not set
	ExpectBody      *string
	ExpectHeaders   map[string]string
	RedirectToHTTPS *bool
	BadHostRejected *bool
	CSRFToken       *bool
	ThrottleAfter   *int    // requests until a 429 is expected
	CORSOrigin      *string // preflight from this origin must be allowed
	Insecure        *bool   // skip TLS verification (self-signed test certificates)

	// postgres
	MaxLagBytes        *int
	ExpectedMigrations *int

	DeclRange hcl.Range
}

type probeBlock struct {
	Type               *string           `hcl:"type,optional"`
	Target             hcl.Expression    `hcl:"target,optional"`
	URL                *string           `hcl:"url,optional"`
	Path               *string           `hcl:"path,optional"`
	Enabled            *bool             `hcl:"enabled,optional"`
	Critical           *bool             `hcl:"critical,optional"`
	Timeout            *string           `hcl:"timeout,optional"`
	Interval           *string           `hcl:"interval,optional"`
	StartPeriod        *string           `hcl:"start_period,optional"`
	SuccessThreshold   *int              `hcl:"success_threshold,optional"`
	ExpectStatus       *int              `hcl:"expect_status,optional"`
	ExpectJSON         hcl.Expression    `hcl:"expect_json,optional"`
	ExpectBody         *string           `hcl:"expect_body,optional"`
	ExpectHeaders      map[string]string `hcl:"expect_headers,optional"`
	RedirectToHTTPS    *bool             `hcl:"redirect_to_https,optional"`
	BadHostRejected    *bool             `hcl:"bad_host_rejected,optional"`
	CSRFToken          *bool             `hcl:"csrf_token,optional"`
	ThrottleAfter      *int              `hcl:"throttle_after,optional"`
	CORSOrigin         *string           `hcl:"cors_origin,optional"`
	Insecure           *bool             `hcl:"insecure,optional"`
	MaxLagBytes        *int              `hcl:"max_lag_bytes,optional"`
	ExpectedMigrations *int              `hcl:"expected_migrations,optional"`
}

// ProbeTypes are the probe kinds a probe block may name.
var ProbeTypes = []string{"http", "metrics", "postgres", "redis", "prometheus", "alertmanager", "grafana", "celery", "container"}

func (d *decoder) decodeProbes(ctx *hcl.EvalContext) []*ProbeConfig {
	var out []*ProbeConfig
	seen := map[string]hcl.Range{}
	for _, block := range d.blocks[blockProbe] {
		name := block.Labels[0]
		if first, dup := seen[name]; dup {
			d.diags = append(d.diags, duplicate("probe", name, first, block.DefRange))
			continue
		}
		seen[name] = block.DefRange
		var pb probeBlock
		d.addDiags(gohcl.DecodeBody(block.Body, ctx, &pb))
		if override := d.overrides.probes[name]; override != nil {
			d.addDiags(applyOverride(override, ctx, nil, &pb))
		}
		out = append(out, d.probeConfig(name, &pb, block))
	}
	// An environment may tune a derived probe that the file never names.
	for _, name := range slices.Sorted(maps.Keys(d.overrides.probes)) {
		if _, ok := seen[name]; ok {
			continue
		}
		block := d.overrides.probes[name]
		var pb probeBlock
		d.addDiags(gohcl.DecodeBody(block.Body, ctx, &pb))
		out = append(out, d.probeConfig(name, &pb, block))
	}
	return out
}

func isDuration(s string) bool {
	_, err := time.ParseDuration(s)
	return err == nil
}

func (d *decoder) probeConfig(name string, pb *probeBlock, block *hcl.Block) *ProbeConfig {
	pc := &ProbeConfig{
		Name: name, Type: pb.Type, URL: pb.URL, Path: pb.Path, Enabled: pb.Enabled, Critical: pb.Critical,
		Timeout: pb.Timeout, Interval: pb.Interval, StartPeriod: pb.StartPeriod, SuccessThreshold: pb.SuccessThreshold,
		ExpectStatus: pb.ExpectStatus, ExpectBody: pb.ExpectBody, ExpectHeaders: pb.ExpectHeaders,
		RedirectToHTTPS: pb.RedirectToHTTPS, BadHostRejected: pb.BadHostRejected, CSRFToken: pb.CSRFToken,
		ThrottleAfter: pb.ThrottleAfter, CORSOrigin: pb.CORSOrigin, Insecure: pb.Insecure,
		MaxLagBytes: pb.MaxLagBytes, ExpectedMigrations: pb.ExpectedMigrations,
		DeclRange: block.DefRange,
	}
	if pb.URL != nil {
		if u, err := url.Parse(*pb.URL); err != nil || u.Scheme == "" || u.Hostname() == "" {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid probe url",
				Detail:   fmt.Sprintf("Probe %q: url %q is not an absolute URL with a scheme and a host, such as https://obcms.example.org/health/.", name, *pb.URL),
				Subject:  block.DefRange.Ptr(),
			})
		}
	}
	if exprIsSet(pb.Target) {
		pc.Target = d.resolveService(pb.Target, "target", Kinds...)
	}
	if pb.Type != nil && !oneOf(*pb.Type, ProbeTypes) {
		d.diags = append(d.diags, attrDiag(block.Body, "type", "Unknown probe type",
			fmt.Sprintf("%q is not a probe type. Types: %s.", *pb.Type, quoteList(ProbeTypes))))
	}
	for attr, value := range map[string]*string{"timeout": pb.Timeout, "interval": pb.Interval, "start_period": pb.StartPeriod} {
		if value != nil && !isDuration(*value) {
			d.diags = append(d.diags, attrDiag(block.Body, attr, "Invalid duration",
				fmt.Sprintf("%q is not a duration; write it as 500ms, 3s or 1m.", *value)))
		}
	}
	if exprIsSet(pb.ExpectJSON) {
		value, diags := pb.ExpectJSON.Value(d.evalContextCache)
		d.addDiags(diags)
		if !diags.HasErrors() {
			if !value.Type().IsObjectType() && !value.Type().IsMapType() {
				d.diags = append(d.diags, attrDiag(block.Body, "expect_json", "Invalid expect_json",
					`expect_json must be an object of expected fields, such as { database = true, cache = true }.`))
			} else if raw, err := ctyjson.Marshal(value, value.Type()); err == nil {
				pc.ExpectJSON = raw
			}
		}
	}
	return pc
}
