package checks

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/templates"
)

// stackFixtures holds clean.hcl and one <code>.hcl per static rule: a copy
// of clean.hcl with the minimal change that makes exactly that rule fail.
// A <code>.waived.hcl is <code>.hcl with a waive block for that rule.
const stackFixtures = "../../testdata/stacks"

// fixtureEnv is the environment a fixture is evaluated for: production,
// unless its first line reads "# env: <name>".
func fixtureEnv(t *testing.T, path string) string {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	first, _, _ := strings.Cut(string(src), "\n")
	if env, ok := strings.CutPrefix(strings.TrimSpace(first), "# env:"); ok {
		return strings.TrimSpace(env)
	}
	return "production"
}

func loadStack(t *testing.T, path, env string) *stackhcl.Stack {
	t.Helper()
	loader := stackhcl.NewLoader(stackhcl.Options{
		Environment: env,
		LookupEnv:   func(string) (string, bool) { return "", false },
	})
	stack, diags := loader.Load(path)
	if diags.HasErrors() {
		var b strings.Builder
		_ = loader.WriteDiagnostics(&b, diags, false)
		t.Fatalf("%s does not load for %s:\n%s", path, env, b.String())
	}
	return stack
}

// loadFixtureSecrets reads a dotenv file of OBCD_SECRET_<NAME> values into
// secrets keyed by the stack's secret names. A key that names no declared
// secret is a broken fixture.
func loadFixtureSecrets(t *testing.T, path string, stack *stackhcl.Stack) templates.MapSecrets {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read secrets: %v", err)
	}
	values, err := dotenv.UnmarshalBytesWithLookup(src, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("%s is not a dotenv file: %v", path, err)
	}
	secrets := templates.MapSecrets{}
	byEnvVar := map[string]string{}
	for _, secret := range stack.Secrets {
		byEnvVar[secret.EnvVar()] = secret.Name
	}
	for key, value := range values {
		name, ok := byEnvVar[key]
		if !ok {
			t.Fatalf("%s sets %s, but %s declares no such secret", path, key, stack.File)
		}
		secrets[name] = value
	}
	return secrets
}

// fixtureSecretsPath is <code>.secrets when it exists, else clean.secrets.
func fixtureSecretsPath(code string) string {
	path := filepath.Join(stackFixtures, code+".secrets")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	return filepath.Join(stackFixtures, "clean.secrets")
}

// fixture is one stack file evaluated for one environment, with secrets.
type fixture struct {
	name    string
	input   *Input
	secrets templates.MapSecrets
}

func loadFixture(t *testing.T, code string) fixture {
	t.Helper()
	path := filepath.Join(stackFixtures, code+".hcl")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("static rule %s has no fixture %s: add a copy of clean.hcl that fails only this rule", code, path)
	}
	env := fixtureEnv(t, path)
	stack := loadStack(t, path, env)
	secrets := loadFixtureSecrets(t, fixtureSecretsPath(code), stack)
	return fixture{name: code + "/" + env, input: &Input{Stack: stack, Secrets: secrets}, secrets: secrets}
}

// strongFakeSecrets gives every declared secret a long, deterministic,
// non-placeholder value.
func strongFakeSecrets(stack *stackhcl.Stack) templates.MapSecrets {
	secrets := templates.MapSecrets{}
	for _, secret := range stack.Secrets {
		sum := sha256.Sum256([]byte("obcd rules test " + secret.Name))
		secrets[secret.Name] = hex.EncodeToString(sum[:])
	}
	return secrets
}

func staticRules() []*Rule {
	var out []*Rule
	for _, rule := range Catalog() {
		if rule.Check != nil {
			out = append(out, rule)
		}
	}
	return out
}

func findingCodes(findings []Finding) []string {
	seen := map[string]bool{}
	var codes []string
	for _, f := range findings {
		if !seen[f.Rule.Code] {
			seen[f.Rule.Code] = true
			codes = append(codes, f.Rule.Code)
		}
	}
	sort.Strings(codes)
	return codes
}

func describeFindings(findings []Finding) string {
	var b strings.Builder
	for _, f := range findings {
		b.WriteString("\n  " + f.Rule.Code + " " + f.Location() + ": " + f.Text())
	}
	return b.String()
}

func TestRuleFixtures_EachFailsExactlyItsRule(t *testing.T) {
	for _, rule := range staticRules() {
		t.Run(rule.Code, func(t *testing.T) {
			fx := loadFixture(t, rule.Code)
			findings := Run(fx.input)
			if got := findingCodes(findings); strings.Join(got, ",") != rule.Code {
				t.Errorf("%s: codes = %v, want exactly [%s]%s", fx.name, got, rule.Code, describeFindings(findings))
			}
		})
	}
}

func TestRuleFixtures_EveryFixtureNamesAStaticRule(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(stackFixtures, "*"))
	if err != nil {
		t.Fatal(err)
	}
	static := map[string]bool{"clean": true}
	for _, rule := range staticRules() {
		static[rule.Code] = true
	}
	for _, path := range paths {
		base := filepath.Base(path)
		code := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(base, ".hcl"), ".secrets"), ".waived")
		if !static[code] {
			t.Errorf("fixture %s names no static rule", base)
		}
	}
}

func TestRuleFindings_PointIntoTheStackFile(t *testing.T) {
	for _, rule := range staticRules() {
		t.Run(rule.Code, func(t *testing.T) {
			fx := loadFixture(t, rule.Code)
			for _, f := range Run(fx.input) {
				r := f.Range
				if r.Filename == "" || r.Start.Line < 1 || r.End.Byte <= r.Start.Byte {
					t.Errorf("%s: %s %q has no usable range: %#v", fx.name, f.Rule.Code, f.Text(), r)
				}
				if r.Filename != fx.input.Stack.File {
					t.Errorf("%s: %s points at %s, want %s", fx.name, f.Rule.Code, r.Filename, fx.input.Stack.File)
				}
				if f.Message == "" {
					t.Errorf("%s: %s has no specific message", fx.name, f.Rule.Code)
				}
			}
		})
	}
}

func TestRuleFindings_NeverQuoteSecretValues(t *testing.T) {
	for _, rule := range staticRules() {
		t.Run(rule.Code, func(t *testing.T) {
			fx := loadFixture(t, rule.Code)
			for _, f := range Run(fx.input) {
				for name, value := range fx.secrets {
					if strings.Contains(f.Text(), value) {
						t.Errorf("%s: %s message quotes the value of secret %q: %s", fx.name, f.Rule.Code, name, f.Text())
					}
				}
			}
		})
	}
}

func TestCleanStacks_NoFindings(t *testing.T) {
	cases := []struct {
		path    string
		secrets func(*testing.T, *stackhcl.Stack) templates.MapSecrets
	}{
		{filepath.Join(stackFixtures, "clean.hcl"), func(t *testing.T, s *stackhcl.Stack) templates.MapSecrets {
			return loadFixtureSecrets(t, filepath.Join(stackFixtures, "clean.secrets"), s)
		}},
		{"../../stacks/obcms.hcl", func(_ *testing.T, s *stackhcl.Stack) templates.MapSecrets { return strongFakeSecrets(s) }},
	}
	for _, tc := range cases {
		for _, env := range []string{"staging", "production"} {
			t.Run(filepath.Base(tc.path)+"/"+env, func(t *testing.T) {
				stack := loadStack(t, tc.path, env)
				secrets := tc.secrets(t, stack)
				for _, secret := range stack.Secrets {
					if secrets[secret.Name] == "" {
						t.Fatalf("no test value for secret %q: static secret rules would not judge it", secret.Name)
					}
				}
				if findings := Run(&Input{Stack: stack, Secrets: secrets}); len(findings) > 0 {
					t.Errorf("%d finding(s), want none:%s", len(findings), describeFindings(findings))
				}
			})
		}
	}
}

func TestCleanStack_SecretRulesSilentWithoutValues(t *testing.T) {
	stack := loadStack(t, filepath.Join(stackFixtures, "clean.hcl"), "production")
	if findings := Run(&Input{Stack: stack}); len(findings) > 0 {
		t.Errorf("without secret values: %d finding(s), want none:%s", len(findings), describeFindings(findings))
	}
}

func TestCatalog_RulesAreWellFormed(t *testing.T) {
	categories := map[Category]bool{}
	for _, c := range Categories {
		categories[c] = true
	}
	if len(categories) != 12 {
		t.Errorf("Categories has %d distinct entries, want 12", len(categories))
	}
	severities := map[Severity]bool{SeverityError: true, SeverityWarning: true, SeverityInfo: true}
	priorities := map[Priority]bool{PriorityCritical: true, PriorityHigh: true, PriorityMedium: true, PriorityLow: true}
	seen := map[string]bool{}
	for _, rule := range Catalog() {
		if seen[rule.Code] {
			t.Errorf("code %s is registered twice", rule.Code)
		}
		seen[rule.Code] = true
		if !categories[rule.Category] {
			t.Errorf("%s: category %q is not one of the twelve", rule.Code, rule.Category)
		}
		if !severities[rule.Severity] {
			t.Errorf("%s: unknown severity %q", rule.Code, rule.Severity)
		}
		if !priorities[rule.Priority] {
			t.Errorf("%s: unknown priority %q", rule.Code, rule.Priority)
		}
		if rule.Title == "" || strings.Contains(rule.Title, "\n") || rule.Impact == "" || rule.Fix == "" || rule.Source == "" {
			t.Errorf("%s: needs a one-line title, an impact, a fix and a source", rule.Code)
		}
		if rule.Live == (rule.Check != nil) {
			t.Errorf("%s: a rule is either live (no Check) or static (with Check)", rule.Code)
		}
		if Lookup(rule.Code) != rule {
			t.Errorf("Lookup(%q) does not return the rule", rule.Code)
		}
	}
}

// TestCatalog_AuditBlockersAreTheSeedsFive pins the audit seed's five
// critical blockers: a stack with all of them has exactly these criticals.
func TestCatalog_AuditBlockersAreTheSeedsFive(t *testing.T) {
	var got []string
	for _, rule := range staticRules() {
		if rule.Priority == PriorityCritical {
			got = append(got, rule.Code)
		}
	}
	want := "audit.A001,audit.A004,audit.A005,monitoring.E001,monitoring.E009"
	if strings.Join(got, ",") != want {
		t.Errorf("critical static rules = %v, want %s", got, want)
	}
}

func TestRulePlaceholderAndWeakSecrets(t *testing.T) {
	placeholders := []string{
		"md5REPLACE_WITH_ACTUAL_PASSWORD_HASH", "CHANGEME", "please-changeme-now", "placeholder-value-0001",
		"xxxxxxxxxxxxxxxxxxxx", "TODO: generate", "django-insecure-abcdefghijklmnopqrstuvwxyz", "password123", "admin", "Secret!",
	}
	for _, v := range placeholders {
		if !looksLikePlaceholder(v) {
			t.Errorf("looksLikePlaceholder(%q) = false, want true", v)
		}
	}
	real := []string{
		"", "Vb8Nq3Kr7Wm2Xp6Tz1Lc", "https://a1b2c3d4e5f6@o12345.ingest.sentry.io/67890",
		"x7TodoKq2Lm9Rt4Wp8Zs", "adminpassword-Kq2Lm9Rt4Wp8Zs", "boxxy-Kq2Lm9Rt4Wp8Zs",
	}
	for _, v := range real {
		if looksLikePlaceholder(v) {
			t.Errorf("looksLikePlaceholder(%q) = true, want false", v)
		}
	}
	for value, want := range map[string]bool{
		"short":                    true,
		"abababababababababababab": true,
		"abcdefabcdefabcdef":       false,
		"Vb8Nq3Kr7Wm2Xp6Tz1Lc":     false,
	} {
		if weak, _ := isWeakSecret(value); weak != want {
			t.Errorf("isWeakSecret(%q) = %v, want %v", value, weak, want)
		}
	}
}
