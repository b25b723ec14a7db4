//go:build e2e

package main

// e2e_test.go is the end-to-end scenario: the OBCMS-shaped stack
// (stacks/e2e.hcl) on the real Docker engine, on images built from Debian
// packages by testdata/e2e/images/build.sh (`make e2e` builds them first).
// One test, in order, because each step starts from the last one's state:
// secrets and the strict gate, a first deploy, verify, an upgrade under
// load, the backup that upgrade took restored for real, a broken release
// rolled back by itself under load, a release that dies after the switch
// rolled back by the watch window, a plain rollback to the release before
// the live one, a migration guard, a password rotation under load, and
// the history of all of it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/obcd/obcd/orchestrator/secrets"
)

const (
	e2eProject = "obcms-e2e-staging"
	// e2eSite is nginx's HTTPS port on loopback (stacks/e2e.hcl); the load
	// goes through it, so it crosses nginx, gunicorn, PgBouncer and Postgres.
	e2eLoadURL = "https://localhost:18443/communities/"
)

// e2eImages must exist before the scenario starts; build.sh makes them.
var e2eImages = []string{
	"obcd-e2e/postgres:latest", "obcd-e2e/pgbouncer:latest", "obcd-e2e/redis:latest",
	"obcd-e2e/nginx:latest", "obcd-e2e/prometheus:latest", "obcd-e2e/alertmanager:latest",
	"obcd-e2e/postgres-exporter:latest", "obcd-e2e/redis-exporter:latest",
	"obcd-e2e/nginx-exporter:latest", "obcd-e2e/celery-exporter:latest",
	"obcms/app:1.0.0", "obcms/app:1.1.0", "obcms/app:9.9.9-broken",
}

type e2eEnv struct {
	t        *testing.T
	dir      string
	stateDir string
	project  string   // the compose project: <stack>-<environment>
	env      []string // more of obcd's environment (an ssh client's HOME)
	current  string   // the step the scenario is at
}

// step logs the start of a step of the scenario, and remembers it: a
// failure's last line names it, since CI may show only the output's end.
func (e *e2eEnv) step(name string) {
	e.t.Helper()
	e.current = name
	e.t.Log(name)
}

func TestE2E_OBCMSDeployVerifyBreakRollBack(t *testing.T) {
	requireE2EImages(t)
	for _, tool := range []string{"hey", "docker"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run bash .ci/deps", tool)
		}
	}
	// make e2e built the images just before: a second build, cached by
	// content, must build nothing.
	rebuild, err := exec.Command("bash", "../../testdata/e2e/images/build.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, rebuild)
	}
	for _, line := range strings.Split(string(rebuild), "\n") {
		if strings.Contains(line, "building ") || strings.Contains(line, "debootstrap ") || strings.Contains(line, "importing ") {
			t.Errorf("a second image build did work (%q); everything should be cached by content:\n%s", line, rebuild)
		}
	}

	e := &e2eEnv{t: t, dir: t.TempDir(), project: e2eProject}
	e.stateDir = filepath.Join(e.dir, ".obcd")
	src, err := os.ReadFile("../../stacks/e2e.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "obcd.hcl"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	// A run that died half-way leaves its containers; start from nothing,
	// and leave nothing behind.
	e.removeProject()
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpState()
			t.Logf("the scenario failed at step %q: its errors are above the containers' state", e.current)
		}
		e.removeProject()
	})

	e.step("1. secrets init, then validate --strict")
	e.mustRun(0, "secrets", "init", "staging")
	if info, err := os.Stat(filepath.Join(e.stateDir, "staging.secrets")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secrets file: %v, mode %v; want 0600", err, info)
	}
	e.mustRun(0, "validate", "staging", "--strict")

	e.step("2. first deploy of 1.0.0")
	first := e.deployOK("1.0.0")

	e.step("3. verify: every probe green")
	e.verifyGreen()

	e.step("4. upgrade to 1.1.0 under load through nginx")
	load := startLoad(t, e2eLoadURL)
	second := e.deployOK("1.1.0")
	upgrade := load.stop()
	t.Logf("load during the upgrade: %s", upgrade)
	if upgrade.total < 50 {
		t.Errorf("the load generator sent only %d requests during the upgrade; want a steady stream", upgrade.total)
	}
	if upgrade.failed() != 0 {
		t.Errorf("%d of %d requests failed during the upgrade (%s); want 0", upgrade.failed(), upgrade.total, upgrade)
	}
	e.logSlowRequests()
	e.expectServing("1.1.0")

	e.step("5. the backup taken before the upgrade's migrations restores into a scratch database")
	e.restoreNewestDump()

	e.step("6. a broken release under load: rolled back by itself, with no failed requests")
	load = startLoad(t, e2eLoadURL)
	broken := e.run("deploy", "staging", "--yes", "--var", "app_version=9.9.9-broken")
	brokenLoad := load.stop()
	t.Logf("load during the broken release: %s", brokenLoad)
	if broken.code != ExitRolledBack {
		t.Fatalf("deploy of the broken release exited %d, want %d (rolled back)\nstdout:\n%s\nstderr:\n%s", broken.code, ExitRolledBack, broken.stdout, broken.stderr)
	}
	for _, want := range []string{"unhealthy", "Rolled back to release " + second} {
		if !strings.Contains(broken.stderr, want) {
			t.Errorf("broken deploy's report lacks %q:\n%s", want, broken.stderr)
		}
	}
	if brokenLoad.failed() != 0 {
		t.Errorf("%d of %d requests failed during the broken release and its rollback (%s); want 0", brokenLoad.failed(), brokenLoad.total, brokenLoad)
	}
	e.logSlowRequests()
	e.expectServing("1.1.0")
	e.verifyGreen()

	e.step("7. a release that passes its probes and dies 30 s after start, under load: the watch window rolls it back")
	dies := e.buildDyingRelease("1.1.0", "9.9.8-dies", 30*time.Second)
	load = startLoad(t, e2eLoadURL)
	dying := e.run("deploy", "staging", "--yes", "--watch", "90s", "--var", "app_version="+dies)
	dyingLoad := load.stop()
	t.Logf("load during the dying release and its rollback: %s", dyingLoad)
	if dying.code != ExitRolledBack || !strings.Contains(dying.stderr, "into the watch window") || !strings.Contains(dying.stderr, "Rolled back to release "+second) {
		t.Fatalf("deploy of a release that dies after the switch exited %d, want %d, rolled back from the watch window to %s\nstdout:\n%s\nstderr:\n%s",
			dying.code, ExitRolledBack, second, dying.stdout, dying.stderr)
	}
	e.expectServing("1.1.0")

	e.step("8. a plain rollback goes to the release before the live one: the first")
	rb := e.mustRun(0, "rollback", "staging")
	t.Logf("rollback: %s", strings.TrimSpace(rb.stdout))
	if !strings.Contains(rb.stdout, "Rolled back to release "+first) {
		t.Errorf("a plain rollback did not go to the release before the live one (%s):\n%s", first, rb.stdout)
	}
	e.expectServing("1.0.0")
	e.verifyGreen()

	e.step("9. a release that adds a migration, then rollback --to the first: refused, then allowed")
	leaders := e.buildVariant("1.1.0", "1.2.0-leaders", map[string]string{"0002_leaders.py": leadersMigration},
		"COPY 0002_leaders.py /app/communities/migrations/0002_leaders.py")
	// Retention would prune the first release by now (keep 5): keep it.
	e.deployOK(leaders, "--keep", "10")
	refused := e.run("rollback", "staging", "--to", first)
	if refused.code != ExitFailure || !strings.Contains(refused.stderr, "communities.0002_leaders") ||
		!strings.Contains(refused.stderr, "manage.py migrate communities 0001_initial") {
		t.Fatalf("rollback --to %s over a newer schema exited %d, want 1 listing communities.0002_leaders and how to reverse it\n%s%s",
			first, refused.code, refused.stdout, refused.stderr)
	}
	e.expectServing(leaders)
	e.mustRun(0, "rollback", "staging", "--to", first, "--allow-newer-schema")
	e.expectServing("1.0.0")
	e.verifyGreen()

	e.step("10. rotate obcms_user_password and deploy under load: reloaded in place, no failed request; the old password is refused")
	oldPassword := e.secret("obcms_user_password")
	rotated := e.mustRun(0, "secrets", "rotate", "staging", "obcms_user_password")
	newPassword := e.secret("obcms_user_password")
	if newPassword == oldPassword || strings.Contains(rotated.stdout+rotated.stderr, newPassword) || strings.Contains(rotated.stdout+rotated.stderr, oldPassword) {
		t.Fatalf("secrets rotate: the value did not change, or was printed:\n%s%s", rotated.stdout, rotated.stderr)
	}
	plan := e.mustRun(ExitFound, "plan", "staging")
	for _, want := range []string{"reload    " + e2eProject + "-db-1", "reload    " + e2eProject + "-pgbouncer-1", "10-roles.sql changed", "userlist.txt changed"} {
		if !strings.Contains(plan.stdout, want) {
			t.Errorf("the plan after a rotation lacks %q:\n%s", want, plan.stdout)
		}
	}
	for _, line := range strings.Split(plan.stdout, "\n") {
		if strings.Contains(line, "recreate") && (strings.Contains(line, "-db-1") || strings.Contains(line, "-pgbouncer-1")) {
			t.Errorf("a rotation recreates the database tier: %s", line)
		}
	}
	load = startLoad(t, e2eLoadURL)
	// The release from before the rotation must survive retention.
	e.deployOK("1.0.0", "--keep", "20")
	rotation := load.stop()
	t.Logf("load during the rotation: %s", rotation)
	if rotation.total < 50 || rotation.failed() != 0 {
		t.Errorf("%d of %d requests failed during the rotation (%s); want 0 of a steady stream", rotation.failed(), rotation.total, rotation)
	}
	e.verifyGreen()
	for password, want := range map[string]bool{newPassword: true, oldPassword: false} {
		for _, port := range []string{"16432", "15432"} {
			err := e2eLogin(port, "obcms_user", password)
			if (err == nil) != want {
				t.Errorf("login as obcms_user on 127.0.0.1:%s with the %s password: %v", port, map[bool]string{true: "new", false: "old"}[want], err)
			}
		}
	}
	t.Log("    a rollback to a release from before the rotation still logs in")
	e.mustRun(0, "rollback", "staging", "--to", second, "--allow-newer-schema")
	e.expectServing("1.1.0")
	e.verifyGreen()
	if err := e2eLogin("16432", "obcms_user", newPassword); err != nil {
		t.Errorf("after the rollback, the new password does not log in through PgBouncer: %v", err)
	}

	e.step("11. history shows all of it")
	e.checkHistory(first, second, second, "1.1.0")
}

// secret is the value of a secret in the environment's secrets file.
func (e *e2eEnv) secret(name string) string {
	e.t.Helper()
	store, err := secrets.Load(filepath.Join(e.stateDir, "staging.secrets"), func(string) (string, bool) { return "", false })
	if err != nil {
		e.t.Fatal(err)
	}
	value, err := store.Value(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return value
}

// e2eLogin logs in as user with password on 127.0.0.1:port, database
// obcms, and runs one query.
func e2eLogin(port, user, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	config, err := pgx.ParseConfig("host=127.0.0.1 port=" + port + " dbname=obcms sslmode=disable")
	if err != nil {
		return err
	}
	config.User, config.Password = user, password
	config.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, config)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// buildDyingRelease builds obcms/app:<version> FROM obcms/app:<from>
// with a wrapper entrypoint that stops the container's main process
// after after: a release that passes its probes, then fails.
func (e *e2eEnv) buildDyingRelease(from, version string, after time.Duration) string {
	wrapper := fmt.Sprintf("#!/bin/sh\n# A release that serves, then dies %s after start.\n(sleep %d; kill -TERM 1) &\nexec /usr/local/bin/entrypoint.sh \"$@\"\n", after, int(after.Seconds()))
	return e.buildVariant(from, version, map[string]string{"dies.sh": wrapper}, "COPY dies.sh /usr/local/bin/dies.sh",
		`ENTRYPOINT ["/usr/local/bin/dies.sh"]`, `CMD ["gunicorn", "--bind", "0.0.0.0:8000", "obc_management.wsgi:application"]`)
}

// leadersMigration adds a table the earlier releases never had.
const leadersMigration = `from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("communities", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="Leader",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=200)),
            ],
        ),
    ]
`

// buildVariant builds obcms/app:<version> FROM obcms/app:<from> with
// files and Dockerfile lines of its own; the image is removed when the
// test ends.
func (e *e2eEnv) buildVariant(from, version string, files map[string]string, lines ...string) string {
	e.t.Helper()
	dir := e.t.TempDir()
	files["Dockerfile"] = "FROM obcms/app:" + from + "\nENV APP_VERSION=" + version + "\n" + strings.Join(lines, "\n") + "\n"
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			e.t.Fatal(err)
		}
	}
	tag := "obcms/app:" + version
	if out, err := exec.Command("docker", "build", "-q", "-t", tag, dir).CombinedOutput(); err != nil {
		e.t.Fatalf("build %s: %v\n%s", tag, err, out)
	}
	e.t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "-f", tag).Run() })
	return version
}

func (e *e2eEnv) run(args ...string) result {
	e.t.Helper()
	args = append(args, "--state-dir", e.stateDir)
	return obcd(e.t, e.dir, append([]string{"DOCKER_HOST=" + os.Getenv("DOCKER_HOST")}, e.env...), args...)
}

func (e *e2eEnv) mustRun(code int, args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != code {
		e.t.Fatalf("obcd %s exited %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

var deployedRE = regexp.MustCompile(`Deployed release (\S+) \(([^)]+)\)`)

// deployOK deploys version and returns the release ID.
func (e *e2eEnv) deployOK(version string, flags ...string) string {
	e.t.Helper()
	started := time.Now()
	r := e.mustRun(0, append([]string{"deploy", "staging", "--yes", "--var", "app_version=" + version}, flags...)...)
	m := deployedRE.FindStringSubmatch(r.stdout)
	if m == nil || m[2] != version {
		e.t.Fatalf("deploy %s: no %q line in stdout:\n%s", version, "Deployed release ... ("+version+")", r.stdout)
	}
	e.t.Logf("deployed %s as release %s in %v", version, m[1], time.Since(started).Round(time.Second))
	return m[1]
}

// verifyGreen runs obcd verify --json and wants every probe to pass, and
// the ones the scenario is about to be there.
func (e *e2eEnv) verifyGreen() {
	e.t.Helper()
	r := e.run("verify", "staging", "--json")
	var report struct {
		Passed  bool `json:"passed"`
		Results []struct {
			Name    string `json:"name"`
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		e.t.Fatalf("verify --json: %v\nstdout:\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	passed := map[string]bool{}
	for _, p := range report.Results {
		if p.Status != "pass" {
			e.t.Errorf("probe %s: %s: %s", p.Name, p.Status, p.Message)
			continue
		}
		passed[p.Name] = true
	}
	for _, want := range []string{
		"pgbouncer-login-obcms_user", "pgbouncer-login-obcms_admin", "pgbouncer-login-obcms_stats",
		"db-migrations", "redis-roundtrip", "prometheus-targets", "prometheus-rules",
		"alertmanager-ready", "celery-workers", "celery-task", "site-https", "site-ready", "site-csrf", "site-bad-host", "site-redirect",
		"web-health", "web-ready", "web-metrics", "containers",
	} {
		if !passed[want] {
			e.t.Errorf("probe %s did not pass (or did not run)", want)
		}
	}
	if r.code != 0 {
		e.t.Fatalf("verify exited %d (passed %v), want 0\n%s", r.code, report.Passed, r.stderr)
	}
}

// expectServing asks the site, through nginx, which version answers.
func (e *e2eEnv) expectServing(version string) {
	e.t.Helper()
	out, err := exec.Command("curl", "-sk", "--max-time", "5", "https://localhost:18443/version/").CombinedOutput()
	if err != nil {
		e.t.Fatalf("curl /version/: %v: %s", err, out)
	}
	var body struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(out, &body); err != nil || body.Version != version {
		e.t.Fatalf("the site serves %q (%v), want version %s", out, err, version)
	}
}

// restoreNewestDump takes the newest dump the backup job wrote into its
// volume and restores it, with the real pg_restore, into a new database;
// the restored copy must hold the rows the first release wrote (the
// celery-task probe's task runs) and its migrations.
func (e *e2eEnv) restoreNewestDump() {
	e.t.Helper()
	backup := e2eProject + "-backup-1"
	db := e2eProject + "-db-1"
	list := e.docker("exec", backup, "sh", "-c", "ls -1t /backups/*.dump")
	dumps := strings.Fields(list)
	if len(dumps) < 2 {
		e.t.Fatalf("backups volume holds %d dumps (%q); want one before each deploy's migrations", len(dumps), list)
	}
	newest := dumps[0]
	e.docker("exec", "-u", "postgres", db, "psql", "-v", "ON_ERROR_STOP=1", "-h", "/var/run/postgresql", "-d", "postgres",
		"-c", "DROP DATABASE IF EXISTS restore_check", "-c", "CREATE DATABASE restore_check")
	dump := e.dockerBytes("exec", backup, "cat", newest)
	if !bytes.HasPrefix(dump, []byte("PGDMP")) {
		e.t.Fatalf("%s is not a custom-format dump (%d bytes)", newest, len(dump))
	}
	restore := exec.Command("docker", "exec", "-i", "-u", "postgres", db,
		"pg_restore", "--exit-on-error", "--no-owner", "-h", "/var/run/postgresql", "-d", "restore_check")
	restore.Stdin = bytes.NewReader(dump)
	if out, err := restore.CombinedOutput(); err != nil {
		e.t.Fatalf("pg_restore of %s (%d bytes) into a scratch database: %v\n%s", newest, len(dump), err, out)
	}
	count := func(query string) int {
		out := e.docker("exec", "-u", "postgres", db, "psql", "-At", "-h", "/var/run/postgresql", "-d", "restore_check", "-c", query)
		n, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			e.t.Fatalf("%s in the restored copy: %q", query, out)
		}
		return n
	}
	if n := count("SELECT count(*) FROM communities_taskrun"); n < 1 {
		e.t.Errorf("restored copy of %s has %d task runs; the first release wrote some", newest, n)
	}
	if n := count("SELECT count(*) FROM django_migrations WHERE app = 'communities'"); n < 1 {
		e.t.Errorf("restored copy of %s has %d communities migrations, want the first release's", newest, n)
	}
	e.t.Logf("restored %s (%d bytes) into restore_check", newest, len(dump))
}

func (e *e2eEnv) checkHistory(first, second, lastRollbackOf, lastVersion string) {
	e.t.Helper()
	r := e.mustRun(0, "history", "staging", "--json")
	var releases []struct {
		ID         string `json:"id"`
		Version    string `json:"version"`
		Outcome    string `json:"outcome"`
		Stable     bool   `json:"stable"`
		RollbackOf string `json:"rollback_of"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &releases); err != nil {
		e.t.Fatalf("history --json: %v\n%s", err, r.stdout)
	}
	byID := map[string]int{}
	outcomes := map[string][]string{}
	for i, rel := range releases {
		byID[rel.ID] = i
		outcomes[rel.Version] = append(outcomes[rel.Version], rel.Outcome)
	}
	for _, id := range []string{first, second} {
		if _, ok := byID[id]; !ok {
			e.t.Errorf("history lacks release %s:\n%s", id, r.stdout)
		}
	}
	if got := outcomes["9.9.9-broken"]; len(got) != 1 || got[0] != "rolled-back" {
		e.t.Errorf("history has the broken release as %v, want one rolled-back:\n%s", got, r.stdout)
	}
	// The rollback is a release of its own, the stable one now, last.
	last := releases[len(releases)-1]
	if last.RollbackOf != lastRollbackOf || last.Version != lastVersion || last.Outcome != "succeeded" || !last.Stable {
		e.t.Errorf("the last release is %+v, want the succeeded, stable rollback to %s (%s):\n%s", last, lastRollbackOf, lastVersion, r.stdout)
	}
	for _, rel := range releases[:len(releases)-1] {
		if rel.Stable {
			e.t.Errorf("release %s (%s) is still stable after the rollback:\n%s", rel.ID, rel.Version, r.stdout)
		}
	}
	text := e.mustRun(0, "history", "staging")
	e.t.Logf("history:\n%s", text.stdout)
}

func (e *e2eEnv) docker(args ...string) string {
	e.t.Helper()
	return string(e.dockerBytes(args...))
}

func (e *e2eEnv) dockerBytes(args ...string) []byte {
	e.t.Helper()
	cmd := exec.Command("docker", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// removeProject removes every container, network and volume of the
// project: the scenario's own, left by this or an earlier run.
func (e *e2eEnv) removeProject() {
	label := "label=com.docker.compose.project=" + e.project
	for _, kind := range [][]string{{"ps", "-aq"}, {"network", "ls", "-q"}, {"volume", "ls", "-q"}} {
		args := append(append([]string{}, kind...), "--filter", label)
		out, err := exec.Command("docker", args...).Output()
		if err != nil || len(bytes.TrimSpace(out)) == 0 {
			continue
		}
		ids := strings.Fields(string(out))
		rm := []string{"rm", "-f"}
		switch kind[0] {
		case "network":
			rm = []string{"network", "rm"}
		case "volume":
			rm = []string{"volume", "rm", "-f"}
		}
		_ = exec.Command("docker", append(rm, ids...)...).Run()
	}
	// The stable tags the scenario's releases gave the images: untag
	// them, so runs do not pile them up (the images keep their own tags).
	out, err := exec.Command("docker", "images", "--format", "{{.Repository}}:{{.Tag}}").Output()
	if err != nil {
		return
	}
	var tags []string
	for _, ref := range strings.Fields(string(out)) {
		repo, tag, _ := strings.Cut(ref, ":")
		if (repo == "obcms/app" || strings.HasPrefix(repo, "obcd-e2e/")) && (tag == "stable" || strings.HasPrefix(tag, "stable-")) {
			tags = append(tags, ref)
		}
	}
	if len(tags) > 0 {
		_ = exec.Command("docker", append([]string{"image", "rm"}, tags...)...).Run()
	}
}

var nginxRequestTimeRE = regexp.MustCompile(`request_time=([0-9.]+)`)

// logSlowRequests logs nginx's access log lines of requests that took a
// second or more, with the upstream addresses nginx tried: where a deploy
// made the site slow, and why.
func (e *e2eEnv) logSlowRequests() {
	out, err := exec.Command("docker", "logs", "--since", "10m", e.project+"-nginx-1").CombinedOutput()
	if err != nil {
		e.t.Logf("nginx logs: %v", err)
		return
	}
	var slow []string
	for _, line := range strings.Split(string(out), "\n") {
		if m := nginxRequestTimeRE.FindStringSubmatch(line); m != nil {
			if seconds, _ := strconv.ParseFloat(m[1], 64); seconds >= 1 {
				slow = append(slow, line)
			}
		}
	}
	if len(slow) > 20 {
		slow = append(slow[:20], fmt.Sprintf("... and %d more", len(slow)-20))
	}
	e.t.Logf("nginx: %d requests took 1s or more\n%s", len(slow), strings.Join(slow, "\n"))
}

// dumpState logs what ran when the scenario failed.
func (e *e2eEnv) dumpState() {
	out, _ := exec.Command("docker", "ps", "-a", "--filter", "label=com.docker.compose.project="+e.project,
		"--format", "{{.Names}}\t{{.Status}}\t{{.Image}}").CombinedOutput()
	e.t.Logf("containers at failure:\n%s", out)
}

// loadRun is hey sending a steady stream of GETs until stopped.
type loadRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    bytes.Buffer
	cancel context.CancelFunc
}

// loadResult is what hey reported.
type loadResult struct {
	total    int
	byStatus map[int]int
	errors   map[string]int
}

func (r loadResult) failed() int {
	n := 0
	for status, count := range r.byStatus {
		if status >= 400 {
			n += count
		}
	}
	for _, count := range r.errors {
		n += count
	}
	return n
}

func (r loadResult) String() string {
	return fmt.Sprintf("%d requests, statuses %v, errors %v", r.total, r.byStatus, r.errors)
}

// startLoad runs hey with 4 connections at 10 requests a second each, for
// at most 15 minutes (the scenario stops it much sooner).
func startLoad(t *testing.T, url string) *loadRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	l := &loadRun{t: t, cancel: cancel}
	l.cmd = exec.CommandContext(ctx, "hey", "-z", "15m", "-c", "4", "-q", "10", "-t", "10", url)
	l.cmd.Stdout, l.cmd.Stderr = &l.out, &l.out
	if err := l.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start hey: %v", err)
	}
	time.Sleep(2 * time.Second) // steady before the deploy begins
	return l
}

// stop interrupts hey, which then prints its report, and parses it.
func (l *loadRun) stop() loadResult {
	l.t.Helper()
	defer l.cancel()
	time.Sleep(2 * time.Second) // and steady after it ends
	_ = l.cmd.Process.Signal(os.Interrupt)
	_ = l.cmd.Wait()
	result, err := parseHey(l.out.String())
	if err != nil {
		l.t.Fatalf("hey: %v\n%s", err, l.out.String())
	}
	return result
}

var (
	heyStatusRE = regexp.MustCompile(`^\s*\[(\d{3})\]\s+(\d+) responses`)
	heyErrorRE  = regexp.MustCompile(`^\s*\[(\d+)\]\s+(.+)$`)
)

// parseHey reads the status code and error distributions of hey's report.
func parseHey(report string) (loadResult, error) {
	result := loadResult{byStatus: map[int]int{}, errors: map[string]int{}}
	section := ""
	scanner := bufio.NewScanner(strings.NewReader(report))
	for scanner.Scan() {
		line := scanner.Text()
		switch {
		case strings.HasPrefix(line, "Status code distribution:"):
			section = "status"
			continue
		case strings.HasPrefix(line, "Error distribution:"):
			section = "error"
			continue
		case strings.TrimSpace(line) == "":
			continue
		case !strings.HasPrefix(line, " "):
			section = ""
		}
		switch section {
		case "status":
			if m := heyStatusRE.FindStringSubmatch(line); m != nil {
				status, _ := strconv.Atoi(m[1])
				n, _ := strconv.Atoi(m[2])
				result.byStatus[status] += n
				result.total += n
			}
		case "error":
			if m := heyErrorRE.FindStringSubmatch(line); m != nil {
				n, _ := strconv.Atoi(m[1])
				result.errors[m[2]] += n
				result.total += n
			}
		}
	}
	if result.total == 0 {
		return result, fmt.Errorf("no status code or error distribution in hey's report")
	}
	return result, nil
}
