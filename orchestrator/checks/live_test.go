package checks

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obcd/obcd/orchestrator/engine"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/internal/testsvc"
	"github.com/obcd/obcd/templates"
)

// The secrets of stacks/obcms.hcl; every value is distinct, so a leak
// can be told apart.
func liveTestSecrets() templates.MapSecrets {
	return templates.MapSecrets{
		"django_secret_key":      "tX7vQ2pL9mK4wR8zN3bH6cJ1fD5gS0aYeUiO7uP2lK9jH4gF6dS8aZ3xC1vB5nM0",
		"field_encryption_key":   "fek-8Jd0aPq1Lz2Xw3Cv4Bn5Mm6Kk7Jj8Hh9Gg0Ff1Dd2Ss3Aa=",
		"postgres_password":      "pg-super-5c1d9e",
		"replication_password":   "repl-7a2b3c",
		"obcms_user_password":    "app-pw-3f9e1a7b",
		"obcms_admin_password":   "admin-pw-0d4c2e",
		"obcms_stats_password":   "stats-pw-9b8a7c",
		"grafana_admin_password": "grafana-pw-6e5d4c",
		"sentry_dsn":             "https://0123abcd@sentry.example.org/42",
	}
}

// liveLoadObcms evaluates the example stack for staging, with an empty
// process environment so the machine cannot change it.
func liveLoadObcms(t *testing.T) *stackhcl.Stack {
	t.Helper()
	loader := stackhcl.NewLoader(stackhcl.Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }})
	stack, diags := loader.Load(filepath.Join("..", "..", "stacks", "obcms.hcl"))
	if diags.HasErrors() {
		t.Fatalf("loading obcms.hcl: %v", diags)
	}
	return stack
}

// liveStartDatabase starts PostgreSQL with the obcms database, the app role
// with its password, and a django_migrations table of `migrations` rows
// (none when migrations < 0), and points the stack's pgbouncer at it.
func liveStartDatabase(t *testing.T, stack *stackhcl.Stack, secrets templates.MapSecrets, migrations int) *testsvc.Postgres {
	t.Helper()
	pg := testsvc.StartPostgres(t)
	user, password := stack.Django.DBUser, secrets["obcms_user_password"]
	pg.Exec("postgres", "CREATE ROLE "+user+" LOGIN PASSWORD '"+password+"'")
	pg.Exec("postgres", "CREATE DATABASE obcms OWNER "+user)
	if migrations >= 0 {
		sql := "CREATE TABLE django_migrations (id serial PRIMARY KEY, app varchar(255) NOT NULL, name varchar(255) NOT NULL, applied timestamptz NOT NULL DEFAULT now());" +
			"ALTER TABLE django_migrations OWNER TO " + user + ";"
		for i := 1; i <= migrations; i++ {
			sql += "INSERT INTO django_migrations (app, name) VALUES ('app', '" + strconv.Itoa(i) + "_step');"
		}
		pg.Exec("obcms", sql)
	}
	stack.Service(stack.Django.Database).Address = net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port))
	return pg
}

func liveStartRedis(t *testing.T, stack *stackhcl.Stack) *testsvc.Redis {
	t.Helper()
	rds := testsvc.StartRedis(t)
	stack.Service(stack.Django.Cache).Address = rds.Addr
	return rds
}

func liveFindingsOf(findings []Finding, code string) []Finding {
	var out []Finding
	for _, f := range findings {
		if f.Rule.Code == code {
			out = append(out, f)
		}
	}
	return out
}

func liveMentioning(findings []Finding, text string) []Finding {
	var out []Finding
	for _, f := range findings {
		if strings.Contains(f.Text(), text) {
			out = append(out, f)
		}
	}
	return out
}

func liveDump(findings []Finding) string {
	var b strings.Builder
	for _, f := range findings {
		b.WriteString("\n  " + f.Rule.Code + " " + string(f.Rule.Severity) + ": " + f.Text())
	}
	return b.String()
}

// liveOne wants exactly one finding of code whose message has every
// one of parts, and returns it.
func liveOne(t *testing.T, report LiveReport, code string, parts ...string) Finding {
	t.Helper()
	t.Logf("findings:%s", liveDump(report.Findings))
	found := liveFindingsOf(report.Findings, code)
	if len(found) != 1 {
		t.Fatalf("want one %s finding, got %d:%s", code, len(found), liveDump(report.Findings))
	}
	for _, part := range parts {
		if !strings.Contains(found[0].Text(), part) {
			t.Errorf("%s message %q does not mention %q", code, found[0].Text(), part)
		}
	}
	return found[0]
}

func liveNone(t *testing.T, report LiveReport, codes ...string) {
	t.Helper()
	for _, code := range codes {
		if found := liveFindingsOf(report.Findings, code); len(found) > 0 {
			t.Errorf("unexpected %s:%s", code, liveDump(found))
		}
	}
}

// liveNoLeaks fails when a finding carries a secret value.
func liveNoLeaks(t *testing.T, report LiveReport, secrets templates.MapSecrets) {
	t.Helper()
	for _, f := range report.Findings {
		for name, value := range secrets {
			if value != "" && strings.Contains(f.Text(), value) {
				t.Errorf("%s leaks the value of secret %s: %s", f.Rule.Code, name, f.Text())
			}
		}
	}
}

// liveHungListener accepts TCP connections and never answers.
func liveHungListener(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		listener.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range conns {
			conn.Close()
		}
	})
	return listener.Addr().String()
}

func TestLive_HealthyStackHasNoErrors(t *testing.T) {
	stack, secrets := liveLoadObcms(t), liveTestSecrets()
	liveStartDatabase(t, stack, secrets, 7)
	liveStartRedis(t, stack)

	report := RunLive(context.Background(), LiveOptions{Stack: stack, Secrets: secrets, Timeout: 5 * time.Second})

	if c := Count(report.Findings); c.Errors > 0 {
		t.Errorf("a healthy stack has %d errors:%s", c.Errors, liveDump(report.Findings))
	}
	if report.DockerAPIVersion == "" {
		t.Error("DockerAPIVersion is empty for a reachable engine")
	}
	if report.Migrations != 7 {
		t.Errorf("Migrations = %d, want the 7 rows inserted", report.Migrations)
	}
	liveNone(t, report, "deploy.D001", "deploy.D002", "deploy.D003", "deploy.D004", "deploy.D007", "deploy.D008", "deploy.D009", "monitoring.E010")
	liveNoLeaks(t, report, secrets)

	// D005 lists exactly the stack's images that the engine lacks.
	docker, err := engine.Dial("unix:///var/run/docker.sock", "")
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	missing := liveFindingsOf(report.Findings, "deploy.D005")
	for _, img := range liveImages(stack) {
		_, err := docker.ImageInspect(context.Background(), img.ref)
		listed := liveMentioning(missing, "image "+img.ref+" ")
		switch {
		case cerrdefs.IsNotFound(err) && len(listed) != 1:
			t.Errorf("image %s is not on the engine, but D005 lists it %d times:%s", img.ref, len(listed), liveDump(missing))
		case err == nil && len(listed) != 0:
			t.Errorf("image %s is on the engine, but D005 lists it", img.ref)
		}
	}
	if _, err := docker.ImageInspect(context.Background(), "obcms/app:1.0.0"); cerrdefs.IsNotFound(err) {
		app := liveOne(t, LiveReport{Findings: liveMentioning(missing, "image obcms/app:1.0.0 ")}, "deploy.D005", "not on the engine")
		for _, svc := range []string{"web", "celery-worker", "celery-beat"} {
			if !strings.Contains(app.Text(), svc) {
				t.Errorf("D005 for the app image does not name service %s: %s", svc, app.Text())
			}
		}
	}
}

func TestLive_ThroughPgBouncerUsesSimpleProtocol(t *testing.T) {
	stack, secrets := liveLoadObcms(t), liveTestSecrets()
	pg := liveStartDatabase(t, stack, secrets, 3)
	user, password := stack.Django.DBUser, secrets["obcms_user_password"]
	ini := "[databases]\nobcms = host=127.0.0.1 port=" + strconv.Itoa(pg.Port) + " dbname=obcms\n\n" +
		"[pgbouncer]\nlisten_port = 6432\nauth_type = scram-sha-256\npool_mode = transaction\n"
	bouncer := testsvc.StartPgBouncer(t, ini, testsvc.WithAuthFile([]byte(`"`+user+`" "`+password+`"`+"\n")))
	stack.Service(stack.Django.Database).Address = net.JoinHostPort(bouncer.Host, strconv.Itoa(bouncer.Port))

	report := RunLive(context.Background(), LiveOptions{Stack: stack, Secrets: secrets, Docker: &fakeLiveDocker{}, Timeout: 5 * time.Second})

	liveNone(t, report, "deploy.D004")
	if report.Migrations != 3 {
		t.Errorf("Migrations through pgbouncer = %d, want 3:%s\n%s", report.Migrations, liveDump(report.Findings), bouncer.Log())
	}
}

func TestLive_NoMigrationsTableIsInfoD007(t *testing.T) {
	stack, secrets := liveLoadObcms(t), liveTestSecrets()
	liveStartDatabase(t, stack, secrets, -1)

	report := RunLive(context.Background(), LiveOptions{Stack: stack, Secrets: secrets, Docker: &fakeLiveDocker{}, Timeout: 5 * time.Second})

	liveOne(t, report, "deploy.D007", "no migrations applied yet", `"obcms"`)
	liveNone(t, report, "deploy.D004")
	if report.Migrations != 0 {
		t.Errorf("Migrations = %d, want 0", report.Migrations)
	}
}

func TestLive_DatabaseStoppedIsD004NamingTheAddress(t *testing.T) {
	stack, secrets := liveLoadObcms(t), liveTestSecrets()
	pg := liveStartDatabase(t, stack, secrets, 1)
	pg.Stop()

	report := RunLive(context.Background(), LiveOptions{Stack: stack, Secrets: secrets, Docker: &fakeLiveDocker{}, Timeout: 5 * time.Second})

	addr := net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port))
	liveOne(t, report, "deploy.D004", "unreachable", addr, `"pgbouncer"`)
	if report.Migrations != -1 {
		t.Errorf("Migrations = %d, want -1 (unknown)", report.Migrations)
	}
}

func TestLive_WrongDatabasePasswordIsD004Authentication(t *testing.T) {
	stack, secrets := liveLoadObcms(t), liveTestSecrets()
	liveStartDatabase(t, stack, secrets, 1)
	secrets["obcms_user_password"] = "not-the-password"

	report := RunLive(context.Background(), LiveOptions{Stack: stack, Secrets: secrets, Docker: &fakeLiveDocker{}, Timeout: 5 * time.Second})

	liveOne(t, report, "deploy.D004", "authentication", `"obcms_user"`, "obcms_user_password")
	liveNoLeaks(t, report, secrets)
}

func TestLive_RedisStoppedIsE010(t *testing.T) {
	stack, secrets := liveLoadObcms(t), liveTestSecrets()
	rds := liveStartRedis(t, stack)
	rds.Stop()

	report := RunLive(context.Background(), LiveOptions{Stack: stack, Secrets: secrets, Docker: &fakeLiveDocker{}, Timeout: 5 * time.Second})

	finding := liveOne(t, report, "monitoring.E010", rds.Addr, `"redis"`)
	if finding.Rule.Severity != SeverityError || finding.Rule.Priority != PriorityHigh || finding.Rule.Category != CategoryRedis {
		t.Errorf("E010 is %s/%s/%s", finding.Rule.Severity, finding.Rule.Priority, finding.Rule.Category)
	}
}

func TestLive_HungServersAreFindingsWithinTheTimeout(t *testing.T) {
	stack, secrets := liveLoadObcms(t), liveTestSecrets()
	stack.Service(stack.Django.Database).Address = liveHungListener(t)
	stack.Service(stack.Django.Cache).Address = liveHungListener(t)
	const timeout = time.Second

	start := time.Now()
	report := RunLive(context.Background(), LiveOptions{Stack: stack, Secrets: secrets, Timeout: timeout})
	elapsed := time.Since(start)

	if elapsed > timeout+2*time.Second {
		t.Errorf("RunLive took %s against hung servers, want at most %s", elapsed, timeout+2*time.Second)
	}
	liveOne(t, report, "deploy.D004", stack.Service(stack.Django.Database).Address, "no answer within 1s")
	liveOne(t, report, "monitoring.E010", stack.Service(stack.Django.Cache).Address, "no answer within 1s")
	if report.DockerAPIVersion == "" {
		t.Errorf("the real engine was not reached:%s", liveDump(report.Findings))
	}
}

func TestLive_DockerUnreachableIsD001(t *testing.T) {
	stack, secrets := liveLoadObcms(t), liveTestSecrets()
	stack.DockerHost = "unix:///nonexistent.sock"

	report := RunLive(context.Background(), LiveOptions{Stack: stack, Secrets: secrets, Timeout: 2 * time.Second})

	finding := liveOne(t, report, "deploy.D001", "unix:///nonexistent.sock")
	if finding.Rule.Severity != SeverityError || finding.Rule.Priority != PriorityCritical {
		t.Errorf("D001 is %s/%s", finding.Rule.Severity, finding.Rule.Priority)
	}
	if report.DockerAPIVersion != "" {
		t.Errorf("DockerAPIVersion = %q for an unreachable engine", report.DockerAPIVersion)
	}
	liveNone(t, report, "deploy.D005", "deploy.D006", "deploy.D008")
}

func TestLive_NoAddressIsInfoD009(t *testing.T) {
	stack, secrets := liveLoadObcms(t), liveTestSecrets()

	report := RunLive(context.Background(), LiveOptions{Stack: stack, Secrets: secrets, Docker: &fakeLiveDocker{}, Timeout: time.Second})

	found := liveFindingsOf(report.Findings, "deploy.D009")
	if len(found) != 2 || !strings.Contains(liveDump(found), `service "pgbouncer"`) || !strings.Contains(liveDump(found), `service "redis"`) {
		t.Errorf("want D009 for pgbouncer and redis:%s", liveDump(report.Findings))
	}
	liveNone(t, report, "deploy.D004", "monitoring.E010")
	if report.Migrations != -1 {
		t.Errorf("Migrations = %d without a database address, want -1", report.Migrations)
	}
}

func TestLive_DebugOnIsD003(t *testing.T) {
	stack, secrets := liveLoadObcms(t), liveTestSecrets()
	stack.Django.Debug = true

	report := RunLive(context.Background(), LiveOptions{Stack: stack, Secrets: secrets, Docker: &fakeLiveDocker{}, Timeout: time.Second})

	finding := liveOne(t, report, "deploy.D003", "DJANGO_DEBUG=True")
	if finding.Range.Filename == "" {
		t.Error("D003 for DEBUG points nowhere")
	}
}

func TestLive_UnsafeSecretKeyIsD003WithoutTheKey(t *testing.T) {
	cases := map[string]struct{ key, want string }{
		"django default": {"django-insecure-" + strings.Repeat("ab3$xy9!", 8), "django-insecure-"},
		"short":          {"s3cr3t-k3y-but-short", "has 20 characters"},
		"few distinct":   {strings.Repeat("abcd", 20), "distinct characters"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			stack, secrets := liveLoadObcms(t), liveTestSecrets()
			secrets["django_secret_key"] = tc.key

			report := RunLive(context.Background(), LiveOptions{Stack: stack, Secrets: secrets, Docker: &fakeLiveDocker{}, Timeout: time.Second})

			finding := liveOne(t, report, "deploy.D003", tc.want, `"django_secret_key"`)
			if strings.Contains(finding.Text(), tc.key) {
				t.Errorf("D003 shows the key: %s", finding.Text())
			}
			liveNoLeaks(t, report, secrets)
		})
	}
}

func TestLive_MissingSecretIsD002NamingOnlyIt(t *testing.T) {
	stack, secrets := liveLoadObcms(t), liveTestSecrets()
	delete(secrets, "grafana_admin_password")

	report := RunLive(context.Background(), LiveOptions{Stack: stack, Secrets: secrets, Docker: &fakeLiveDocker{}, Timeout: time.Second})

	finding := liveOne(t, report, "deploy.D002", `"grafana_admin_password"`, "OBCD_SECRET_GRAFANA_ADMIN_PASSWORD")
	if want := stack.Secret("grafana_admin_password").DeclRange; finding.Range != want {
		t.Errorf("D002 points at %v, want the secret block %v", finding.Range, want)
	}
	liveNoLeaks(t, report, secrets)

	delete(secrets, "django_secret_key")
	report = RunLive(context.Background(), LiveOptions{Stack: stack, Secrets: secrets, Docker: &fakeLiveDocker{}, Timeout: time.Second})
	if got := len(liveFindingsOf(report.Findings, "deploy.D002")); got != 2 {
		t.Errorf("want one D002 per missing secret (2), got %d", got)
	}
	liveOne(t, report, "deploy.D003", "SECRET_KEY is missing")
}

// fakeLiveDocker is a DockerAPI whose calls a test can replace; a nil field
// answers as a healthy engine with every image present.
type fakeLiveDocker struct {
	ping         func(context.Context, client.PingOptions) (client.PingResult, error)
	info         func(context.Context, client.InfoOptions) (client.SystemInfoResult, error)
	imageInspect func(context.Context, string, ...client.ImageInspectOption) (client.ImageInspectResult, error)
}

func (f *fakeLiveDocker) Ping(ctx context.Context, options client.PingOptions) (client.PingResult, error) {
	if f.ping == nil {
		return client.PingResult{APIVersion: "1.41"}, nil
	}
	return f.ping(ctx, options)
}

func (f *fakeLiveDocker) Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error) {
	if f.info == nil {
		var result client.SystemInfoResult
		result.Info.DockerRootDir = "/var/lib/docker"
		return result, nil
	}
	return f.info(ctx, options)
}

func (f *fakeLiveDocker) ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	if f.imageInspect == nil {
		return client.ImageInspectResult{}, nil
	}
	return f.imageInspect(ctx, ref, opts...)
}

// runLiveDockerCheck runs the Docker checks with a fake engine and free disk.
func runLiveDockerCheck(t *testing.T, api DockerAPI, local bool, statfs func(string) (uint64, error)) ([]Finding, string) {
	t.Helper()
	check := &liveDockerCheck{api: api, stack: liveLoadObcms(t), timeout: time.Second, local: local, statfs: statfs}
	return check.run(context.Background())
}

func liveFreeDisk(free uint64) func(string) (uint64, error) {
	return func(string) (uint64, error) { return free, nil }
}

func TestLiveDocker_MissingImagesAreOneD005Each(t *testing.T) {
	var mu sync.Mutex
	inspected := map[string]int{}
	api := &fakeLiveDocker{imageInspect: func(_ context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
		mu.Lock()
		inspected[ref]++
		mu.Unlock()
		switch ref {
		case "obcms/app:1.0.0":
			return client.ImageInspectResult{}, cerrdefs.ErrNotFound.WithMessage("No such image: " + ref)
		case "redis:7-bookworm":
			return client.ImageInspectResult{}, errors.New("engine hiccup")
		}
		return client.ImageInspectResult{}, nil
	}}

	findings, version := runLiveDockerCheck(t, api, true, liveFreeDisk(100<<30))

	if version != "1.41" {
		t.Errorf("version = %q", version)
	}
	liveOne(t, LiveReport{Findings: liveMentioning(findings, "image obcms/app:1.0.0 ")}, "deploy.D005", "not on the engine", "web, celery-worker, celery-beat")
	if len(liveFindingsOf(findings, "deploy.D005")) != 2 || !strings.Contains(liveDump(findings), "redis:7-bookworm (service redis) could not be inspected: engine hiccup") {
		t.Errorf("want D005 for the missing app image and the uninspectable redis image:%s", liveDump(findings))
	}
	for ref, n := range inspected {
		if n != 1 {
			t.Errorf("image %s inspected %d times, want once", ref, n)
		}
	}
	if len(inspected) != len(liveImages(liveLoadObcms(t))) {
		t.Errorf("inspected %d images, want every distinct one (%d)", len(inspected), len(liveImages(liveLoadObcms(t))))
	}
}

func TestLiveDocker_DiskDecisions(t *testing.T) {
	statfsFailed := func(string) (uint64, error) { return 0, errors.New("no such file or directory") }
	infoFailed := &fakeLiveDocker{info: func(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
		return client.SystemInfoResult{}, errors.New("info broke")
	}}
	cases := []struct {
		name   string
		api    DockerAPI
		local  bool
		statfs func(string) (uint64, error)
		code   string // "" for no disk finding
		want   string
	}{
		{"plenty free", &fakeLiveDocker{}, true, liveFreeDisk(MinFreeDockerDisk), "", ""},
		{"low", &fakeLiveDocker{}, true, liveFreeDisk(MinFreeDockerDisk - 1), "deploy.D006", "/var/lib/docker"},
		{"remote", &fakeLiveDocker{}, false, liveFreeDisk(0), "deploy.D008", "remote engine"},
		{"root dir not here", &fakeLiveDocker{}, true, statfsFailed, "deploy.D008", "not visible here"},
		{"info fails", infoFailed, true, liveFreeDisk(100 << 30), "deploy.D008", "info broke"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			findings, _ := runLiveDockerCheck(t, tc.api, tc.local, tc.statfs)
			disk := append(liveFindingsOf(findings, "deploy.D006"), liveFindingsOf(findings, "deploy.D008")...)
			if tc.code == "" {
				if len(disk) != 0 {
					t.Errorf("unexpected disk findings:%s", liveDump(disk))
				}
				return
			}
			liveOne(t, LiveReport{Findings: disk}, tc.code, tc.want)
		})
	}
}

func TestLiveDocker_UnreachableStopsTheOtherChecks(t *testing.T) {
	calls := 0
	api := &fakeLiveDocker{
		ping: func(context.Context, client.PingOptions) (client.PingResult, error) {
			return client.PingResult{}, errors.New("connection refused")
		},
		imageInspect: func(context.Context, string, ...client.ImageInspectOption) (client.ImageInspectResult, error) {
			calls++
			return client.ImageInspectResult{}, nil
		},
	}
	findings, version := runLiveDockerCheck(t, api, true, liveFreeDisk(0))
	if version != "" || calls != 0 {
		t.Errorf("version %q, %d image inspections after a failed ping", version, calls)
	}
	liveOne(t, LiveReport{Findings: findings}, "deploy.D001", "connection refused", "unix:///var/run/docker.sock")
	if len(findings) != 1 {
		t.Errorf("want only D001:%s", liveDump(findings))
	}
}

func TestLiveDocker_PingPassesItsTimeout(t *testing.T) {
	api := &fakeLiveDocker{ping: func(ctx context.Context, options client.PingOptions) (client.PingResult, error) {
		if !options.NegotiateAPIVersion {
			t.Error("ping does not negotiate the API version")
		}
		<-ctx.Done()
		return client.PingResult{}, ctx.Err()
	}}
	start := time.Now()
	findings, _ := runLiveDockerCheck(t, api, true, liveFreeDisk(100<<30))
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("a hung ping took %s with a 1s timeout", elapsed)
	}
	liveOne(t, LiveReport{Findings: findings}, "deploy.D001", "no answer within 1s")
}

func TestLive_RulesAreRegisteredAsLive(t *testing.T) {
	codes := []string{"deploy.D001", "deploy.D002", "deploy.D003", "deploy.D004", "deploy.D005", "deploy.D006",
		"deploy.D007", "deploy.D008", "deploy.D009", "monitoring.E010"}
	for _, code := range codes {
		rule := Lookup(code)
		if rule == nil {
			t.Errorf("%s is not registered", code)
			continue
		}
		if !rule.Live || rule.Check != nil || rule.Title == "" || rule.Impact == "" || rule.Fix == "" || rule.Source == "" || rule.Category == "" {
			t.Errorf("%s is incomplete: %+v", code, rule)
		}
	}
}
