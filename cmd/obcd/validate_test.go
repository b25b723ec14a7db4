package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot runs obcd from the repository root, so paths in its output
// are the ones a user would see.
const repoRoot = "../.."

// stateWith copies a fixture's secrets into a fresh state dir as the
// environment's secrets file (mode 0600, which git does not keep).
func stateWith(t *testing.T, secretsFile, env string) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(repoRoot, secretsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, env+".secrets"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestValidate_ExitCodes is the monitoring seed's contract, through the
// real binary: 0 all pass, 1 errors, 2 warnings under --strict.
func TestValidate_ExitCodes(t *testing.T) {
	clean := stateWith(t, "testdata/stacks/clean.secrets", "production")
	cases := []struct {
		name    string
		fixture string
		args    []string
		want    int
		stdout  string
	}{
		{"clean passes", "clean.hcl", nil, 0, "Validation PASSED."},
		{"clean passes strict", "clean.hcl", []string{"--strict"}, 0, "Validation PASSED."},
		{"error fails", "monitoring.E001.hcl", nil, 1, "monitoring.E001"},
		{"warning passes without strict", "monitoring.W008.hcl", nil, 0, "PASSED with warnings"},
		{"warning fails under strict", "monitoring.W008.hcl", []string{"--strict"}, 2, "monitoring.W008"},
		{"error wins over strict", "monitoring.E001.hcl", []string{"--strict"}, 1, "FAILED"},
		{"waived warning passes strict", "audit.A007.waived.hcl", []string{"--strict"}, 0, "Waived (1):\n  ~ audit.A007"},
		{"waived error still fails", "monitoring.E001.waived.hcl", nil, 1, "errors cannot be waived: fix them"},
		{"waiver of an unknown code fails", "waiver.V001.hcl", nil, 1, `did you mean "audit.A007"`},
		{"stale waiver is info under strict", "waiver.V003.hcl", []string{"--strict"}, 0, "i waiver.V003"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"validate", "production", "-f", "testdata/stacks/" + tc.fixture, "--state-dir", clean}, tc.args...)
			r := obcd(t, repoRoot, nil, args...)
			if r.code != tc.want {
				t.Fatalf("exit %d, want %d\n%s%s", r.code, tc.want, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, r.stdout)
			}
		})
	}
}

func TestValidate_FindingsPointAtFileLine(t *testing.T) {
	r := obcd(t, repoRoot, nil, "validate", "production", "-f", "testdata/stacks/monitoring.E001.hcl",
		"--state-dir", stateWith(t, "testdata/stacks/clean.secrets", "production"))
	if !strings.Contains(r.stdout, "testdata/stacks/monitoring.E001.hcl:") || !strings.Contains(r.stdout, "fix: ") {
		t.Errorf("finding without file:line or fix:\n%s", r.stdout)
	}
}

func TestValidate_JSON(t *testing.T) {
	r := obcd(t, repoRoot, nil, "validate", "production", "-f", "testdata/stacks/monitoring.W008.hcl", "--strict", "--json",
		"--state-dir", stateWith(t, "testdata/stacks/clean.secrets", "production"))
	var out struct {
		Findings []struct{ Code, Severity, File string }
		Summary  struct{ Errors, Warnings int }
		ExitCode int `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if r.code != 2 || out.ExitCode != 2 || len(out.Findings) != 1 || out.Findings[0].Code != "monitoring.W008" || out.Summary.Warnings != 1 {
		t.Errorf("exit %d, json %+v", r.code, out)
	}
}

func TestValidate_WaivedFindingIsListedApartWithItsReason(t *testing.T) {
	r := obcd(t, repoRoot, nil, "validate", "production", "-f", "testdata/stacks/audit.A007.waived.hcl", "--strict",
		"--state-dir", stateWith(t, "testdata/stacks/clean.secrets", "production"))
	for _, want := range []string{
		"Waived (1):\n  ~ audit.A007  testdata/stacks/audit.A007.waived.hcl:3:1\n",
		"    reason: Grafana is not packaged by Debian; this stack runs only Debian-built images.\n",
		"    waiver: testdata/stacks/audit.A007.waived.hcl:102:1\n",
		"Summary: 0 error(s), 0 warning(s), 0 info, 1 waived; static checks. Validation PASSED.",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "Warnings (") {
		t.Errorf("a waived warning is also listed as a warning:\n%s", r.stdout)
	}
}

func TestValidate_JSONMarksWaivedFindings(t *testing.T) {
	r := obcd(t, repoRoot, nil, "validate", "production", "-f", "testdata/stacks/audit.A007.waived.hcl", "--strict", "--json",
		"--state-dir", stateWith(t, "testdata/stacks/clean.secrets", "production"))
	var out struct {
		Findings []struct {
			Code         string
			Waived       *bool
			WaiverReason string `json:"waiver_reason"`
		}
		Summary struct {
			Errors, Warnings, Info int
			Waived                 *int
		}
		ExitCode int `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if r.code != 0 || out.ExitCode != 0 || len(out.Findings) != 1 {
		t.Fatalf("exit %d, json %+v", r.code, out)
	}
	f := out.Findings[0]
	if f.Code != "audit.A007" || f.Waived == nil || !*f.Waived || !strings.HasPrefix(f.WaiverReason, "Grafana is not packaged by Debian") {
		t.Errorf("finding %+v: want audit.A007 with waived true and the reason", f)
	}
	if out.Summary.Waived == nil || *out.Summary.Waived != 1 || out.Summary.Warnings != 0 || out.Summary.Errors != 0 {
		t.Errorf("summary %+v: want waived 1 and no warnings", out.Summary)
	}

	plain := obcd(t, repoRoot, nil, "validate", "production", "-f", "testdata/stacks/monitoring.W008.hcl", "--json",
		"--state-dir", stateWith(t, "testdata/stacks/clean.secrets", "production"))
	if !strings.Contains(plain.stdout, `"waived": false`) || strings.Contains(plain.stdout, "waiver_reason") {
		t.Errorf("an unwaived finding must say waived false and carry no reason:\n%s", plain.stdout)
	}
}

func TestValidate_ListPrintsTheCatalog(t *testing.T) {
	r := obcd(t, repoRoot, nil, "validate", "--list")
	for _, code := range []string{"monitoring.E001", "monitoring.W008", "audit.A005", "secrets.S003", "deploy.D001"} {
		if !strings.Contains(r.stdout, code) {
			t.Errorf("--list lacks %s", code)
		}
	}
	if r.code != 0 {
		t.Errorf("exit %d", r.code)
	}
}

// TestValidate_ListJSONUsesTheFindingsKeys: --list --json names its
// fields as validate --json does (code, severity, ...).
func TestValidate_ListJSONUsesTheFindingsKeys(t *testing.T) {
	r := obcd(t, repoRoot, nil, "validate", "--list", "--json")
	var rules []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rules); err != nil || len(rules) == 0 {
		t.Fatalf("--list --json: %v\n%s", err, r.stdout)
	}
	for _, key := range []string{"code", "severity", "priority", "category", "title", "impact", "fix", "source", "live"} {
		if _, ok := rules[0][key]; !ok {
			t.Errorf("--list --json entries lack %q: %v", key, rules[0])
		}
	}
	if _, upper := rules[0]["Code"]; upper {
		t.Errorf("--list --json still uses \"Code\": %v", rules[0])
	}
}

func TestValidate_InvalidStackExits1(t *testing.T) {
	r := obcd(t, repoRoot, nil, "validate", "staging", "-f", "testdata/hcl/type_error.hcl")
	if r.code != 1 || !strings.Contains(r.stderr, "Unsuitable value type") {
		t.Errorf("exit %d\n%s", r.code, r.stderr)
	}
}

// TestAudit_OBCMSAsAuditedListsTheFiveBlockers reproduces the audit seed:
// exactly its five critical blockers, and a report pinned as golden.
func TestAudit_OBCMSAsAuditedListsTheFiveBlockers(t *testing.T) {
	state := stateWith(t, "testdata/audit/obcms-audited.secrets", "production")
	r := obcd(t, repoRoot, nil, "audit", "production", "-f", "testdata/audit/obcms-audited.hcl", "--state-dir", state, "--format", "json")
	if r.code != ExitFailure {
		t.Fatalf("exit %d, want 1 (not ready)\n%s", r.code, r.stderr)
	}
	var report struct {
		Score    int
		Ready    bool
		Findings []struct{ Code, Priority string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatal(err)
	}
	var critical []string
	for _, f := range report.Findings {
		if f.Priority == "critical" {
			critical = append(critical, f.Code)
		}
	}
	want := "audit.A001,audit.A004,audit.A005,monitoring.E001,monitoring.E009"
	if strings.Join(critical, ",") != want {
		t.Errorf("critical blockers = %v, want %s", critical, want)
	}
	if report.Ready || report.Score >= 100 {
		t.Errorf("score %d ready %v", report.Score, report.Ready)
	}

	md := obcd(t, repoRoot, nil, "audit", "production", "-f", "testdata/audit/obcms-audited.hcl", "--state-dir", state)
	goldenFile(t, filepath.Join(repoRoot, "testdata/audit/obcms-audited.md"), md.stdout)
	if !strings.Contains(md.stdout, "## Critical Blocking Issues (Must Fix)") || strings.Count(md.stdout, "CRITICAL - BLOCKS DEPLOYMENT") != 5 {
		t.Errorf("markdown does not list exactly five blockers")
	}
}

func TestAudit_WaivedFindingIsAnAcceptedRisk(t *testing.T) {
	state := stateWith(t, "testdata/stacks/clean.secrets", "production")
	r := obcd(t, repoRoot, nil, "audit", "production", "-f", "testdata/stacks/audit.A007.waived.hcl", "--state-dir", state, "--format", "json")
	var report struct {
		Score         int
		Ready         bool
		Findings      []struct{ Code string }
		AcceptedRisks []struct {
			Code         string
			Waived       bool
			WaiverReason string `json:"waiver_reason"`
		} `json:"accepted_risks"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("%v\n%s", err, r.stderr)
	}
	if r.code != 0 || report.Score != 100 || !report.Ready || len(report.Findings) != 0 {
		t.Errorf("exit %d score %d ready %v findings %v: a waived warning must cost nothing", r.code, report.Score, report.Ready, report.Findings)
	}
	if len(report.AcceptedRisks) != 1 || report.AcceptedRisks[0].Code != "audit.A007" || !report.AcceptedRisks[0].Waived || report.AcceptedRisks[0].WaiverReason == "" {
		t.Errorf("accepted risks = %+v", report.AcceptedRisks)
	}
	md := obcd(t, repoRoot, nil, "audit", "production", "-f", "testdata/stacks/audit.A007.waived.hcl", "--state-dir", state)
	if !strings.Contains(md.stdout, "## Accepted Risks (Waived)") ||
		!strings.Contains(md.stdout, "**Reason accepted:** Grafana is not packaged by Debian; this stack runs only Debian-built images.") {
		t.Errorf("markdown does not list the accepted risk with its reason:\n%s", md.stdout)
	}
}

func TestAudit_ShippedStackScores100(t *testing.T) {
	dir := workspace(t)
	for _, env := range []string{"staging", "production"} {
		obcd(t, dir, nil, "secrets", "init", env)
		r := obcd(t, dir, nil, "audit", env, "--format", "json")
		var report struct {
			Score    int
			Ready    bool
			Findings []struct{ Code string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
			t.Fatalf("%s: %v\n%s", env, err, r.stderr)
		}
		if r.code != 0 || report.Score != 100 || !report.Ready || len(report.Findings) != 0 {
			t.Errorf("%s: exit %d score %d findings %v", env, r.code, report.Score, report.Findings)
		}
	}
}

func TestAudit_OutWritesFile(t *testing.T) {
	dir := workspace(t)
	obcd(t, dir, nil, "secrets", "init", "staging")
	r := obcd(t, dir, nil, "audit", "staging", "--out", "report.md")
	data, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if r.code != 0 || err != nil || !strings.Contains(string(data), "Overall Readiness Score: 100/100") {
		t.Errorf("exit %d err %v\n%s", r.code, err, data)
	}
	if bad := obcd(t, dir, nil, "audit", "staging", "--format", "pdf"); bad.code != ExitUsage {
		t.Errorf("--format pdf: exit %d", bad.code)
	}
}

func goldenFile(t *testing.T, path, got string) {
	t.Helper()
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./... -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run go test ./... -update to accept)", path)
	}
}

// TestValidate_JSONOnAnInvalidStackPrintsItsErrors: --json on a stack
// that does not load still prints JSON on stdout: the diagnostics, with
// file, line and column, and exit code 1.
func TestValidate_JSONOnAnInvalidStackPrintsItsErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "obcd.hcl"), []byte("stack \"x\" {\n  app_image = \n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := obcd(t, dir, nil, "validate", "staging", "--json")
	var report struct {
		Findings []struct {
			Code, Severity, File string
			Line, Column         int
		} `json:"findings"`
		ExitCode int `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if r.code != ExitFailure || report.ExitCode != ExitFailure || len(report.Findings) == 0 {
		t.Fatalf("exit %d, report %+v; want 1 with findings", r.code, report)
	}
	if f := report.Findings[0]; f.Code != "stack.invalid" || f.Severity != "error" || !strings.HasSuffix(f.File, "obcd.hcl") || f.Line == 0 || f.Column == 0 {
		t.Errorf("finding %+v, want stack.invalid with file, line and column", f)
	}
}

// TestValidate_SaysWhichRuleSetApplies: validate names the tier whose
// rules it ran and where it comes from, in text and in JSON, and an
// environment named "live" that declares tier = "production" fails the
// production-only rule its fixture breaks, as "production" does.
func TestValidate_SaysWhichRuleSetApplies(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot, "testdata/stacks/monitoring.E011.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "obcd.hcl")
	live := strings.Replace(string(src), "environment \"production\" {\n", "environment \"live\" {\n  tier = \"production\"\n", 1)
	if err := os.WriteFile(file, []byte(live), 0o644); err != nil {
		t.Fatal(err)
	}
	state := stateWith(t, "testdata/stacks/clean.secrets", "live")
	r := obcd(t, dir, nil, "validate", "live", "-f", "obcd.hcl", "--state-dir", state)
	if r.code != 1 || !strings.Contains(r.stdout, "Rules for tier production, as declared at obcd.hcl:") || !strings.Contains(r.stdout, "monitoring.E011") {
		t.Errorf("live with tier production: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = obcd(t, dir, nil, "validate", "staging", "-f", "obcd.hcl", "--json", "--state-dir", stateWith(t, "testdata/stacks/clean.secrets", "staging"))
	var out struct {
		Tier     string `json:"tier"`
		TierFrom string `json:"tier_from"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Tier != "staging" || out.TierFrom != "name" {
		t.Errorf("staging --json: tier %q from %q (%v)\n%s", out.Tier, out.TierFrom, err, r.stdout)
	}
	r = obcd(t, dir, nil, "validate", "staging", "-f", "obcd.hcl", "--state-dir", stateWith(t, "testdata/stacks/clean.secrets", "staging"))
	if !strings.Contains(r.stdout, `Rules for tier staging, from the environment's name (declare tier = "production"`) {
		t.Errorf("staging: the header does not say the tier comes from the name:\n%s", r.stdout)
	}
}
