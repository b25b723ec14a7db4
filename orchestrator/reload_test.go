package orchestrator

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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

// TestDeploy_ARotatedPasswordReloadsTheDatabaseAndThePoolInPlace: after a
// password changes, the plan reloads roles.sql in the running primary and
// the userlist in the running PgBouncer, in that order, and rolls web
// start-first; neither the database nor the pool is recreated. A deploy
// with nothing new reloads nothing.
func TestDeploy_ARotatedPasswordReloadsTheDatabaseAndThePoolInPlace(t *testing.T) {
	eng, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	ctx := context.Background()
	deployer := func(password string) *Deployer {
		d := memDeployerFrom(t, eng, rotateStack, "v1")
		d.Store, d.Secrets = store, rotateSecrets(password)
		return d
	}
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
// change; the deploy rolls back to the stable release and says so.
func TestDeploy_AFailedReloadRollsBack(t *testing.T) {
	eng, store := newMemEngine(), state.OpenLocalStore(filepath.Join(t.TempDir(), "staging"))
	ctx := context.Background()
	deployer := func(password string) *Deployer {
		d := memDeployerFrom(t, eng, rotateStack, "v1")
		d.Store, d.Secrets = store, rotateSecrets(password)
		return d
	}
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
}
