package hcl

import (
	"strings"
	"testing"
)

// TestLoad_TheTierIsDeclaredOrComesFromTheName: an environment declares
// what it is with tier; one that does not is production by the names
// production and prod, development by development, dev, local and test,
// and staging otherwise. A tier that is not one of the three is refused
// where it is written, with a suggestion; environment.tier reads it.
func TestLoad_TheTierIsDeclaredOrComesFromTheName(t *testing.T) {
	load := func(env, body string) (*Stack, string) {
		src := "stack \"x\" {\n  app_image = \"demo/app\"\n  version = environment.tier\n}\nenvironment \"" + env + "\" {\n  domain = \"s.example.org\"\n" + body + "}\n"
		stack, diags := NewLoader(Options{Environment: env, LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource("obcd.hcl", []byte(src))
		return stack, diags.Error()
	}
	for _, c := range []struct{ env, body, want string }{
		{"live", "  tier = \"production\"\n", TierProduction},
		{"production", "  tier = \"staging\"\n", TierStaging},
		{"qa", "  tier = \"development\"\n", TierDevelopment},
		{"production", "", TierProduction},
		{"prod", "", TierProduction},
		{"dev", "", TierDevelopment},
		{"test", "", TierDevelopment},
		{"live", "", TierStaging},
		{"staging", "", TierStaging},
	} {
		stack, errs := load(c.env, c.body)
		if errs != "no diagnostics" && errs != "" {
			t.Errorf("%s %q: %s", c.env, c.body, errs)
			continue
		}
		if stack.Tier != c.want || stack.Version != c.want {
			t.Errorf("%s %q: Tier = %q, environment.tier = %q, want %q", c.env, c.body, stack.Tier, stack.Version, c.want)
		}
		if declared := stack.TierRange.Filename != ""; declared != (c.body != "") {
			t.Errorf("%s %q: TierRange = %v, want declared = %v", c.env, c.body, stack.TierRange, c.body != "")
		}
	}
	_, errs := load("live", "  tier = \"prodution\"\n")
	for _, want := range []string{"obcd.hcl:7,10", "Invalid tier", `Did you mean "production"?`} {
		if !strings.Contains(errs, want) {
			t.Errorf("tier = \"prodution\": %s\nwant %q", errs, want)
		}
	}
}
