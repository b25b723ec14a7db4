package hcl

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// waiveBlock is `waive "<code>" { reason }`. The reason is optional in the
// schema only so that a missing one gets a diagnostic that says what to
// write, instead of HCL's generic "Missing required argument".
type waiveBlock struct {
	Reason *string `hcl:"reason,optional"`
}

// decodeWaivers reads the waive blocks: each names its check once and
// says why the risk is accepted. Whether the code exists, and whether its
// check may be waived, is decided by the rule catalog (orchestrator/checks),
// which this package does not import.
func (d *decoder) decodeWaivers() []*Waiver {
	var out []*Waiver
	seen := map[string]hcl.Range{}
	for _, block := range d.blocks[blockWaive] {
		code := block.Labels[0]
		if first, dup := seen[code]; dup {
			d.diags = append(d.diags, duplicateWaiver(code, first, block.DefRange))
			continue
		}
		seen[code] = block.DefRange
		var wb waiveBlock
		diags := gohcl.DecodeBody(block.Body, d.localContext(), &wb)
		d.addDiags(diags)
		if diags.HasErrors() {
			continue
		}
		if diag := reasonProblem(code, wb.Reason, block); diag != nil {
			d.diags = append(d.diags, diag)
			continue
		}
		out = append(out, &Waiver{Code: code, Reason: strings.TrimSpace(*wb.Reason), DeclRange: block.DefRange})
	}
	return out
}

// reasonProblem reports a waiver whose reason is missing or blank: an
// accepted risk nobody explained cannot be reviewed.
func reasonProblem(code string, reason *string, block *hcl.Block) *hcl.Diagnostic {
	fix := fmt.Sprintf(`reason = "<why this stack cannot satisfy %s>"`, code)
	switch {
	case reason == nil:
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Waiver without a reason",
			Detail: fmt.Sprintf("waive %q accepts a risk without saying why. Add %s, so that reviewers can judge the waiver like code.",
				code, fix),
			Subject: block.DefRange.Ptr(),
		}
	case strings.TrimSpace(*reason) == "":
		return attrDiag(block.Body, "reason", "Waiver without a reason",
			fmt.Sprintf("The reason of waive %q is empty. Write %s, so that reviewers can judge the waiver like code.", code, fix))
	}
	return nil
}

// duplicateWaiver reports a second waive block for the same check,
// pointing at both.
func duplicateWaiver(code string, first, second hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Duplicate waive %q", code),
		Detail: fmt.Sprintf("Check %s is waived twice: first at %s, again here at %s. Keep one waive block and put every reason in it.",
			code, at(first), at(second)),
		Subject: second.Ptr(),
		Extra:   firstPlace{first},
	}
}
