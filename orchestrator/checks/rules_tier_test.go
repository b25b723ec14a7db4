package checks

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
)

// retierFixture writes a copy of a rule's fixture whose environment
// "production" is renamed to name and declares tier (none when ""), and
// loads it for name.
func retierFixture(t *testing.T, code, name, tier string) *Input {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(stackFixtures, code+".hcl"))
	if err != nil {
		t.Fatal(err)
	}
	header := "environment \"" + name + "\" {\n"
	if tier != "" {
		header += "  tier = \"" + tier + "\"\n"
	}
	if !strings.Contains(string(src), "environment \"production\" {\n") {
		t.Fatalf("%s declares no environment \"production\" to rename", code)
	}
	text := strings.Replace(string(src), "environment \"production\" {\n", header, 1)
	path := filepath.Join(t.TempDir(), code+".hcl")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	stack := loadStack(t, path, name)
	return &Input{Stack: stack, Secrets: strongFakeSecrets(stack)}
}

// TestRules_ProductionOnlyRulesKeyOnTheTierNotTheName: the rules that
// apply only to production fire for an environment of any name that
// declares tier = "production", not for one named production that
// declares another tier, and, when it declares none, by its name.
func TestRules_ProductionOnlyRulesKeyOnTheTierNotTheName(t *testing.T) {
	for _, code := range []string{"monitoring.E011", "monitoring.W003", "monitoring.W007"} {
		t.Run(code, func(t *testing.T) {
			for _, tc := range []struct {
				name, tier string
				fires      bool
				wantTier   string
			}{
				{"live", "production", true, stackhcl.TierProduction},
				{"live", "", false, stackhcl.TierStaging},
				{"production", "staging", false, stackhcl.TierStaging},
				{"production", "", true, stackhcl.TierProduction},
				{"prod", "", true, stackhcl.TierProduction},
				{"eu-west", "production", true, stackhcl.TierProduction},
			} {
				in := retierFixture(t, code, tc.name, tc.tier)
				if in.Stack.Tier != tc.wantTier {
					t.Errorf("%s tier=%q: Stack.Tier = %q, want %q", tc.name, tc.tier, in.Stack.Tier, tc.wantTier)
				}
				codes := findingCodes(Run(in))
				if got := slices.Contains(codes, code); got != tc.fires {
					t.Errorf("environment %q tier=%q: %s fired = %v, want %v (codes %v)", tc.name, tc.tier, code, got, tc.fires, codes)
				}
				if tc.fires {
					for _, f := range Run(in) {
						if f.Rule.Code == code && !strings.Contains(f.Text(), "(tier production)") {
							t.Errorf("%s's message does not say the tier it applies for: %s", code, f.Text())
						}
					}
				}
			}
		})
	}
}

// TestRules_DebugIsAllowedOnlyInTierDevelopment: secrets.S003 keys on the
// tier too.
func TestRules_DebugIsAllowedOnlyInTierDevelopment(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(stackFixtures, "secrets.S003.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tier  string
		fires bool
	}{{"", true}, {"development", false}, {"staging", true}, {"production", true}} {
		text := string(src)
		if tc.tier != "" {
			text = strings.Replace(text, "environment \"staging\" {\n", "environment \"staging\" {\n  tier = \""+tc.tier+"\"\n", 1)
		}
		path := filepath.Join(t.TempDir(), "s003.hcl")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		stack := loadStack(t, path, "staging")
		codes := findingCodes(Run(&Input{Stack: stack, Secrets: strongFakeSecrets(stack)}))
		if got := slices.Contains(codes, "secrets.S003"); got != tc.fires {
			t.Errorf("staging with tier %q: S003 fired = %v, want %v (codes %v)", tc.tier, got, tc.fires, codes)
		}
	}
}
