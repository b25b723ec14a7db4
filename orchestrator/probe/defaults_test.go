package probe

import (
	"strings"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
)

const siteOnAPortStack = `
stack "demo" {
  app_image = "demo/app"
}

service "web" "web" {}

service "nginx" "nginx" {
  upstream = service.web
}

environment "staging" {
  domain     = "localhost"
  public_url = "https://localhost:18443"
}
`

func buildSkipped(t *testing.T, src string) []string {
	t.Helper()
	loader := stackhcl.NewLoader(stackhcl.Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }})
	stack, diags := loader.LoadSource("obcd.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	plan, err := Build(BuildOptions{Stack: stack})
	if err != nil {
		t.Fatal(err)
	}
	return plan.Skipped
}

// TestBuild_ADeclaredProbeIsNotAlsoReportedSkipped: a public URL with a
// port leaves the HTTP redirect unknown, so site-redirect is skipped with
// a hint, unless the stack declares that probe itself.
func TestBuild_ADeclaredProbeIsNotAlsoReportedSkipped(t *testing.T) {
	skipped := strings.Join(buildSkipped(t, siteOnAPortStack), "\n")
	if !strings.Contains(skipped, "site-redirect: public_url has a port") {
		t.Fatalf("skipped %q, want the site-redirect hint", skipped)
	}
	declared := siteOnAPortStack + `
probe "site-redirect" {
  type              = "http"
  url               = "http://localhost:18080/"
  redirect_to_https = true
}
`
	if skipped := strings.Join(buildSkipped(t, declared), "\n"); strings.Contains(skipped, "site-redirect") {
		t.Errorf("skipped %q after the stack declared site-redirect itself", skipped)
	}
}
