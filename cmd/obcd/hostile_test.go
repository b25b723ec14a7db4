package main

// hostile_test.go holds, in one table, every hostile or malformed input
// issue 13 names and more like them. Each runs the real binary on a copy
// of stacks/obcms.hcl with its secrets generated, changed in one way.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/internal/toolcheck"
	"github.com/obcd/obcd/orchestrator/secrets"
)

// The bounds a command keeps on any input (issue 13, item 1). The test
// takes them from the kernel's accounting of the child (CPU seconds and
// peak resident memory), which a busy machine does not inflate as it
// does wall time; hostileHang is only where a hang is called a hang.
// The peak is an upper bound: the child starts sharing the test's memory
// (Go forks with CLONE_VM), so it counts the test's own resident size too.
const (
	hostileCPU    = 2 * time.Second
	hostileMemory = 300 << 20
	hostileHang   = 30 * time.Second
)

// Where a finding or diagnostic points.
const (
	atStack   = `obcd\.hcl:\d+:\d+`
	atSecrets = `staging\.secrets:\d+`
)

type hostileCase struct {
	name string
	// edit changes the stack file's text; it must change something.
	edit func(src string) string
	// setup adds to the workspace: a user's directory, a FIFO, a secret.
	setup func(t *testing.T, dir string)
	// noSecrets leaves the secrets file out.
	noSecrets bool
	env       []string
	args      []string // default: validate staging --strict
	code      int      // 1, 64, or 0 for input that is fine: it must then render to files the real tools accept
	where     string   // a regexp the output matches: file:line:col; "" only where no file is at fault
	want      []string // in the output
	hidden    []string // never in the output
	json      bool     // stdout is one JSON document
}

// sub replaces old with new in the stack file.
func sub(old, new string) func(string) string {
	return func(src string) string { return strings.Replace(src, old, new, 1) }
}

// whole replaces the stack file.
func whole(src string) func(string) string { return func(string) string { return src } }

// inLocals adds attributes to the stack's locals block.
func inLocals(attrs string) func(string) string {
	return sub("locals {\n", "locals {\n"+attrs+"\n")
}

func manyLocals(n int, chained bool) string {
	var b strings.Builder
	b.WriteString("  l0 = \"a\"\n")
	for i := 1; i < n; i++ {
		if chained {
			fmt.Fprintf(&b, "  l%d = local.l%d\n", i, i-1)
		} else {
			fmt.Fprintf(&b, "  l%d = \"value-%d\"\n", i, i)
		}
	}
	return b.String()
}

var hostileCases = []hostileCase{
	// Crash and hangs.
	{name: "100,000 nested [", edit: whole("locals {\n  x = " + strings.Repeat("[", 100000) + "\n}\n"), code: 1, where: atStack, want: []string{"nest"}},
	{name: "100,000 nested {", edit: whole("locals {\n  x = " + strings.Repeat("{a=", 100000) + "\n}\n"), code: 1, where: atStack, want: []string{"nest"}},
	{name: "100,000 nested (", edit: whole("locals {\n  x = " + strings.Repeat("(", 100000) + "1\n}\n"), code: 1, where: atStack, want: []string{"nest"}},
	{name: "100,000 nested templates", edit: whole("locals {\n  x = " + strings.Repeat(`"${`, 100000) + "\n}\n"), code: 1, where: atStack, want: []string{"nest"}},
	{name: "file of /dev/zero", edit: inLocals(`  z = file("/dev/zero")`), code: 1, where: atStack, want: []string{"/dev/zero"}},
	{name: "file of a FIFO nobody writes", edit: inLocals(`  z = file("fifo")`), setup: mkfifo("fifo"), code: 1, where: atStack, want: []string{"regular file"}},
	{name: "file of a directory", edit: inLocals(`  z = file(".")`), code: 1, where: atStack, want: []string{"regular file"}},
	{name: "file of 2 MiB", edit: inLocals(`  z = file("big.txt")`), setup: writeFile("big.txt", strings.Repeat("x", 2<<20)), code: 1, where: atStack, want: []string{"big.txt"}},
	{name: "a for expression over for expressions, a billion values", edit: inLocals(`  z = [for a in range(1024): [for b in range(1024): [for c in range(1024): c]]]`), code: 1, want: []string{"evaluating obcd.hcl took more than", "stopped"}},
	{name: "a join over a million strings", edit: inLocals(`  z = join(",", [for i in range(1024): join("", [for j in range(1024): "s"])])`), code: 1, want: []string{"evaluating obcd.hcl took more than", "stopped"}},
	{name: "the same, with --json", edit: inLocals(`  z = [for a in range(1024): [for b in range(1024): [for c in range(1024): c]]]`), args: []string{"validate", "staging", "--json"}, code: 1, json: true, want: []string{`"exit_code": 1`}},
	{name: "indent by a billion spaces", edit: inLocals(`  z = indent(999999999, "a\nb")`), code: 1, where: atStack, want: []string{"indent"}},
	{name: "replace that builds gigabytes", edit: inLocals(`  s = join("", [for i in range(1024): "ssssssssss"])` + "\n" + `  z = replace(local.s, "s", local.s)`), code: 1, where: atStack, want: []string{"MB"}},
	{name: "a 6 MB setting that three Django services carry", edit: func(src string) string {
		// format pads cheaply: a 6 MB literal spent most of the CPU
		// bound parsing, and crossed it on a busy machine.
		return inLocals(`  big = format("%6291456s", "b")`)(sub("  session_engine     = \"cache\"\n", "  session_engine     = \"cache\"\n  settings = { BIG_TABLE = local.big }\n")(src))
	}, code: 1, where: atStack, want: []string{"Rendered environment too large"}},
	{name: "8,000 locals", edit: inLocals(manyLocals(8000, false)), code: 0},
	{name: "20,000 chained locals", edit: inLocals(manyLocals(20000, true)), code: 0},
	{name: "10 MB of comment", edit: func(src string) string { return src + strings.Repeat("# "+strings.Repeat("c", 98)+"\n", 100_000) }, code: 1, where: atStack, want: []string{"Stack file too large", "2 MiB"}},
	{name: "a 5 MB string", edit: inLocals(`  s = "` + strings.Repeat("s", 5<<20) + `"`), code: 1, where: atStack, want: []string{"Stack file too large", "file()"}},
	{name: "a string that brings the stack to its size bound", edit: func(src string) string {
		return inLocals(`  s = "` + strings.Repeat("s", stackhcl.MaxStackSize-len(src)-16) + `"`)(src)
	}, code: 0},
	{name: "a stack file that is /dev/zero", args: []string{"validate", "staging", "--stack", "/dev/zero"}, code: 1, want: []string{"/dev/zero is a device, not a regular file"}},
	{name: "a stack file that is a FIFO nobody writes", setup: mkfifo("fifo.hcl"), args: []string{"validate", "staging", "--stack", "fifo.hcl"}, code: 1, want: []string{"fifo.hcl is a named pipe, not a regular file"}},

	// Nothing of the user's is removed.
	{name: "render --out a web app's directory with a manifest.json", args: []string{"render", "staging", "--out", "site"},
		setup: writeFiles(map[string]string{"site/manifest.json": `{"name": "my web app"}`, "site/index.html": "<h1>mine</h1>"}), code: 1,
		want: []string{"manifest.json", "index.html"}},
	{name: "render --out the stack's own directory", args: []string{"render", "staging", "--out", "."}, code: 1, want: []string{"obcd.hcl"}},
	{name: "render --out a file", args: []string{"render", "staging", "--out", "notes.txt"}, setup: writeFile("notes.txt", "mine"), code: 1, want: []string{"notes.txt"}},
	{name: "render --out a directory obcd wrote, with a user's file added",
		args: []string{"render", "staging", "--out", "build/staging"}, setup: renderedWithExtra("build/staging", "config/mine.txt"), code: 1, want: []string{"mine.txt"}},

	// Ports the renderer would drop.
	{name: "port eighty:80", edit: sub(`"80:80", "443:443"`, `"eighty:80", "443:443"`), code: 1, where: atStack, want: []string{"eighty:80"}},
	{name: "port 99999:443", edit: sub(`"80:80", "443:443"`, `"80:80", "99999:443"`), code: 1, where: atStack, want: []string{"99999"}},
	{name: "port -80", edit: sub(`"80:80", "443:443"`, `"-80:80", "443:443"`), code: 1, where: atStack, want: []string{"-80"}},
	{name: "port 70000", edit: sub(`"80:80", "443:443"`, `"80:80", "70000:443"`), code: 1, where: atStack, want: []string{"70000"}},
	{name: "port 0", edit: sub(`"80:80", "443:443"`, `"0:80", "443:443"`), code: 1, where: atStack},
	{name: "an empty port", edit: sub(`"80:80", "443:443"`, `"", "443:443"`), code: 1, where: atStack},

	// Secrets in world-readable files.
	{name: "file of /etc/shadow", edit: inLocals(`  z = file("/etc/shadow")`), code: 1, where: atStack, want: []string{"outside"}},
	{name: "file of ../../../etc/hostname", edit: inLocals(`  z = file("../../../etc/hostname")`), code: 1, where: atStack, want: []string{"outside"}},
	{name: "file of a symlink out of the stack's directory", edit: inLocals(`  z = file("link")`), setup: symlink("/etc/hostname", "link"), code: 1, where: atStack, want: []string{"outside"}},
	{name: "a literal password in a service's env", edit: sub("  workers  = 4\n", "  workers  = 4\n  env = { DB_PASSWORD = \"Hunter2-literal-pw\" }\n"), code: 1, where: atStack, want: []string{"DB_PASSWORD"}, hidden: []string{"Hunter2-literal-pw"}},
	{name: "a literal token in a service's env", edit: sub("  workers  = 4\n", "  workers  = 4\n  env = { STRIPE_API_TOKEN = \"tok-Hunter2-literal\" }\n"), code: 1, where: atStack, want: []string{"STRIPE_API_TOKEN"}, hidden: []string{"tok-Hunter2-literal"}},
	{name: "a password-like key in django.settings", edit: sub("  session_engine     = \"cache\"\n", "  session_engine     = \"cache\"\n  settings = { EMAIL_HOST_PASSWORD = \"Hunter2-in-settings\" }\n"), code: 1, where: atStack, want: []string{"EMAIL_HOST_PASSWORD"}, hidden: []string{"Hunter2-in-settings"}},
	{name: "jsonencode of a secret", edit: sub("  workers  = 4\n", "  workers  = 4\n  env = { SENTRY = jsonencode(secret.sentry_dsn) }\n"), code: 1, where: atStack, want: []string{"jsonencode", "sentry_dsn"}},
	{name: "format of a secret", edit: sub("  workers  = 4\n", "  workers  = 4\n  env = { SENTRY = format(\"%s\", secret.sentry_dsn) }\n"), code: 1, where: atStack, want: []string{"sentry_dsn"}},
	{name: "upper of a secret", edit: sub("  workers  = 4\n", "  workers  = 4\n  env = { SENTRY = upper(secret.sentry_dsn) }\n"), code: 1, where: atStack, want: []string{"sentry_dsn"}},
	{name: "a function's error on what file() read", edit: inLocals(`  z = tonumber(file("key.txt"))`), setup: writeFile("key.txt", "Key-File-Content-91"), code: 1, where: atStack, want: []string{"redacted"}, hidden: []string{"Key-File-Content-91"}},
	{name: "a function's error on what env() read", edit: inLocals(`  z = tonumber(env("API_TOKEN"))`), env: []string{"API_TOKEN=Env-Token-Content-92"}, code: 1, where: atStack, want: []string{"redacted"}, hidden: []string{"Env-Token-Content-92"}},
	{name: "the secrets file given as the stack", args: []string{"validate", "staging", "--stack", ".obcd/staging.secrets"}, code: 1, want: []string{".obcd/staging.secrets", "secrets file"}},
	{name: "a $ in a secrets-file value", setup: setSecretLine("OBCD_SECRET_SENTRY_DSN", "${HOME}"), args: []string{"render", "staging"}, code: 1, where: atSecrets, want: []string{"OBCD_SECRET_SENTRY_DSN"}},
	{name: "a NUL in a secrets-file value", setup: setSecretLine("OBCD_SECRET_SENTRY_DSN", "abc\x00def"), args: []string{"render", "staging"}, code: 1, where: atSecrets, want: []string{"NUL"}},

	// validate refuses what render or the real tools would refuse.
	{name: "a domain with ; } server {", edit: sub(`domain      = "staging.obcms.example.org"`, `domain      = "staging.obcms.example.org; } server {"`), code: 1, where: atStack, want: []string{"domain"}},
	{name: "a domain with a space", edit: sub(`domain      = "staging.obcms.example.org"`, `domain      = "staging obcms.example.org"`), code: 1, where: atStack, want: []string{"domain"}},
	{name: "a docker_host of ftp://", edit: sub(`docker_host = "unix:///var/run/docker.sock"`, `docker_host = "ftp://example.org"`), code: 1, where: atStack, want: []string{"ftp"}},
	{name: "a docker_cert_path on a unix:// docker_host", edit: sub(`docker_host = "unix:///var/run/docker.sock"`, "docker_host = \"unix:///var/run/docker.sock\"\n  docker_cert_path = \"certs\""), code: 1, where: atStack, want: []string{"applies to a tcp:// docker_host only"}},
	{name: "an empty docker_cert_path", edit: sub(`docker_host = "unix:///var/run/docker.sock"`, "docker_host = \"tcp://10.0.0.5:2376\"\n  docker_cert_path = \"\""), code: 1, where: atStack, want: []string{"docker_cert_path is empty"}},
	{name: "a docker_host of ssh:// with no host", edit: sub(`docker_host = "unix:///var/run/docker.sock"`, `docker_host = "ssh://"`), code: 1, where: atStack},
	{name: "no secret values at all, for a deploy", noSecrets: true, args: []string{"validate", "staging", "--deploy"}, code: 1, where: atStack, want: []string{"secrets init staging"}},
	{name: "an image reference with NUL", edit: sub(`app_image = "obcms/app"`, `app_image = "obcms/app\u0000"`), code: 1, where: atStack, want: []string{"image"}},
	{name: "an image reference with U+202E", edit: sub(`app_image = "obcms/app"`, `app_image = "obcms/\u202eppa"`), code: 1, where: atStack, want: []string{"image"}},
	{name: "an image reference in upper case", edit: sub(`image                = "postgres:15-bookworm"`, `image                = "Postgres:15"`), code: 1, where: atStack, want: []string{"image"}},
	{name: "an image reference with an empty tag", edit: sub(`image                = "postgres:15-bookworm"`, `image                = "postgres:"`), code: 1, where: atStack, want: []string{"image"}},
	{name: "1,000,000 web replicas", edit: sub("  service \"web\" {\n    replicas = 2\n", "  service \"web\" {\n    replicas = 1000000\n"), code: 1, where: atStack, want: []string{"1000000"}},
	{name: "-1 web replicas", edit: sub("  service \"web\" {\n    replicas = 2\n", "  service \"web\" {\n    replicas = -1\n"), code: 1, where: atStack},
	{name: "no PgBouncer replica", edit: sub("  pool_mode         = \"transaction\"\n", "  pool_mode         = \"transaction\"\n  replicas          = 0\n"), code: 1, where: atStack, want: []string{"pgbouncer"}},
	{name: "a PgBouncer user without a password (found by the fuzzer)", edit: sub("    password = secret.obcms_user_password\n", ""), code: 1, where: atStack, want: []string{"without a password"}},
	{name: "a webhook_url that is not a URL (found by the fuzzer)", edit: sub(`webhook_url = "https://hooks.obcms.example.org/alertmanager"`, `webhook_url = "obcd-e2e/alertmanager:latest"`), code: 1, where: atStack, want: []string{"webhook_url"}},
	{name: "an smtp_smarthost with no port", edit: sub(`smtp_smarthost   = "smtp.obcms.example.org:587"`, `smtp_smarthost   = "smtp.obcms.example.org"`), code: 1, where: atStack, want: []string{"smtp_smarthost"}},
	{name: "a public_url of ftp://", edit: sub("  tier = \"staging\"\n", "  tier = \"staging\"\n  public_url = \"ftp://staging.obcms.example.org\"\n"), code: 1, where: atStack, want: []string{"public_url"}},
	{name: "a probe url with no host", edit: func(src string) string {
		return src + "\nprobe \"extra\" {\n  type = \"http\"\n  url  = \"/health/\"\n}\n"
	}, code: 1, where: atStack, want: []string{"probe url"}},
	{name: "a second postgres service (found by the fuzzer)", edit: func(src string) string {
		return src + "\nservice \"postgres\" \"db2\" {\n  superuser_password = secret.postgres_password\n}\n"
	}, code: 1, where: atStack, want: []string{"A second postgres service"}},
	{name: "a second nginx service", edit: func(src string) string { return src + "\nservice \"nginx\" \"edge\" {}\n" }, code: 1, where: atStack, want: []string{"A second nginx service"}},
	{name: "a second celery_beat service", edit: func(src string) string { return src + "\nservice \"celery_beat\" \"beat-2\" {}\n" }, code: 1, where: atStack, want: []string{"A second celery_beat service", "twice"}},
	{name: "no Redis replica", edit: sub("  maxmemory        = \"512mb\"\n", "  maxmemory        = \"512mb\"\n  replicas         = 0\n"), code: 1, where: atStack, want: []string{"redis"}},
	{name: "a 60-character domain renders for nginx", edit: sub(`domain      = "staging.obcms.example.org"`, `domain      = "`+strings.Repeat("a", 40)+`.staging.obcms.example.org"`), code: 0},
	{name: "a 253-character domain renders for nginx", edit: sub(`domain      = "staging.obcms.example.org"`, `domain      = "`+strings.Repeat(strings.Repeat("d", 62)+".", 3)+strings.Repeat("e", 48)+`.org"`), code: 0},
	{name: "a stats password with \" \\ space % / ?", env: []string{`OBCD_SECRET_OBCMS_STATS_PASSWORD=a" \b c%2F/d?e-Stats-9x`}, code: 0},
	{name: "every password with \" ' \\ space = $ % @ / : ? # & ;", env: everyPassword(`q" a'b \c d=e $f %41 @g /h :i ?j #k &l ;m`), code: 0},
	{name: "an 800-character replication password", env: []string{"OBCD_SECRET_REPLICATION_PASSWORD=" + strings.Repeat("r3pl1cat10n-", 70)}, args: []string{"validate", "production"}, code: 1, where: atStack, want: []string{"primary_conninfo"}},
	{name: "a replication password that secrets init would make too long", edit: sub("secret \"replication_password\" {\n", "secret \"replication_password\" {\n  length = 4096\n"), args: []string{"validate", "production"}, code: 1, where: atStack, want: []string{"primary_conninfo"}},

	// Rules key on what an environment is, not its name.
	{name: "a production environment named live", edit: func(src string) string {
		return strings.Replace(strings.Replace(src, `environment "production"`, `environment "live"`, 1), "  portal_base_url    = \"https://${environment.domain}\"\n", "", 1)
	}, args: []string{"validate", "live"}, noSecrets: true, code: 1, where: atStack, want: []string{"monitoring.E011", "tier production"}},
	{name: "a tier that is not one", edit: sub(`tier = "staging"`, `tier = "live"`), code: 1, where: atStack, want: []string{"production, staging, development"}},

	// Clean errors.
	{name: "an undeclared --var", args: []string{"validate", "staging", "--var", "app_versoin=1.2.3"}, code: 1, want: []string{`Did you mean "app_version"?`}},
	{name: "--json on a stack that does not parse", edit: sub(`  ops_email = "ops@obcms.example.org"`, `  ops_email = "ops@obcms.example.org`), args: []string{"validate", "staging", "--json"}, code: 1, json: true, want: []string{`"line"`, `"column"`}},
	{name: "render --json on a stack that does not parse", edit: sub(`  ops_email = "ops@obcms.example.org"`, `  ops_email = "ops@obcms.example.org`), args: []string{"render", "staging", "--json"}, code: 1, json: true, want: []string{`"line"`, `"column"`}},
	{name: "one missing quote gives one error", edit: sub(`  ops_email = "ops@obcms.example.org"`, `  ops_email = "ops@obcms.example.org`), code: 1, where: atStack, want: []string{"1 error(s)"}},
	{name: "a failing function gives one error", edit: inLocals(`  z = file("missing.txt")`), code: 1, where: atStack, want: []string{"1 error(s)"}, hidden: []string{"number"}},
	{name: "a duplicate block shows the two places only", edit: func(src string) string { return src + "\nservice \"redis\" \"redis\" {}\n" }, code: 1, where: atStack, want: []string{"1 error(s)"}, hidden: []string{"celery_worker", "concurrency"}},
	{name: "a NUL byte in the stack", edit: sub("locals {\n", "locals {\n\x00\n"), code: 1, where: atStack},
	{name: "invalid UTF-8 in the stack", edit: sub("locals {\n", "locals {\n  z = \"\xff\xfe\"\n"), code: 1, where: atStack},
	{name: "an unknown environment", args: []string{"validate", "qa"}, code: 1, want: []string{"staging", "production"}},
	{name: "a stack file that is a directory", args: []string{"validate", "staging", "--stack", "."}, code: 1},
	{name: "a stack file that is missing", args: []string{"validate", "staging", "--stack", "nope.hcl"}, code: 1, want: []string{"nope.hcl"}},

	// Usage.
	{name: "no environment", args: []string{"validate"}, code: 64},
	{name: "an unknown flag", args: []string{"validate", "staging", "--no-such-flag"}, code: 64},
	{name: "a --var without =", args: []string{"render", "staging", "--var", "novalue"}, code: 64},
	{name: "an unknown command", args: []string{"deplyo", "staging"}, code: 64},
}

// TestHostileInput runs every case and checks that it exits as it should,
// points at file:line:col, keeps within the CPU and memory bounds, prints
// no secret, and leaves the workspace exactly as it found it. A case that
// is accepted is rendered, and the real tools must accept the render.
func TestHostileInput(t *testing.T) {
	src, err := os.ReadFile("../../stacks/obcms.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			stack := string(src)
			if tc.edit != nil {
				if stack = tc.edit(stack); stack == string(src) {
					t.Fatal("the case's edit changed nothing in the stack")
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "obcd.hcl"), []byte(string(src)), 0o644); err != nil {
				t.Fatal(err)
			}
			if !tc.noSecrets {
				if r := obcd(t, dir, nil, "secrets", "init", "staging"); r.code != 0 {
					t.Fatalf("secrets init: %s", r.stderr)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "obcd.hcl"), []byte(stack), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			args := tc.args
			if args == nil {
				args = []string{"validate", "staging", "--strict"}
			}
			before := snapshot(t, dir)
			r, usage := runBounded(t, dir, tc.env, args...)
			out := r.stdout + r.stderr
			if r.code != tc.code {
				t.Fatalf("obcd %s exited %d, want %d\nstdout:\n%s\nstderr:\n%s", args[0], r.code, tc.code, head(r.stdout), head(r.stderr))
			}
			t.Logf("exit %d, %s of CPU, %d MB peak", r.code, usage.cpu.Round(time.Millisecond), usage.maxRSS>>20)
			if cpu := usage.cpu; cpu > hostileCPU {
				t.Errorf("took %s of CPU, over the %s a command may take", cpu, hostileCPU)
			}
			if usage.maxRSS > hostileMemory {
				t.Errorf("peaked at %d MB of memory, over the %d MB a command may use", usage.maxRSS>>20, hostileMemory>>20)
			}
			if tc.where != "" && !regexp.MustCompile(tc.where).MatchString(out) {
				t.Errorf("the output does not point at %s:\n%s", tc.where, head(out))
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("the output lacks %q:\n%s", w, head(out))
				}
			}
			for _, h := range append(tc.hidden, secretValues(t, dir)...) {
				if strings.Contains(out, h) {
					t.Errorf("the output holds %q, which it must never print:\n%s", h, head(out))
				}
			}
			if tc.json {
				var doc map[string]any
				if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
					t.Errorf("--json: stdout is not one JSON document (%v):\n%s", err, head(r.stdout))
				}
			}
			if after := snapshot(t, dir); !equalSnapshots(before, after) {
				t.Errorf("the command changed the workspace:\nbefore: %v\nafter:  %v", before, after)
			}
			if tc.code == 0 && args[0] == "validate" {
				renderForTheTools(t, dir, tc.env, args[1])
			}
		})
	}
}

type usage struct {
	cpu    time.Duration
	maxRSS int64
}

// runBounded runs obcd as obcd() does, killing it after hostileHang, and
// returns the kernel's account of its CPU time and peak memory.
func runBounded(t testing.TB, dir string, env []string, args ...string) (result, usage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hostileHang)
	defer cancel()
	cmd := exec.CommandContext(ctx, obcdBinary, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "NO_COLOR=1"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("obcd %s did not finish in %s: a hang", strings.Join(args, " "), hostileHang)
	}
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return result{code, stdout.String(), stderr.String()}, usage{cpu: cpu, maxRSS: ru.Maxrss << 10}
}

// renderForTheTools renders an accepted case outside its workspace and
// has compose-go, nginx, promtool and amtool read the result.
func renderForTheTools(t *testing.T, dir string, env []string, environment string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "render")
	if r := obcd(t, dir, env, "render", environment, "--out", out); r.code != 0 {
		t.Fatalf("validate accepts the stack but render exits %d:\n%s", r.code, head(r.stderr))
	}
	stack, diags := stackhcl.NewLoader(stackhcl.Options{Environment: environment, LookupEnv: lookup(env)}).Load(filepath.Join(dir, "obcd.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	store, err := secrets.Load(secrets.Path(filepath.Join(dir, ".obcd"), environment), lookup(env))
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{}
	for _, sec := range stack.Secrets {
		if v, err := store.Value(sec.Name); err == nil {
			values[sec.Name] = v
		}
	}
	files := toolcheck.Render(out, stack, values)
	if files.Nginx == "" || files.Prometheus == "" || files.Alertmanager == "" {
		t.Fatalf("the render of OBCMS lacks nginx.conf, prometheus.yml or alertmanager.yml: %+v", files)
	}
	if err := toolcheck.Check(context.Background(), files); err != nil {
		t.Errorf("validate accepts the stack, but a real tool refuses its render: %v", err)
	}
}

// lookup reads KEY=VALUE pairs as an environment.
func lookup(env []string) func(string) (string, bool) {
	return func(key string) (string, bool) {
		for _, kv := range env {
			if k, v, _ := strings.Cut(kv, "="); k == key {
				return v, true
			}
		}
		return "", false
	}
}

// secretValues are the values in the workspace's secrets file, if any.
func secretValues(t *testing.T, dir string) []string {
	t.Helper()
	values, err := secretFileValues(secrets.Path(filepath.Join(dir, ".obcd"), "staging"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return values
}

// everyPassword sets every password of the OBCMS stack to value.
func everyPassword(value string) []string {
	var env []string
	for _, name := range []string{"postgres_password", "replication_password", "obcms_user_password", "obcms_admin_password", "obcms_stats_password", "grafana_admin_password"} {
		env = append(env, stackhcl.SecretEnvVar(name)+"="+value)
	}
	return env
}

type fileState struct {
	mode fs.FileMode
	size int64
	sum  [32]byte
}

// snapshot is every path under dir with its mode, size and content.
func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	state := map[string]fileState{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		s := fileState{mode: info.Mode(), size: info.Size()}
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			s.sum = sha256.Sum256(data)
		}
		rel, _ := filepath.Rel(dir, path)
		state[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

func equalSnapshots(a, b map[string]fileState) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func head(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "\n..."
	}
	return s
}

func writeFile(name, content string) func(*testing.T, string) {
	return writeFiles(map[string]string{name: content})
}

func writeFiles(files map[string]string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		for name, content := range files {
			path := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func mkfifo(name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(target, name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// renderedWithExtra renders staging into out, then adds a user's file.
func renderedWithExtra(out, extra string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if r := obcd(t, dir, nil, "render", "staging", "--out", out); r.code != 0 {
			t.Fatal(r.stderr)
		}
		writeFile(filepath.Join(out, extra), "mine")(t, dir)
	}
}

// setSecretLine replaces a key's line in the staging secrets file.
func setSecretLine(key, value string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		path := secrets.Path(filepath.Join(dir, ".obcd"), "staging")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		found := false
		for i, line := range lines {
			if strings.HasPrefix(line, key+"=") {
				lines[i], found = key+"="+value, true
			}
		}
		if !found {
			t.Fatalf("no %s in the secrets file", key)
		}
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
