package orchestrator

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obcd/obcd/orchestrator/engine"
)

var updatePlans = flag.Bool("update", false, "rewrite golden files")

func webSpec(image string, replicas int) engine.ServiceSpec {
	return engine.ServiceSpec{Project: "demo-staging", Name: "web", Image: image, Replicas: replicas, StartFirst: true,
		DependsOn: []string{"db", "migrate"}}
}

var (
	dbSpec      = engine.ServiceSpec{Project: "demo-staging", Name: "db", Image: "postgres:15", Replicas: 1}
	backupSpec  = engine.ServiceSpec{Project: "demo-staging", Name: "backup", Image: "postgres:15", Replicas: 1, DependsOn: []string{"db"}}
	migrateSpec = engine.ServiceSpec{Project: "demo-staging", Name: "migrate", Image: "demo/app:1", Replicas: 1, OneOff: true, DependsOn: []string{"db"}}
)

func running(spec engine.ServiceSpec, number int) engine.Container {
	return engine.Container{ID: fmt.Sprintf("%s-id-%d", spec.Name, number), Name: engine.ContainerName(spec.Project, spec.Name, number), Service: spec.Name,
		Number: number, Hash: spec.Hash(), Image: spec.Image, State: "running"}
}

// builtAs is a running container created from the image with this ID.
func builtAs(spec engine.ServiceSpec, number int, imageID string) engine.Container {
	c := running(spec, number)
	c.ImageID = imageID
	return c
}

// TestMakePlan_Golden pins plans as printed text: the --dry-run output is
// the oracle. -update rewrites testdata/plans.
func TestMakePlan_Golden(t *testing.T) {
	v1, v2 := webSpec("demo/app:1", 2), webSpec("demo/app:2", 2)
	migrate2 := migrateSpec
	migrate2.Image = "demo/app:2"
	rebuilt := v1
	rebuilt.ImageID = "sha256:9e1bu11t0000bbbb"
	crashed := running(dbSpec, 1)
	crashed.State = "exited"
	cases := []struct {
		name     string
		desired  []engine.ServiceSpec
		observed []engine.Container
		changes  bool
		backup   string
	}{
		{"first-deploy", []engine.ServiceSpec{dbSpec, migrateSpec, v1}, nil, true, ""},
		{"no-op", []engine.ServiceSpec{dbSpec, migrateSpec, v1}, []engine.Container{running(dbSpec, 1), running(v1, 1), running(v1, 2)}, false, ""},
		{"upgrade", []engine.ServiceSpec{dbSpec, migrate2, v2}, []engine.Container{running(dbSpec, 1), running(v1, 1), running(v1, 2)}, true, ""},
		{"scale-down-and-gone", []engine.ServiceSpec{dbSpec, migrateSpec, webSpec("demo/app:1", 1)},
			[]engine.Container{running(dbSpec, 1), running(v1, 1), running(v1, 2), {Name: "demo-staging-old-1", Service: "old", Number: 1, State: "running"}}, true, ""},
		{"exited-db", []engine.ServiceSpec{dbSpec}, []engine.Container{crashed}, true, ""},
		// The backup job's dump is a wave of its own before migrate; the
		// start-first replacements and the new replica take the numbers
		// after the highest one web has, in plan order.
		{"upgrade-backup-scale-up", []engine.ServiceSpec{dbSpec, backupSpec, migrate2, webSpec("demo/app:2", 3)},
			[]engine.Container{running(dbSpec, 1), running(backupSpec, 1), running(v1, 1), running(v1, 2)}, true, "backup"},
		// A one-off a killed deploy left exited is removed; one still
		// running is left to finish.
		{"leftover-one-offs", []engine.ServiceSpec{dbSpec, migrateSpec, v1},
			[]engine.Container{running(dbSpec, 1), running(v1, 1), running(v1, 2),
				{ID: "left-1", Name: "demo-staging-migrate-run-20261130t090000z-aaaaaa", Service: "migrate", OneOff: true, State: "exited", Release: "20261130T090000Z-aaaaaa"},
				{ID: "left-2", Name: "demo-staging-migrate-run-20261130t100000z-bbbbbb", Service: "migrate", OneOff: true, State: "running", Release: "20261130T100000Z-bbbbbb"}}, true, ""},
		{"rebuilt-image", []engine.ServiceSpec{dbSpec, migrateSpec, rebuilt}, []engine.Container{running(dbSpec, 1), builtAs(v1, 1, "sha256:0ld1mage0000aaaa"), builtAs(v1, 2, "sha256:0ld1mage0000aaaa")}, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ordered, err := DependencyOrder(tc.desired)
			if err != nil {
				t.Fatal(err)
			}
			plan := MakePlan(PlanInput{Project: "demo-staging", Release: "20260101T000000Z-abc123", Desired: ordered, Observed: tc.observed, Backup: tc.backup})
			if plan.Changes() != tc.changes {
				t.Errorf("Changes() = %v, want %v", plan.Changes(), tc.changes)
			}
			path := filepath.Join("..", "testdata", "plans", tc.name+".txt")
			if *updatePlans {
				if err := os.WriteFile(path, []byte(plan.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test ./... -update)", err)
			}
			if string(want) != plan.String() {
				t.Errorf("plan differs from %s:\n%s", path, plan)
			}
		})
	}
}

func TestMakePlan_NeverPrintsSecretValues(t *testing.T) {
	spec := webSpec("demo/app:1", 1)
	spec.Env = map[string]string{"DB_PASSWORD": "hunter2-secret-value"}
	plan := MakePlan(PlanInput{Project: "demo-staging", Release: "r1", Desired: []engine.ServiceSpec{spec}})
	if s := plan.String(); len(s) == 0 || strings.Contains(s, "hunter2") {
		t.Errorf("plan leaks a value:\n%s", s)
	}
}
