package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/obcd/obcd/orchestrator/engine"
	"github.com/obcd/obcd/templates"
)

// ErrNewerSchema: the database holds migrations the rollback target
// never had.
var ErrNewerSchema = errors.New("the database schema is newer than the release")

// migrationsMarker starts the line the listing one-off prints.
const migrationsMarker = "OBCD_MIGRATIONS "

// listMigrations is the Python, run by manage.py shell with any
// release's code, that prints the applied migrations as one JSON line:
// Django's own record, django_migrations.
const listMigrations = `import json; from django.db.migrations.recorder import MigrationRecorder; ` +
	`print("` + migrationsMarker + `" + json.dumps(sorted(a + "." + n for a, n in MigrationRecorder.Migration.objects.values_list("app", "name"))))`

// schemaReader is the migrate service of a planned release, run as a
// one-off that lists the applied migrations; ok is false when the stack
// runs migrations without manage.py, so there is nothing to ask.
func (d *Deployer) schemaReader(planned *Planned) (engine.ServiceSpec, bool) {
	if migrate := d.Stack.Django.MigrateCommand; len(migrate) > 0 && !slices.ContainsFunc(migrate, func(arg string) bool {
		return strings.Contains(arg, "manage.py")
	}) {
		return engine.ServiceSpec{}, false
	}
	i := slices.IndexFunc(planned.Desired, func(s engine.ServiceSpec) bool { return s.OneOff })
	if i < 0 {
		return engine.ServiceSpec{}, false
	}
	spec := planned.Desired[i]
	spec.Command, spec.Entrypoint = []string{"python3", "manage.py", "shell", "-c", listMigrations}, nil
	return spec, true
}

// appliedMigrations reads django_migrations through a one-off of the
// planned release's app image, on the project's network.
func (d *Deployer) appliedMigrations(ctx context.Context, planned *Planned) ([]string, bool, error) {
	spec, ok := d.schemaReader(planned)
	if !ok {
		return nil, false, nil
	}
	name := engine.OneOffName(templates.ProjectName(d.Stack), spec.Name+"-schema", planned.Plan.Release)
	code, logs, err := d.Engine.RunOneOff(ctx, spec, name, planned.Plan.Release)
	if err == nil && code != 0 {
		err = fmt.Errorf("exited %d:\n%s", code, tail(logs, 10))
	}
	if err != nil {
		return nil, true, fmt.Errorf("read the applied migrations (%s): %w", name, err)
	}
	for _, line := range strings.Split(logs, "\n") {
		if list, found := strings.CutPrefix(strings.TrimSpace(line), migrationsMarker); found {
			var migrations []string
			if err := json.Unmarshal([]byte(list), &migrations); err != nil {
				return nil, true, fmt.Errorf("read the applied migrations: %w", err)
			}
			return migrations, true, nil
		}
	}
	return nil, true, fmt.Errorf("read the applied migrations (%s): no %q line in its output:\n%s", name, strings.TrimSpace(migrationsMarker), tail(logs, 10))
}

// recordMigrations keeps in the release what the database had applied
// when it became stable. A stack without manage.py has nothing to record.
func (x *executor) recordMigrations(ctx context.Context) error {
	migrations, ok, err := x.d.appliedMigrations(ctx, x.planned)
	if ok && err == nil {
		x.planned.Release.Migrations = migrations
	}
	return err
}

// checkSchema refuses a rollback to a release the database's schema has
// outgrown: migrations applied since, which the release never had. It
// says which, and the manage.py commands that would reverse them.
func (d *Deployer) checkSchema(ctx context.Context, planned *Planned, target []string) error {
	if target == nil {
		return nil // recorded before obcd read migrations, or no manage.py
	}
	applied, ok, err := d.appliedMigrations(ctx, planned)
	if !ok || err != nil {
		return err
	}
	newer := slices.DeleteFunc(applied, func(m string) bool { return slices.Contains(target, m) })
	if len(newer) == 0 {
		return nil
	}
	return fmt.Errorf("%w: the database has applied %s, which release %s never had. obcd never reverses a migration: "+
		"reverse them with %s (each in an obcd run or a container of the live release), then roll back; "+
		"or roll back with --allow-newer-schema to run its code on the newer schema",
		ErrNewerSchema, strings.Join(newer, ", "), planned.Release.RollbackOf, strings.Join(reverseCommands(newer, target), " and "))
}

// reverseCommands are the manage.py migrate commands that take each app
// with newer migrations back to the target's last one (or zero).
func reverseCommands(newer, target []string) []string {
	back := map[string]string{}
	for _, m := range newer {
		app, _, _ := strings.Cut(m, ".")
		back[app] = "zero"
		for _, t := range target {
			if name, ok := strings.CutPrefix(t, app+"."); ok && (back[app] == "zero" || name > back[app]) {
				back[app] = name
			}
		}
	}
	var commands []string
	for _, app := range slices.Sorted(maps.Keys(back)) {
		commands = append(commands, fmt.Sprintf("`python3 manage.py migrate %s %s`", app, back[app]))
	}
	return commands
}
