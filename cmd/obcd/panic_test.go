package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestRun_APanicExitsOneAndAsksForABugReport: a panic inside a command
// is caught at the top; obcd exits 1, never 2, naming its version.
func TestRun_APanicExitsOneAndAsksForABugReport(t *testing.T) {
	var stdout, stderr bytes.Buffer
	opts := &globalOptions{stdout: &stdout, stderr: &stderr}
	root := newRootCommand(opts)
	root.AddCommand(&cobra.Command{Use: "boom", RunE: func(*cobra.Command, []string) error {
		var m map[string]int
		m["x"]++ // a nil map: a real runtime panic
		return nil
	}})
	code := run(root, []string{"boom"}, &stdout, &stderr)
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d", code, ExitFailure)
	}
	for _, want := range []string{"obcd " + version + ": internal error", "assignment to entry in nil map", "This is a bug in obcd", "Please report it"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}
