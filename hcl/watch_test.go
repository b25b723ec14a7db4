package hcl

import (
	"strings"
	"testing"
	"time"
)

func TestEnvironmentWatch_DefaultSetAndRefused(t *testing.T) {
	load := func(attr string) (*Stack, string) {
		src := `stack "w" {
  app_image = "w/app"
  version   = "1"
}
service "web" "web" {}
environment "staging" {
  domain = "w.test"
  ` + attr + `
}
`
		loader := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }})
		stack, diags := loader.LoadSource("w.hcl", []byte(src))
		return stack, diags.Error()
	}
	if stack, diags := load(""); stack == nil || stack.Watch != DefaultWatch {
		t.Errorf("no watch: %v (%s), want the default %s", stack, diags, DefaultWatch)
	}
	if stack, diags := load(`watch = "0s"`); stack == nil || stack.Watch != 0 {
		t.Errorf(`watch = "0s": %v (%s), want no window`, stack, diags)
	}
	if stack, _ := load(`watch = "2m"`); stack == nil || stack.Watch != 2*time.Minute {
		t.Errorf(`watch = "2m": %v`, stack)
	}
	for _, bad := range []string{`watch = "soon"`, `watch = "-5s"`, `watch = "2h"`} {
		if stack, diags := load(bad); stack != nil || !strings.Contains(diags, "w.hcl:8") || !strings.Contains(diags, "Invalid watch window") {
			t.Errorf("%s: %v, %q; want an error at w.hcl:8", bad, stack, diags)
		}
	}
}
