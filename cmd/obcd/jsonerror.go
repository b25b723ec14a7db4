package main

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"
)

// countingWriter counts what a command wrote, so that run knows whether
// a --json command printed its document before it failed.
type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}

// wantsJSON says whether cmd was asked for JSON on stdout: --json, or
// audit's --format json.
func wantsJSON(cmd *cobra.Command) bool {
	if cmd == nil {
		return false
	}
	if f := cmd.Flags().Lookup("json"); f != nil && f.Value.String() == "true" {
		return true
	}
	f := cmd.Flags().Lookup("format")
	return f != nil && f.Value.String() == "json"
}

// jsonDiagnostic is one diagnostic of a stack that does not load.
type jsonDiagnostic struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
}

// printErrorJSON is what a --json command prints on stdout when it
// failed before printing its own document: the error, the exit code and,
// for a stack that does not load, its diagnostics. Its keys are lower
// case with underscores, as in every document obcd prints.
func printErrorJSON(w io.Writer, err error, code int) {
	out := struct {
		Error       string           `json:"error"`
		ExitCode    int              `json:"exit_code"`
		Usage       bool             `json:"usage_error,omitempty"`
		Diagnostics []jsonDiagnostic `json:"diagnostics,omitempty"`
	}{Error: err.Error(), ExitCode: code, Usage: code == ExitUsage}
	var invalid invalidStack
	if errors.As(err, &invalid) {
		for _, d := range invalid.diags {
			jd := jsonDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
			if d.Severity != hcl.DiagError {
				jd.Severity = "warning"
			}
			if d.Subject != nil {
				jd.File, jd.Line, jd.Column = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
			}
			out.Diagnostics = append(out.Diagnostics, jd)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}
