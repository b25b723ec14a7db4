package templates

// Helpers for the monitoring tests: loading the example stack, writing
// artifacts to disk, running the real promtool and amtool, and pulling
// metric names out of PromQL.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
)

var obcmsEnvironments = []string{"staging", "production"}

// renderMonitoringByPath renders the monitoring family and indexes it by
// artifact path.
func renderMonitoringByPath(t *testing.T, stack *stackhcl.Stack) map[string]Artifact {
	t.Helper()
	artifacts, err := renderMonitoring(stack)
	if err != nil {
		t.Fatalf("renderMonitoring(%s): %v", stack.Environment, err)
	}
	byPath := map[string]Artifact{}
	for _, artifact := range artifacts {
		if _, dup := byPath[artifact.Path]; dup {
			t.Fatalf("artifact %s rendered twice", artifact.Path)
		}
		if artifact.Mode != ModePublic {
			t.Errorf("%s: mode %v, want %v", artifact.Path, artifact.Mode, ModePublic)
		}
		byPath[artifact.Path] = artifact
	}
	return byPath
}

// artifactsUnder returns the paths directly inside dir, sorted.
func artifactsUnder(byPath map[string]Artifact, dir, ext string) []string {
	var paths []string
	for p := range byPath {
		if filepath.Dir(p) == dir && strings.HasSuffix(p, ext) {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	return paths
}

// writeArtifacts writes every artifact under root at its own path, so
// relative references between them (rule_files) resolve as in the
// container.
func writeArtifacts(t *testing.T, root string, byPath map[string]Artifact) {
	t.Helper()
	for p, artifact := range byPath {
		target := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(target), ModeDirPerm); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, artifact.Data, artifact.Mode); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), ModePublic); err != nil {
		t.Fatal(err)
	}
	return path
}

// runTool runs a real binary and returns its combined output. The test is
// skipped only when the binary is not installed.
func runTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	binary, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian: prometheus / prometheus-alertmanager): %v", name, err)
	}
	output, err := exec.Command(binary, args...).CombinedOutput()
	return string(output), err
}

// requireToolSuccess fails unless the tool exits 0 and prints SUCCESS.
func requireToolSuccess(t *testing.T, name string, args ...string) string {
	t.Helper()
	output, err := runTool(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, output)
	}
	if !strings.Contains(output, "SUCCESS") {
		t.Fatalf("%s %s: no SUCCESS in output:\n%s", name, strings.Join(args, " "), output)
	}
	return output
}

// routedReceiver asks the real amtool which receiver an alert with these
// labels goes to. amtool prints the receiver on the last line, after any
// warnings.
func routedReceiver(t *testing.T, config string, labels ...string) string {
	t.Helper()
	args := append([]string{"config", "routes", "test", "--config.file=" + config}, labels...)
	output, err := runTool(t, "amtool", args...)
	if err != nil {
		t.Fatalf("amtool %s: %v\n%s", strings.Join(args, " "), err, output)
	}
	lines := strings.Split(strings.TrimSpace(output), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

var (
	promqlStrings  = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promqlMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promqlRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promqlGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	// promqlTokens matches a number (skipped) or an identifier with the
	// "(" that makes it a function call.
	promqlTokens = regexp.MustCompile(`[0-9][0-9.]*(?:[eE][+-]?[0-9]+)?[a-zA-Z]*|[a-zA-Z_:][a-zA-Z0-9_:]*(?:\s*\()?`)
	// promqlKeywords are identifiers that are neither metrics nor calls.
	promqlKeywords = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true, "inf": true, "nan": true, "atan2": true,
	}
)

// metricNames returns the metric names an expression selects: the
// identifiers left once strings, label matchers, ranges and grouping
// clauses are removed, minus function calls and keywords.
func metricNames(expr string) []string {
	stripped := promqlStrings.ReplaceAllString(expr, `""`)
	stripped = promqlMatchers.ReplaceAllString(stripped, " ")
	stripped = promqlRanges.ReplaceAllString(stripped, " ")
	stripped = promqlGrouping.ReplaceAllString(stripped, " ")
	var names []string
	for _, token := range promqlTokens.FindAllString(stripped, -1) {
		if token[0] >= '0' && token[0] <= '9' || strings.HasSuffix(token, "(") || promqlKeywords[strings.ToLower(token)] {
			continue
		}
		names = append(names, token)
	}
	return names
}
