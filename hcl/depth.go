package hcl

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// isSecretsLine says whether line is one of an obcd secrets file:
// [export] OBCD_SECRET_<NAME> = ... (a scan, not a regexp: it runs on
// every line of a stack file that may be megabytes long).
func isSecretsLine(line []byte) bool {
	line = bytes.TrimLeft(line, " \t")
	if rest, ok := bytes.CutPrefix(line, []byte("export")); ok && len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		line = bytes.TrimLeft(rest, " \t")
	}
	rest, ok := bytes.CutPrefix(line, []byte("OBCD_SECRET_"))
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(bytes.TrimLeft(rest, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"), " \t")
	return len(rest) > 0 && rest[0] == '='
}

// checkNotSecrets refuses a secrets file given as the stack file (-f
// .obcd/staging.secrets), before anything could quote one of its lines
// in a diagnostic's snippet.
func checkNotSecrets(filename string, src []byte) hcl.Diagnostics {
	found := false
	for line := range bytes.Lines(src) {
		if isSecretsLine(line) {
			found = true
			break
		}
	}
	if !found {
		return nil
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "This is a secrets file, not a stack file",
		Detail:   fmt.Sprintf("%s sets OBCD_SECRET_* values: it is an environment's secrets file. obcd shows none of it. Pass the stack file with --stack FILE (obcd.hcl by default).", filename),
	}}
}

// MaxNesting is how deeply brackets, braces, parentheses, strings and
// their ${...} interpolations may nest in a stack file. A real stack
// nests a few levels; the HCL parser recurses once per level, and a
// hostile file nested a hundred thousand deep would overflow its stack,
// a crash no recover catches. So the source is measured before it is
// parsed.
const MaxNesting = 256

// MaxStackSize bounds a stack file's bytes. stacks/obcms.hcl, the whole
// OBCMS stack, is 7 KB. HCL's lexer measures the columns of every
// token, the text of strings and comments included, grapheme by
// grapheme: about 0.15 s of CPU a megabyte on a quiet machine and twice
// that on a busy one, so a stack of 10 MB took most of the CPU budget
// (computeLimits in cmd/obcd) before anything was evaluated, and a busy
// machine crossed it. A larger stack is refused before it is parsed;
// data belongs in files read with file().
const MaxStackSize = 2 << 20

// checkSize refuses src when it is larger than MaxStackSize, at the
// place where it crosses the bound.
func checkSize(filename string, src []byte) hcl.Diagnostics {
	if len(src) <= MaxStackSize {
		return nil
	}
	head := src[:MaxStackSize]
	start := bytes.LastIndexByte(head, '\n') + 1
	pos := hcl.Pos{Line: bytes.Count(head, []byte{'\n'}) + 1, Column: utf8.RuneCount(head[start:]) + 1, Byte: MaxStackSize}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Stack file too large",
		Detail: fmt.Sprintf("The stack file is larger than %d MiB by here; obcd refuses to parse it (stacks/obcms.hcl, the whole OBCMS stack, is 7 KB). Move long text or data to a file read with file(), up to %d MiB each.",
			MaxStackSize>>20, MaxFileSize>>20),
		Subject: &hcl.Range{Filename: filename, Start: pos, End: hcl.Pos{Line: pos.Line, Column: pos.Column + 1, Byte: pos.Byte + 1}},
	}}
}

// MaxTokens bounds the size of a stack file's syntax: names, numbers,
// strings (their text is one token however long), operators and
// brackets. stacks/obcms.hcl, the whole OBCMS stack, has about 1,200;
// parsing and evaluating the bound takes a fraction of a second and
// some tens of megabytes, where a hostile 10 MB file of short
// attributes would take seconds and a gigabyte. Comments and the text
// inside strings do not count, so a large file read with file(), or
// pages of comments, stay possible.
const MaxTokens = 200_000

// checkNesting refuses src when its nesting exceeds MaxNesting, or its
// tokens MaxTokens, at the place where it does. It follows HCL's lexical
// modes closely enough to count what the parser will recurse on:
// brackets in expressions, quoted strings, and interpolations inside
// them; comments and the content of strings do not count.
func checkNesting(filename string, src []byte) hcl.Diagnostics {
	const (
		expr = iota
		quoted
	)
	type frame struct {
		mode  int
		close byte // the byte that ends an expression frame
	}
	stack := []frame{{mode: expr}}
	line, col := 1, 1
	tokens, inWord := 0, false
	count := func(at int, word bool) hcl.Diagnostics {
		if word && inWord {
			return nil
		}
		inWord = word
		if tokens++; tokens <= MaxTokens {
			return nil
		}
		pos := hcl.Pos{Line: line, Column: col, Byte: at}
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Stack file too large",
			Detail:   fmt.Sprintf("The stack file has more than %d tokens (names, values, operators) by here; obcd refuses to evaluate it (stacks/obcms.hcl, the whole OBCMS stack, has about 1,200). Generate fewer blocks or attributes, or move data to a file read with file().", MaxTokens),
			Subject:  &hcl.Range{Filename: filename, Start: pos, End: hcl.Pos{Line: line, Column: col + 1, Byte: at + 1}},
		}}
	}
	advance := func(b byte) {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	push := func(f frame, at int) hcl.Diagnostics {
		stack = append(stack, f)
		if len(stack) <= MaxNesting {
			return nil
		}
		pos := hcl.Pos{Line: line, Column: col, Byte: at}
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Nesting too deep",
			Detail:   fmt.Sprintf("Brackets, braces, strings and interpolations nest more than %d levels deep here; obcd refuses to parse such a file. Flatten the expression, or move the data to a file read with file().", MaxNesting),
			Subject:  &hcl.Range{Filename: filename, Start: pos, End: hcl.Pos{Line: line, Column: col + 1, Byte: at + 1}},
		}}
	}
	for i := 0; i < len(src); i++ {
		b := src[i]
		top := stack[len(stack)-1]
		if top.mode == quoted {
			switch {
			case b == '\\' && i+1 < len(src):
				advance(b)
				i++
				b = src[i]
			case b == '"':
				stack = stack[:len(stack)-1]
			case (b == '$' || b == '%') && i+1 < len(src) && src[i+1] == '{':
				if i+2 < len(src) && src[i+2] == b { // $${ and %%{ are literal
					break
				}
				if diags := push(frame{mode: expr, close: '}'}, i); diags != nil {
					return diags
				}
				if diags := count(i, false); diags != nil {
					return diags
				}
				advance(b)
				i++
				b = src[i]
			case b == '\n':
				stack = stack[:len(stack)-1] // an unterminated string: the parser says so
			}
			advance(b)
			continue
		}
		switch {
		case b == ' ' || b == '\t' || b == '\r' || b == '\n':
			inWord = false
		case b == '#' || (b == '/' && i+1 < len(src) && (src[i+1] == '/' || src[i+1] == '*')):
		case b == '_' || b == '-' || b == '.' || (b|0x20 >= 'a' && b|0x20 <= 'z') || (b >= '0' && b <= '9') || b >= 0x80:
			if diags := count(i, true); diags != nil {
				return diags
			}
		default:
			if diags := count(i, false); diags != nil {
				return diags
			}
		}
		switch b {
		case '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			if i < len(src) {
				advance('\n')
			}
			continue
		case '/':
			if i+1 < len(src) && src[i+1] == '/' {
				for i < len(src) && src[i] != '\n' {
					i++
				}
				if i < len(src) {
					advance('\n')
				}
				continue
			}
			if i+1 < len(src) && src[i+1] == '*' {
				i += 2
				col += 2
				for i < len(src) && !(src[i] == '*' && i+1 < len(src) && src[i+1] == '/') {
					advance(src[i])
					i++
				}
				i++
				col += 2
				continue
			}
		case '"':
			if diags := push(frame{mode: quoted}, i); diags != nil {
				return diags
			}
		case '[', '{', '(':
			closer := map[byte]byte{'[': ']', '{': '}', '(': ')'}[b]
			if diags := push(frame{mode: expr, close: closer}, i); diags != nil {
				return diags
			}
		case ']', '}', ')':
			if len(stack) > 1 && top.close == b {
				stack = stack[:len(stack)-1]
			}
		}
		advance(b)
	}
	return nil
}
