package hcl

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// stackBlock is `stack "name" { app_image, version }`.
type stackBlock struct {
	AppImage string `hcl:"app_image"`
	Version  string `hcl:"version,optional"`
}

func (d *decoder) decodeStack(stack *Stack) {
	blocks := d.blocks[blockStack]
	if len(blocks) == 0 {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing stack block",
			Detail:   `Every stack file starts with stack "<name>" { app_image = "<repository>" }, which names the stack and its Django image.`,
			Subject:  &hcl.Range{Filename: d.filename, Start: hcl.InitialPos, End: hcl.InitialPos},
		})
		return
	}
	block := blocks[0]
	ctx := d.localContext()
	var sb stackBlock
	sb.Version = "latest"
	d.addDiags(gohcl.DecodeBody(block.Body, ctx, &sb))
	stack.Name = block.Labels[0]
	stack.AppImage = sb.AppImage
	stack.Version = sb.Version
	_, stack.VersionSet = attrRanges(block.Body)["version"]
	stack.DeclRange = block.DefRange
	stack.Domain = d.environment["domain"].AsString()
	stack.DockerHost = d.environment["docker_host"].AsString()
	stack.DockerCertPath = d.certPath(d.environment["docker_cert_path"].AsString())
	stack.Engine = d.environment["engine"].AsString()
	stack.PublicURL = d.environment["public_url"].AsString()
	stack.Tier = d.environment["tier"].AsString()
	if d.envBlock != nil {
		stack.EnvRange = d.envBlock.DefRange
		if r, ok := attrRanges(d.envBlock.Body)["tier"]; ok {
			stack.TierRange = r
		}
	}
	stack.Watch = d.decodeWatch(d.environment["watch"].AsString())
	if !validName(stack.Name) {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid stack name",
			Detail:   fmt.Sprintf("%q cannot be a compose project name. Use lowercase letters, digits, '_' and '-', starting with a letter.", stack.Name),
			Subject:  block.LabelRanges[0].Ptr(),
		})
	}
}

// DefaultWatch is how long a deploy watches a release after the switch
// when the environment does not say.
const DefaultWatch = 60 * time.Second

// decodeWatch is the environment's watch window: a duration from 0 (no
// window) to an hour.
func (d *decoder) decodeWatch(value string) time.Duration {
	watch, err := time.ParseDuration(value)
	if err == nil && watch >= 0 && watch <= time.Hour {
		return watch
	}
	subject := d.envBlock.DefRange
	if r, ok := attrRanges(d.envBlock.Body)["watch"]; ok {
		subject = r
	}
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid watch window",
		Detail:   fmt.Sprintf("watch = %q is not a duration from \"0s\" (no window) to \"1h\"; write one such as \"60s\" or \"2m\".", value),
		Subject:  &subject,
	})
	return DefaultWatch
}

// secretBlock is `secret "name" { description, length, format }`.
type secretBlock struct {
	Description string    `hcl:"description,optional"`
	Length      int       `hcl:"length,optional"`
	Format      string    `hcl:"format,optional"`
	DeclRange   hcl.Range `hcl:",def_range"`
}

// Secret formats obcd secrets init can generate.
var secretFormats = []string{"alnum", "hex", "base64url", "fernet"}

func (d *decoder) decodeSecrets() []*Secret {
	var out []*Secret
	seen := map[string]bool{}
	for _, block := range d.blocks[blockSecret] {
		name := block.Labels[0]
		if seen[name] {
			continue
		}
		seen[name] = true
		sb := secretBlock{Length: 32, Format: "alnum"}
		diags := gohcl.DecodeBody(block.Body, d.localContext(), &sb)
		d.addDiags(diags)
		if sb.Format == "fernet" {
			sb.Length = 44 // 32 bytes, padded base64url
		}
		if sb.Length < 16 || sb.Length > 4096 {
			d.diags = append(d.diags, attrDiag(block.Body, "length", "Secret too short or too long",
				fmt.Sprintf("Secret %q would be generated with %d characters; use a length between 16 and 4096.", name, sb.Length)))
		}
		if !oneOf(sb.Format, secretFormats) {
			d.diags = append(d.diags, attrDiag(block.Body, "format", "Unknown secret format",
				fmt.Sprintf("Format %q is not one of %s.", sb.Format, quoteList(secretFormats))))
		}
		out = append(out, &Secret{
			Name: name, Description: sb.Description, Length: sb.Length, Format: sb.Format, DeclRange: block.DefRange,
		})
	}
	return out
}

// attrDiag builds an error pointing at an attribute of a body, or at the
// body's opening when the attribute is absent.
func attrDiag(body hcl.Body, attr, summary, detail string) *hcl.Diagnostic {
	subject := body.MissingItemRange()
	if r, ok := attrRanges(body)[attr]; ok {
		subject = r
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &subject}
}

func oneOf(s string, options []string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

func quoteList(options []string) string {
	out := ""
	for i, o := range options {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%q", o)
	}
	return out
}
