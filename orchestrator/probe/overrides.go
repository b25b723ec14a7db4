package probe

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"
)

// overrides.go applies the stack's probe blocks to the derived probes: tuning, turning off and adding probes.

// applyOverrides applies the stack's probe blocks, in file order.
func (b *builder) applyOverrides() error {
	for _, pc := range b.stack.Probes {
		i := b.find(pc.Name)
		if i < 0 {
			d, err := b.newDraft(pc)
			if err != nil {
				return err
			}
			b.drafts = append(b.drafts, d)
			i = len(b.drafts) - 1
			b.unskip(pc.Name)
		}
		if pc.Enabled != nil && !*pc.Enabled {
			b.drafts = append(b.drafts[:i], b.drafts[i+1:]...)
			continue
		}
		if err := tune(b.drafts[i], pc); err != nil {
			return err
		}
	}
	return nil
}

// unskip drops the note that probe name could not be derived: the stack
// declares it itself.
func (b *builder) unskip(name string) {
	kept := b.skipped[:0]
	for _, note := range b.skipped {
		if !strings.HasPrefix(note, name+":") {
			kept = append(kept, note)
		}
	}
	b.skipped = kept
}

func (b *builder) find(name string) int {
	for i, d := range b.drafts {
		if d.spec.Name == name {
			return i
		}
	}
	return -1
}

// tune applies a probe block's settings to a draft.
func tune(d *draft, pc *stackhcl.ProbeConfig) error {
	for name, value := range map[string]*string{"timeout": pc.Timeout, "interval": pc.Interval, "start_period": pc.StartPeriod} {
		if value == nil {
			continue
		}
		dur, err := time.ParseDuration(*value)
		if err != nil {
			return fmt.Errorf("%s: probe %q: %s %q: %w", pc.DeclRange, pc.Name, name, *value, err)
		}
		switch name {
		case "timeout":
			d.spec.Timeout = dur
		case "interval":
			d.spec.Interval = dur
		default:
			d.spec.StartPeriod = dur
		}
	}
	if pc.SuccessThreshold != nil {
		d.spec.SuccessThreshold = *pc.SuccessThreshold
	}
	if pc.Critical != nil {
		d.spec.Critical = *pc.Critical
	}
	if d.http != nil {
		return tuneHTTP(d, pc)
	}
	if d.postgres != nil {
		if pc.ExpectedMigrations != nil {
			d.postgres.ExpectMigrations = *pc.ExpectedMigrations
		}
		if pc.MaxLagBytes != nil {
			d.postgres.MaxLagBytes = int64(*pc.MaxLagBytes)
		}
	}
	if d.metrics != nil && pc.Insecure != nil {
		d.metrics.Insecure = *pc.Insecure
	}
	return nil
}

func tuneHTTP(d *draft, pc *stackhcl.ProbeConfig) error {
	h := d.http
	if pc.URL != nil {
		h.URL = *pc.URL
		d.spec.InNetwork = false // a URL is reached from here
	}
	if pc.Path != nil {
		u, err := url.Parse(h.URL)
		if err != nil {
			return fmt.Errorf("%s: probe %q: %w", pc.DeclRange, pc.Name, err)
		}
		u.Path = *pc.Path
		h.URL = u.String()
	}
	d.spec.Target = h.URL
	if pc.ExpectStatus != nil {
		h.ExpectStatus = *pc.ExpectStatus
	}
	if pc.ExpectJSON != nil {
		var fields map[string]any
		if err := json.Unmarshal(pc.ExpectJSON, &fields); err != nil {
			return fmt.Errorf("%s: probe %q: expect_json: %w", pc.DeclRange, pc.Name, err)
		}
		h.ExpectJSON = fields
	}
	if pc.ExpectBody != nil {
		h.ExpectBody = *pc.ExpectBody
	}
	if pc.ExpectHeaders != nil {
		h.ExpectHeaders = pc.ExpectHeaders
	}
	setBool(&h.RedirectToHTTPS, pc.RedirectToHTTPS)
	setBool(&h.BadHostRejected, pc.BadHostRejected)
	setBool(&h.CSRFToken, pc.CSRFToken)
	setBool(&h.Insecure, pc.Insecure)
	if pc.ThrottleAfter != nil {
		h.ThrottleAfter = *pc.ThrottleAfter
	}
	if pc.CORSOrigin != nil {
		h.CORSOrigin = *pc.CORSOrigin
	}
	return nil
}

func setBool(dst *bool, src *bool) {
	if src != nil {
		*dst = *src
	}
}
