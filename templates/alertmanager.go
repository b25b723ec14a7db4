package templates

// alertmanager.go renders alertmanager.yml: routing by severity, the
// receivers of the monitoring block, and the inhibition rules.

import (
	"fmt"
	"strings"

	stackhcl "github.com/obcd/obcd/hcl"
)

// nullReceiver takes alerts when the stack names no default receiver.
const nullReceiver = "null"

type amConfig struct {
	Global       *amGlobal       `yaml:"global,omitempty"`
	Route        amRoute         `yaml:"route"`
	InhibitRules []amInhibitRule `yaml:"inhibit_rules"`
	Receivers    []amReceiver    `yaml:"receivers"`
}

type amGlobal struct {
	SMTPSmarthost string `yaml:"smtp_smarthost,omitempty"`
	SMTPFrom      string `yaml:"smtp_from,omitempty"`
}

type amRoute struct {
	Receiver       string    `yaml:"receiver"`
	GroupBy        []string  `yaml:"group_by,omitempty"`
	GroupWait      string    `yaml:"group_wait,omitempty"`
	GroupInterval  string    `yaml:"group_interval,omitempty"`
	RepeatInterval string    `yaml:"repeat_interval,omitempty"`
	Matchers       []string  `yaml:"matchers,omitempty"`
	Routes         []amRoute `yaml:"routes,omitempty"`
}

type amInhibitRule struct {
	SourceMatchers []string `yaml:"source_matchers"`
	TargetMatchers []string `yaml:"target_matchers"`
	Equal          []string `yaml:"equal"`
}

type amReceiver struct {
	Name           string            `yaml:"name"`
	EmailConfigs   []amEmailConfig   `yaml:"email_configs,omitempty"`
	WebhookConfigs []amWebhookConfig `yaml:"webhook_configs,omitempty"`
}

type amEmailConfig struct {
	To string `yaml:"to"`
}

// amWebhookConfig leaves out url_file and timeout: Alertmanager 0.25
// rejects both.
type amWebhookConfig struct {
	URL          string `yaml:"url"`
	SendResolved bool   `yaml:"send_resolved"`
}

func renderAlertmanagerConfig(s *stackhcl.Stack) ([]Artifact, error) {
	if s.First(stackhcl.KindAlertmanager) == nil {
		return nil, nil
	}
	if err := checkReceiverRefs(s.Monitoring); err != nil {
		return nil, err
	}
	config := amConfig{
		Global:       alertmanagerGlobal(s.Monitoring),
		Route:        alertmanagerRoute(s.Monitoring),
		InhibitRules: alertmanagerInhibitRules(),
		Receivers:    alertmanagerReceivers(s.Monitoring),
	}
	data, err := monitoringYAML(config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", PathAlertmanager, err)
	}
	return []Artifact{{Path: PathAlertmanager, Mode: ModePublic, Data: data}}, nil
}

func alertmanagerGlobal(m stackhcl.Monitoring) *amGlobal {
	if m.SMTPSmarthost == "" && m.SMTPFrom == "" {
		return nil
	}
	return &amGlobal{SMTPSmarthost: m.SMTPSmarthost, SMTPFrom: m.SMTPFrom}
}

func alertmanagerRoute(m stackhcl.Monitoring) amRoute {
	route := amRoute{
		Receiver:       defaultReceiver(m),
		GroupBy:        []string{"alertname", "service", "environment"},
		GroupWait:      "30s",
		GroupInterval:  "5m",
		RepeatInterval: "4h",
	}
	if m.CriticalReceiver != "" {
		route.Routes = []amRoute{{
			Receiver:       m.CriticalReceiver,
			Matchers:       []string{`severity="` + severityCritical + `"`},
			RepeatInterval: "1h",
		}}
	}
	return route
}

func defaultReceiver(m stackhcl.Monitoring) string {
	if m.DefaultReceiver == "" {
		return nullReceiver
	}
	return m.DefaultReceiver
}

// alertmanagerInhibitRules: a critical alert silences its own warning, and
// a down target silences everything else it would report.
func alertmanagerInhibitRules() []amInhibitRule {
	return []amInhibitRule{
		{
			SourceMatchers: []string{`severity="` + severityCritical + `"`},
			TargetMatchers: []string{`severity="` + severityWarning + `"`},
			Equal:          []string{"alertname", "instance"},
		},
		{
			SourceMatchers: []string{`alertname="` + alertTargetDown + `"`},
			TargetMatchers: []string{`alertname!="` + alertTargetDown + `"`},
			Equal:          []string{"instance"},
		},
	}
}

// alertmanagerReceivers lists the stack's receivers, plus the null
// receiver when the route falls back to it.
func alertmanagerReceivers(m stackhcl.Monitoring) []amReceiver {
	var receivers []amReceiver
	for _, receiver := range m.Receivers {
		receivers = append(receivers, alertmanagerReceiver(receiver))
	}
	if m.DefaultReceiver == "" && !hasReceiver(m, nullReceiver) {
		receivers = append(receivers, amReceiver{Name: nullReceiver})
	}
	return receivers
}

func hasReceiver(m stackhcl.Monitoring, name string) bool {
	for _, receiver := range m.Receivers {
		if receiver.Name == name {
			return true
		}
	}
	return false
}

// checkReceiverRefs catches what Alertmanager would refuse to start with.
// Load validates the same, so this only fires on a hand-built stack.
func checkReceiverRefs(m stackhcl.Monitoring) error {
	for _, ref := range []string{m.DefaultReceiver, m.CriticalReceiver} {
		if ref != "" && !hasReceiver(m, ref) {
			return fmt.Errorf("%s: receiver %q is routed to but not declared", PathAlertmanager, ref)
		}
	}
	return nil
}

func alertmanagerReceiver(receiver *stackhcl.Receiver) amReceiver {
	out := amReceiver{Name: receiver.Name}
	if len(receiver.Email) > 0 {
		out.EmailConfigs = []amEmailConfig{{To: strings.Join(receiver.Email, ", ")}}
	}
	if receiver.WebhookURL != "" {
		out.WebhookConfigs = []amWebhookConfig{{URL: receiver.WebhookURL, SendResolved: true}}
	}
	return out
}
