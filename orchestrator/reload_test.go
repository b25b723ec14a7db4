package orchestrator

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/orchestrator/probe"

	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/orchestrator/state"
	"github.com/obcd/obcd/templates"
)

// rotateStack is the database tier of the OBCMS stack, small: a primary,
// PgBouncer with the app's user, and web reading that user's password.
const rotateStack = `
stack "rot" {
  app_image = "rot/app"
  version   = var.version
}
variable "version" {
  default = "v1"
}
secret "django_secret_key" {
  length = 64
}
secret "postgres_password" {}
secret "obcms_user_password" {}
django {
  database        = service.pgbouncer
  db_user         = "obcms_user"
  secret_key      = secret.django_secret_key
  migrate_command = ["migrate"]
}
service "postgres" "db" {
  image              = "rot/postgres:15"
  database           = "obcms"
  superuser_password = secret.postgres_password
}
service "pgbouncer" "pgbouncer" {
  image  = "rot/pgbouncer:1"
  server = service.db
  user "obcms_user" {
    password = secret.obcms_user_password
  }
}
service "web" "web" {
  replicas = 2
}
environment "staging" {
  domain = "staging.rot.test"
}
`

func rotateSecrets(password string) templates.MapSecrets {
	return templates.MapSecrets{"django_secret_key": strings.Repeat("k", 64), "postgres_password": "superPass1", "obcms_user_password": password}
}

// rotateDeployer deploys version of rotateStack to eng with password as
// the app user's.
func rotateDeployer(t *testing.T, eng *memEngine, store state.Store, version, password string) *Deployer {
	t.Helper()
	d := memDeployerFrom(t, eng, rotateStack, version)
	d.Store, d.Secrets = store, rotateSecrets(password)
	return d
}

// TestDeploy_ARotatedPasswordReloadsTheDatabaseAndThePoolInPlace: after a
// password changes, the plan reloads roles.sql in the running primary and
// the userlist in the running PgBouncer, in that order, and rolls web
// start-first; neither the database nor the pool is recreated. A deploy
// with nothing new reloads nothing.
func TestDeploy_ARotatedPasswordReloadsTheDatabaseAndThePoolInPlace(t *testing.T) {
	eng, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	ctx := context.Background()
	deployer := func(password string) *Deployer { return rotateDeployer(t, eng, store, "v1", password) }
	if _, err := deployer("oldPass1").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	first := eng.steps()
	if !slices.Contains(first, "apply rot-staging-db-1 10-roles.sql") {
		t.Errorf("a new primary does not apply its roles once healthy:\n%s", strings.Join(first, "\n"))
	}

	planned, err := deployer("newPass2").Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]ActionKind{}
	for _, a := range planned.Plan.Actions {
		kinds[a.Service] = a.Kind
	}
	if kinds["db"] != ActionReload || kinds["pgbouncer"] != ActionReload || kinds["web"] != ActionRecreate {
		t.Fatalf("plan after a rotation: %v\n%s", kinds, planned.Plan)
	}
	text := planned.Plan.String()
	for _, want := range []string{"reload", "10-roles.sql changed: psql applies", "userlist.txt changed: PgBouncer re-reads it on SIGHUP", "2 to reload"} {
		if !strings.Contains(text, want) {
			t.Errorf("the plan does not say %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "newPass2") || strings.Contains(text, "oldPass1") {
		t.Errorf("the plan shows a password:\n%s", text)
	}

	if _, err := deployer("newPass2").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	got := eng.steps()
	at := func(step string) int {
		i := slices.Index(got, step)
		if i < 0 {
			t.Fatalf("step %q missing:\n%s", step, strings.Join(got, "\n"))
		}
		return i
	}
	roles, userlist, migrate := at("reload rot-staging-db-1 10-roles.sql"), at("reload rot-staging-pgbouncer-1 userlist.txt"), at("run migrate (rot/app:v1) exit 0")
	if !(roles < userlist && userlist < migrate && migrate < at("create rot-staging-web-3 (rot/app:v1)")) {
		t.Errorf("order: the roles, then the userlist, then migrate, then web:\n%s", strings.Join(got, "\n"))
	}
	for _, step := range got {
		if strings.HasPrefix(step, "create rot-staging-db") || strings.HasPrefix(step, "create rot-staging-pgbouncer") ||
			strings.HasPrefix(step, "retire rot-staging-db") || strings.HasPrefix(step, "retire rot-staging-pgbouncer") {
			t.Errorf("a rotation recreated the database tier: %s\n%s", step, strings.Join(got, "\n"))
		}
	}

	again, err := deployer("newPass2").Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Plan.HasWork() {
		t.Errorf("a second deploy with the same password has work:\n%s", again.Plan)
	}
}

// TestDeploy_AFailedReloadRollsBack: a reload that fails is a failed
// change; the deploy rolls back to the stable release and says so. The
// stable release comes back with today's password (the secrets file
// holds the new one), so its files are applied again with it.
func TestDeploy_AFailedReloadRollsBack(t *testing.T) {
	eng, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	ctx := context.Background()
	deployer := func(password string) *Deployer { return rotateDeployer(t, eng, store, "v1", password) }
	if _, err := deployer("oldPass1").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	eng.reloadErr = errors.New("psql exited 2: could not connect")
	result, err := deployer("newPass2").Deploy(ctx, DeployOptions{})
	if err == nil || !strings.Contains(err.Error(), "could not connect") {
		t.Fatalf("deploy: %v", err)
	}
	if result.Release.Outcome != state.OutcomeRolledBack {
		t.Errorf("outcome %s; a failed reload is a change that failed", result.Release.Outcome)
	}
	got := strings.Join(eng.steps(), "\n")
	if !strings.Contains(got, "reload rot-staging-db-1 10-roles.sql failed") || strings.Count(got, "reload rot-staging-db-1 10-roles.sql") != 2 ||
		!strings.Contains(got, "reload rot-staging-pgbouncer-1 userlist.txt") {
		t.Errorf("the rollback did not apply the roles and the userlist for today's password:\n%s", got)
	}
}

// TestRollback_AfterARotationLogsInWithTodaysPassword: rolling back to a
// release from before a rotation gives the pool and the roles today's
// verifiers (the release's own users, today's values), never the ones
// saved with it: the services log in with today's password.
func TestRollback_AfterARotationLogsInWithTodaysPassword(t *testing.T) {
	eng, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	ctx := context.Background()
	deployer := func(version, password string) *Deployer { return rotateDeployer(t, eng, store, version, password) }
	before, err := deployer("v1", "oldPass1").Deploy(ctx, DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deployer("v2", "newPass2").Deploy(ctx, DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	eng.steps()
	d := deployer("v2", "newPass2")
	result, err := d.Rollback(ctx, RollbackOptions{To: before.Release.ID})
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	got := strings.Join(eng.steps(), "\n")
	if strings.Contains(got, "reload ") {
		t.Errorf("the rollback reloaded a password file back to the saved one:\n%s", got)
	}
	today, err := templates.Render(d.Stack, d.Secrets)
	if err != nil {
		t.Fatal(err)
	}
	want := ""
	for _, a := range today {
		if a.Path == templates.PathPgBouncerUserlist {
			want = engine.FileDigest(a.Data)
		}
	}
	containers, _ := eng.Observe(ctx, "")
	for _, c := range containers {
		if c.Service == "pgbouncer" && c.Files[templates.ContainerPgBouncerUserlist] != want {
			t.Errorf("PgBouncer holds a userlist other than today's after the rollback")
		}
	}
	if result.Release.SecretVersions["obcms_user_password"] != d.secretVersions()["obcms_user_password"] {
		t.Error("the rollback's record does not say it runs with today's password")
	}
}

// TestDeploy_ProvesTheContainersAKilledDeployLeftUnproven: a deploy killed
// in its watch window leaves its containers serving, never proven. The
// next deploy has nothing to change, yet it says so in its plan and
// proves them: it succeeds when they pass, and returns to the stable
// release when they fail.
func TestDeploy_ProvesTheContainersAKilledDeployLeftUnproven(t *testing.T) {
	for name, probes := range map[string]bool{"they pass": true, "they fail": false} {
		t.Run(name, func(t *testing.T) {
			eng, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
			ctx := context.Background()
			first, err := memDeployer(t, eng, store, "v1").Deploy(ctx, DeployOptions{})
			if err != nil {
				t.Fatal(err)
			}
			killed, err := memDeployer(t, eng, store, "v2").Deploy(ctx, DeployOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// As a kill in its watch window leaves it: in progress, not stable.
			rel, stable := killed.Release, first.Release
			rel.Outcome, rel.Stable, stable.Stable = state.OutcomeInProgress, false, true
			if err := errors.Join(store.Save(ctx, rel), store.Save(ctx, stable)); err != nil {
				t.Fatal(err)
			}

			d := memDeployer(t, eng, store, "v2")
			var plans []string
			d.Events = func(ev Event) {
				if ev.Plan != nil {
					plans = append(plans, ev.Plan.String())
				}
			}
			if !probes {
				// The unproven containers fail; the stable release passes.
				var verified atomic.Int32
				d.Probes = func(*stackhcl.Stack) (probe.Plan, error) {
					round := verified.Add(1)
					return probe.Plan{Specs: []probe.Spec{{Name: "web-ready", Kind: "http", Critical: true,
						Check: probe.CheckFunc(func(context.Context) probe.Attempt {
							if round == 1 {
								return probe.Fatalf("503 from /ready/")
							}
							return probe.Passed("200")
						})}}}, nil
				}
			}
			result, err := d.Deploy(ctx, DeployOptions{})
			if len(plans) == 0 || !strings.Contains(plans[0], "prove: mem-staging-web-3, mem-staging-web-4 run release "+rel.ID+", which ended interrupted") {
				t.Fatalf("the plan does not say it proves the unproven containers:\n%s", strings.Join(plans, "\n"))
			}
			want := map[bool]state.Outcome{true: state.OutcomeSucceeded, false: state.OutcomeRolledBack}[probes]
			if result.Release.Outcome != want {
				t.Errorf("outcome %s (%v), want %s", result.Release.Outcome, err, want)
			}
			if !probes && !strings.Contains(strings.Join(eng.steps(), "\n"), "create mem-staging-web-5 (mem/app:v1)") {
				t.Error("the stable release did not come back after the unproven containers failed")
			}
			again, err := memDeployer(t, eng, store, "v2").Plan(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if probes && again.Plan.HasWork() {
				t.Errorf("once proven, they are proven again:\n%s", again.Plan)
			}
		})
	}
}
