package hcl

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// WriteDiagnostics prints diagnostics with file:line:col, a source
// snippet and the detail that says how to fix each one.
func (l *Loader) WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, color bool) error {
	for _, diag := range diags {
		var b bytes.Buffer
		shown := diag
		files := l.quotable()
		_, unquote := diag.Extra.(unquoted)
		if diag.Subject != nil && (l.private[diag.Subject.Filename] || unquote) {
			// Nor the values of the expression's variables, which HCL
			// prints as "with local.x as ...".
			copied := *diag
			copied.Expression, copied.EvalContext = nil, nil
			shown = &copied
		}
		if unquote {
			files = nil
		}
		var big *hcl.File
		if r := diag.Subject; r != nil && files[r.Filename] != nil && len(files[r.Filename].Bytes) > maxSnippetFile {
			// HCL's writer scans the file from its start, grapheme by
			// grapheme, to find the line: seconds on a file of
			// megabytes. obcd quotes the line itself.
			big = files[r.Filename]
			files = maps.Clone(files)
			delete(files, r.Filename)
		}
		if err := hcl.NewDiagnosticTextWriter(&b, files, 100, color).WriteDiagnostic(shown); err != nil {
			return err
		}
		text := b.String()
		if r := diag.Subject; r != nil {
			// HCL writes "on FILE line N"; obcd points at FILE:LINE:COL,
			// as everywhere else.
			text = strings.Replace(text, fmt.Sprintf("on %s line %d", r.Filename, r.Start.Line),
				fmt.Sprintf("on %s:%d:%d", r.Filename, r.Start.Line, r.Start.Column), 1)
		}
		if big != nil {
			text = withLine(strings.Replace(text, "\n  (source code not available)", "", 1), big.Bytes, *diag.Subject)
		}
		if first, ok := diag.Extra.(firstPlace); ok && !l.private[first.Filename] {
			text = l.withFirstPlace(text, first.Range)
		}
		text = l.reads.redact(text)
		if _, err := io.WriteString(w, text); err != nil {
			return err
		}
	}
	return nil
}

// MaxDiagnostics is how many diagnostics a load reports: a generated
// stack with a mistake repeated twenty thousand times needs the first
// few to be fixed, and printing them all would take longer than fixing
// the generator.
const MaxDiagnostics = 50

// firstDiagnostics keeps the first MaxDiagnostics of diags in order of
// place, and says how many more there were.
func firstDiagnostics(diags hcl.Diagnostics) hcl.Diagnostics {
	if len(diags) <= MaxDiagnostics {
		return diags
	}
	sorted := slices.Clone(diags)
	slices.SortStableFunc(sorted, func(a, b *hcl.Diagnostic) int {
		switch {
		case before(a.Subject, b.Subject):
			return -1
		case before(b.Subject, a.Subject):
			return 1
		}
		return 0
	})
	errors := 0
	for _, d := range sorted[MaxDiagnostics:] {
		if d.Severity == hcl.DiagError {
			errors++
		}
	}
	severity := hcl.DiagWarning
	if errors > 0 {
		severity = hcl.DiagError
	}
	return append(sorted[:MaxDiagnostics:MaxDiagnostics], &hcl.Diagnostic{
		Severity: severity,
		Summary:  "More problems",
		Detail: fmt.Sprintf("obcd shows the first %d problems of the stack file by place; %d more (%d of them errors) are not shown. Fix these and run again.",
			MaxDiagnostics, len(sorted)-MaxDiagnostics, errors),
		Extra: moreProblems{errors: errors},
	})
}

// moreProblems is the Extra of the diagnostic that stands for those
// firstDiagnostics left out.
type moreProblems struct{ errors int }

// ErrorCount is how many errors diags hold, counting those that
// firstDiagnostics left out and not the diagnostic that counts them.
func ErrorCount(diags hcl.Diagnostics) int {
	n := 0
	for _, d := range diags {
		if more, ok := d.Extra.(moreProblems); ok {
			n += more.errors
		} else if d.Severity == hcl.DiagError {
			n++
		}
	}
	return n
}

// maxSnippetFile is the size past which obcd, not HCL, finds the line a
// diagnostic quotes.
const maxSnippetFile = 256 << 10

// maxSnippetLine is how much of a long line a snippet shows, around the
// column it points at.
const maxSnippetLine = 120

// lineAt is the line of src that holds byte at, cut to maxSnippetLine
// around at: found from the offset alone, in the time of one line.
func lineAt(src []byte, at int) string {
	at = min(max(at, 0), len(src))
	start := bytes.LastIndexByte(src[:at], '\n') + 1
	end := bytes.IndexByte(src[at:], '\n')
	if end < 0 {
		end = len(src)
	} else {
		end += at
	}
	from, to := start, end
	if to-from > maxSnippetLine {
		from = max(start, at-maxSnippetLine/2)
		to = min(end, from+maxSnippetLine)
	}
	line := strings.TrimRight(string(src[from:to]), "\r")
	if from > start {
		line = "..." + line
	}
	if to < end {
		line += "..."
	}
	return line
}

// afterLine inserts extra at the end of the line of text that starts at
// byte i.
func afterLine(text string, i int, extra string) string {
	eol := strings.IndexByte(text[i:], '\n')
	if eol < 0 {
		return text
	}
	return text[:i+eol] + extra + text[i+eol:]
}

// withLine adds under the "on FILE:LINE:COL" line of a diagnostic's text
// the line of src that r starts on.
func withLine(text string, src []byte, r hcl.Range) string {
	on := strings.Index(text, "\n  on ")
	if on < 0 {
		return text
	}
	return afterLine(text, on+1, fmt.Sprintf("\n%4d: %s", r.Start.Line, lineAt(src, r.Start.Byte)))
}

// firstSyntaxError keeps, of a parse that failed, its first error by
// position and its warnings: the parser's later errors follow from the
// first (one missing quote makes the rest of the file a string), so they
// point at text that is not wrong.
func firstSyntaxError(diags hcl.Diagnostics) hcl.Diagnostics {
	var first *hcl.Diagnostic
	var out hcl.Diagnostics
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			out = append(out, d)
			continue
		}
		if first == nil || before(d.Subject, first.Subject) {
			first = d
		}
	}
	if first == nil {
		return diags
	}
	if len(diags)-len(out) > 1 {
		first.Detail += " (obcd shows the first syntax error only: the ones after it in the file usually follow from it. Fix it and run again.)"
	}
	return append(hcl.Diagnostics{first}, out...)
}

// before says whether a starts before b; a range that is nil comes last.
func before(a, b *hcl.Range) bool {
	if a == nil {
		return false
	}
	if b == nil {
		return true
	}
	return a.Start.Byte < b.Start.Byte
}

// at is r as file:line:col.
func at(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// unquoted is the Extra of a diagnostic whose subject's line holds a
// secret (a literal credential): it points at file:line:col and quotes
// nothing.
type unquoted struct{}

// firstPlace is the Extra of a diagnostic about something declared
// twice: where it was declared first. The diagnostic's subject is the
// second place; its snippet shows the first place's line too, and not
// what lies between the two.
type firstPlace struct{ hcl.Range }

// withFirstPlace adds, under the snippet of a diagnostic's text, the
// line of first.
func (l *Loader) withFirstPlace(text string, first hcl.Range) string {
	file := l.parser.Files()[first.Filename]
	if file == nil {
		return text
	}
	// The snippet ends at the first blank line after the "on" line.
	on := strings.Index(text, "\n  on ")
	if on < 0 {
		return text
	}
	end := strings.Index(text[on+1:], "\n\n")
	if end < 0 {
		return text
	}
	end += on + 1
	return text[:end] + fmt.Sprintf("\n\n  first declared at %s:\n%4d: %s", at(first), first.Start.Line, lineAt(file.Bytes, first.Start.Byte)) + text[end:]
}

// quotable are the files a diagnostic may quote a line of: every file
// parsed but the private ones, whose lines may hold secrets.
func (l *Loader) quotable() map[string]*hcl.File {
	files := map[string]*hcl.File{}
	for name, file := range l.parser.Files() {
		if !l.private[name] {
			files[name] = file
		}
	}
	return files
}
