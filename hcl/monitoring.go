package hcl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// monitoringBlock is `monitoring { retention, receivers, ... }`.
type monitoringBlock struct {
	Retention          string          `hcl:"retention,optional"`
	ScrapeInterval     string          `hcl:"scrape_interval,optional"`
	EvaluationInterval string          `hcl:"evaluation_interval,optional"`
	SMTPSmarthost      string          `hcl:"smtp_smarthost,optional"`
	SMTPFrom           string          `hcl:"smtp_from,optional"`
	DefaultReceiver    string          `hcl:"default_receiver,optional"`
	CriticalReceiver   string          `hcl:"critical_receiver,optional"`
	Receivers          []receiverBlock `hcl:"receiver,block"`
}

type receiverBlock struct {
	Name       string    `hcl:"name,label"`
	Email      []string  `hcl:"email,optional"`
	WebhookURL string    `hcl:"webhook_url,optional"`
	DeclRange  hcl.Range `hcl:",def_range"`
}

func (d *decoder) decodeMonitoring(ctx *hcl.EvalContext) Monitoring {
	mb := monitoringBlock{Retention: "15d", ScrapeInterval: "15s", EvaluationInterval: "15s"}
	var m Monitoring
	if blocks := d.blocks[blockMonitoring]; len(blocks) > 0 {
		d.addDiags(gohcl.DecodeBody(blocks[0].Body, ctx, &mb))
		m.DeclRange = blocks[0].DefRange
	}
	if d.overrides.monitoring != nil {
		d.addDiags(applyOverride(d.overrides.monitoring, ctx, nil, &mb))
	}
	m.Retention, m.ScrapeInterval, m.EvaluationInterval = mb.Retention, mb.ScrapeInterval, mb.EvaluationInterval
	m.SMTPSmarthost, m.SMTPFrom = mb.SMTPSmarthost, mb.SMTPFrom
	m.DefaultReceiver, m.CriticalReceiver = mb.DefaultReceiver, mb.CriticalReceiver
	seen := map[string]hcl.Range{}
	for _, r := range mb.Receivers {
		if first, dup := seen[r.Name]; dup {
			d.diags = append(d.diags, duplicate("receiver", r.Name, first, r.DeclRange))
			continue
		}
		seen[r.Name] = r.DeclRange
		m.Receivers = append(m.Receivers, &Receiver{Name: r.Name, Email: r.Email, WebhookURL: r.WebhookURL, DeclRange: r.DeclRange})
	}
	return m
}

type stateBlock struct {
	Backend string         `hcl:"backend,optional"`
	DSN     hcl.Expression `hcl:"dsn,optional"`
}

// decodeState reads `state { backend, dsn }`; the DSN must be a secret,
// since it carries a password.
func (d *decoder) decodeState(ctx *hcl.EvalContext) State {
	st := State{Backend: "local"}
	blocks := d.blocks[blockState]
	if len(blocks) == 0 {
		return st
	}
	sb := stateBlock{Backend: "local"}
	d.addDiags(gohcl.DecodeBody(blocks[0].Body, ctx, &sb))
	st.Backend, st.DeclRange = sb.Backend, blocks[0].DefRange
	st.DSN = d.resolveSecret(sb.DSN, "dsn")
	switch {
	case st.Backend != "local" && st.Backend != "postgres":
		d.diags = append(d.diags, attrDiag(blocks[0].Body, "backend", "Unknown state backend",
			fmt.Sprintf("%q is not \"local\" (the default, the state directory) or \"postgres\".", st.Backend)))
	case st.Backend == "postgres" && st.DSN == "":
		d.diags = append(d.diags, attrDiag(blocks[0].Body, "dsn", "Postgres state without a connection",
			`backend = "postgres" needs dsn = secret.<name>, a secret holding the connection string (postgres://user:password@host/db).`))
	}
	return st
}
