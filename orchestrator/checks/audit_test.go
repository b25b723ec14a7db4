package checks

import (
	"flag"
	"os"
	"strings"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
)

var update = flag.Bool("update", false, "rewrite golden files")

func fakeFinding(code string, cat Category, p Priority, sev Severity) Finding {
	return Finding{Rule: &Rule{Code: code, Category: cat, Priority: p, Severity: sev, Title: code, Impact: "i", Fix: "f."}}
}

// TestAudit_ScoringRules pins the written scoring rules.
func TestAudit_ScoringRules(t *testing.T) {
	stack := &stackhcl.Stack{Name: "demo", Environment: "staging"}
	cases := []struct {
		name      string
		findings  []Finding
		score     int
		category  Category
		catScore  int
		catStatus string
		ready     bool
	}{
		{"no findings", nil, 100, CategoryDatabase, 100, StatusComplete, true},
		{"one critical", []Finding{fakeFinding("x.1", CategoryDatabase, PriorityCritical, SeverityError)},
			97, CategoryDatabase, 60, StatusPartial, false}, // (11*100+60)/12 = 96.67
		{"one high warning", []Finding{fakeFinding("x.2", CategorySecurity, PriorityHigh, SeverityWarning)},
			98, CategorySecurity, 80, StatusGood, true}, // 98.33
		{"one medium", []Finding{fakeFinding("x.3", CategoryAPI, PriorityMedium, SeverityWarning)},
			99, CategoryAPI, 90, StatusGood, true},
		{"three high", []Finding{
			fakeFinding("x.4", CategoryRedis, PriorityHigh, SeverityWarning),
			fakeFinding("x.5", CategoryRedis, PriorityHigh, SeverityWarning),
			fakeFinding("x.6", CategoryRedis, PriorityHigh, SeverityWarning)},
			95, CategoryRedis, 40, StatusNeedsWork, true}, // 95
		{"floor at zero", []Finding{
			fakeFinding("x.7", CategoryEmail, PriorityCritical, SeverityError),
			fakeFinding("x.8", CategoryEmail, PriorityCritical, SeverityError),
			fakeFinding("x.9", CategoryEmail, PriorityCritical, SeverityError)},
			92, CategoryEmail, 0, StatusNeedsWork, false}, // 91.67
		{"low info", []Finding{fakeFinding("x.10", CategoryMonitoring, PriorityLow, SeverityInfo)},
			100, CategoryMonitoring, 95, StatusGood, true}, // 99.58
		{"error without critical priority blocks", []Finding{fakeFinding("x.11", CategorySecurity, PriorityHigh, SeverityError)},
			98, CategorySecurity, 80, StatusGood, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Audit(stack, tc.findings, false)
			if r.Score != tc.score || r.Ready != tc.ready {
				t.Errorf("score %d ready %v, want %d %v", r.Score, r.Ready, tc.score, tc.ready)
			}
			for _, c := range r.Categories {
				if c.Category == tc.category && (c.Score != tc.catScore || c.Status != tc.catStatus) {
					t.Errorf("%s = %d %s, want %d %s", c.Category, c.Score, c.Status, tc.catScore, tc.catStatus)
				}
			}
			if len(r.Categories) != 12 {
				t.Errorf("%d categories, want 12", len(r.Categories))
			}
		})
	}
}

func TestAudit_StatusBoundaries(t *testing.T) {
	for score, want := range map[int]string{100: StatusComplete, 99: StatusGood, 80: StatusGood, 79: StatusPartial, 60: StatusPartial, 59: StatusNeedsWork, 0: StatusNeedsWork} {
		if got := StatusFor(score); got != want {
			t.Errorf("StatusFor(%d) = %s, want %s", score, got, want)
		}
	}
}

func TestAudit_FindingsOrderedByPriority(t *testing.T) {
	r := Audit(&stackhcl.Stack{}, []Finding{
		fakeFinding("b.medium", CategoryAPI, PriorityMedium, SeverityWarning),
		fakeFinding("a.high", CategoryAPI, PriorityHigh, SeverityWarning),
		fakeFinding("c.critical", CategoryAPI, PriorityCritical, SeverityError),
	}, false)
	var got []string
	for _, f := range r.Findings {
		got = append(got, f.Rule.Code)
	}
	if strings.Join(got, ",") != "c.critical,a.high,b.medium" {
		t.Errorf("order = %v", got)
	}
}

// TestDocs_CatalogInSync keeps docs/checks.md generated from the catalog.
func TestDocs_CatalogInSync(t *testing.T) {
	path := "../../docs/checks.md"
	want := CatalogMarkdown()
	if *update {
		if err := os.MkdirAll("../../docs", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./orchestrator/checks -update)", err)
	}
	if string(got) != want {
		t.Error("docs/checks.md is out of date with the rule catalog; run go test ./orchestrator/checks -update")
	}
	for _, rule := range Catalog() {
		if !strings.Contains(string(got), "`"+rule.Code+"`") {
			t.Errorf("docs/checks.md does not document %s", rule.Code)
		}
	}
}
