package hcl

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// TestLoad_DeepNestingIsRefusedBeforeTheParser: a file nested far past
// MaxNesting, in brackets, braces, parentheses or interpolations, is
// refused at the place it goes too deep, fast, and never reaches the
// parser's recursion (a Go stack overflow is a crash no recover catches).
// Brackets inside strings and comments do not count.
func TestLoad_DeepNestingIsRefusedBeforeTheParser(t *testing.T) {
	deep := map[string]string{
		"brackets":       "stack \"x\" {\n  app_image = " + strings.Repeat("[", 100000) + "\n}\n",
		"braces":         "stack \"x\" {\n  app_image = " + strings.Repeat("{a=", 100000) + "\n}\n",
		"parentheses":    "stack \"x\" {\n  app_image = " + strings.Repeat("(", 100000) + "\n}\n",
		"interpolations": "stack \"x\" {\n  app_image = " + strings.Repeat(`"${`, 50000) + "\n}\n",
	}
	for name, src := range deep {
		t.Run(name, func(t *testing.T) {
			started := time.Now()
			_, diags := NewLoader(Options{Environment: "staging"}).LoadSource("deep.hcl", []byte(src))
			if !diags.HasErrors() || diags[0].Summary != "Nesting too deep" || diags[0].Subject == nil || diags[0].Subject.Start.Line != 2 {
				t.Fatalf("diagnostics %v, want Nesting too deep on line 2", diags)
			}
			if elapsed := time.Since(started); elapsed > 2*time.Second {
				t.Errorf("refusing took %v", elapsed)
			}
		})
	}
	// Deep-looking text that is not nesting: in a string, a comment, a
	// heredoc-free escape.
	shallow := "# " + strings.Repeat("[", 1000) + "\n" +
		"stack \"x\" {\n  app_image = \"" + strings.Repeat("[{(", 1000) + "\" // " + strings.Repeat("(", 1000) + "\n}\n" +
		"environment \"staging\" { domain = \"s.example\" }\n"
	if _, diags := NewLoader(Options{Environment: "staging"}).LoadSource("shallow.hcl", []byte(shallow)); diags.HasErrors() && strings.Contains(diags.Error(), "Nesting too deep") {
		t.Errorf("brackets in strings and comments were counted: %v", diags)
	}
}

// TestLoad_FileReadsOnlyRegularFilesInsideTheStacksDirectory: file() of a
// path outside the stack's folder (absolute, ../, or a symlink out), of
// a device, or of a file over MaxFileSize is refused with why; a file in
// a directory given as AllowFile is read.
func TestLoad_FileReadsOnlyRegularFilesInsideTheStacksDirectory(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	write := func(path, data string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(outside, "secret.txt"), "s3cr3t")
	write(filepath.Join(dir, "inside.txt"), "inside")
	write(filepath.Join(dir, "big.txt"), strings.Repeat("x", MaxFileSize+1))
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, filepath.Join(outside, "secret.txt"))
	if err != nil {
		t.Fatal(err)
	}
	load := func(arg string, allow ...string) (*Stack, string) {
		t.Helper()
		src := "stack \"x\" { app_image = \"demo/app\" }\nservice \"web\" \"web\" { env = { V = file(\"" + arg + "\") } }\nenvironment \"staging\" { domain = \"s.example\" }\n"
		path := filepath.Join(dir, "obcd.hcl")
		write(path, src)
		stack, diags := NewLoader(Options{Environment: "staging", AllowFile: allow, LookupEnv: func(string) (string, bool) { return "", false }}).Load(path)
		if diags.HasErrors() {
			return nil, diags.Error()
		}
		return stack, ""
	}
	for _, c := range []struct{ arg, allow, want string }{
		{filepath.Join(outside, "secret.txt"), "", "is outside the stack file's directory"},
		{rel, "", "is outside the stack file's directory"},
		{"link.txt", "", "is outside the stack file's directory"},
		{"/dev/zero", "/dev", "is a device, not a regular file"},
		{".", "", "is a directory, not a regular file"},
		{"big.txt", "", "is larger than"},
	} {
		var allow []string
		if c.allow != "" {
			allow = []string{c.allow}
		}
		if stack, errText := load(c.arg, allow...); stack != nil || !strings.Contains(errText, c.want) || strings.Contains(errText, "s3cr3t") {
			t.Errorf("file(%q): %q, want refused: %q", c.arg, errText, c.want)
		}
	}
	if stack, errText := load("inside.txt"); stack == nil || stack.Service("web").Env["V"] != "inside" {
		t.Errorf("file(inside.txt): %q", errText)
	}
	if stack, errText := load(filepath.Join(outside, "secret.txt"), outside); stack == nil || stack.Service("web").Env["V"] != "s3cr3t" {
		t.Errorf("file() of an --allow-file directory: %q", errText)
	}
}

// TestLoad_AnUndeclaredVarIsRefused: --var for a variable the stack does
// not declare is a typo, not a no-op.
func TestLoad_AnUndeclaredVarIsRefused(t *testing.T) {
	_, diags := NewLoader(Options{Environment: "staging", Vars: map[string]string{"app_verison": "1.2.3"}}).Load("../stacks/obcms.hcl")
	if !diags.HasErrors() || !strings.Contains(diags.Error(), `declares no variable "app_verison"`) || !strings.Contains(diags.Error(), `Did you mean "app_version"?`) {
		t.Fatalf("diagnostics %v, want the undeclared name refused, with the declared one it is a typo of", diags)
	}
}

// TestValidate_PortsAndReplicasTheRendererWouldDrop: a ports entry the
// renderer cannot parse, or with a port outside 1-65535, and a replica
// count past MaxReplicas, are refused where they are written.
func TestValidate_PortsAndReplicasTheRendererWouldDrop(t *testing.T) {
	for _, c := range []struct{ attr, want string }{
		{`ports = ["eighty:80"]`, "Invalid port"},
		{`ports = ["99999:443"]`, "Invalid port"},
		{`ports = ["127.0.0.1:8080:70000"]`, "Invalid port"},
		{`ports = ["-80:80"]`, "Invalid port"},
		{`replicas = 1000000`, "Too many replicas"},
	} {
		src := "stack \"x\" { app_image = \"demo/app\" }\nservice \"web\" \"web\" {\n  " + c.attr + "\n}\nenvironment \"staging\" { domain = \"s.example\" }\n"
		_, diags := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource("obcd.hcl", []byte(src))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), c.want) || !strings.Contains(diags.Error(), "obcd.hcl:3") {
			t.Errorf("%s: %v, want %q at obcd.hcl:3", c.attr, diags, c.want)
		}
	}
	src := "stack \"x\" { app_image = \"demo/app\" }\nservice \"web\" \"web\" {\n  ports = [\"127.0.0.1:8080:8000\", \"9000:9000/udp\"]\n}\nenvironment \"staging\" { domain = \"s.example\" }\n"
	if _, diags := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource("obcd.hcl", []byte(src)); diags.HasErrors() {
		t.Errorf("good ports refused: %v", diags)
	}
}

// TestLoad_AFailingFunctionGivesOneError: the value a failing call leaves
// unknown is not reported again as "value must be known".
func TestLoad_AFailingFunctionGivesOneError(t *testing.T) {
	src := "stack \"x\" { app_image = file(\"/etc/hostname\") }\nenvironment \"staging\" { domain = \"s.example\" }\n"
	_, diags := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource(filepath.Join(t.TempDir(), "obcd.hcl"), []byte(src))
	if len(diags) != 1 || diags[0].Summary != "Invalid function argument" {
		t.Fatalf("diagnostics %v, want only the function's own error", diags)
	}
}

// TestLoad_DomainAndDockerHostAreChecked: a domain that is not a hostname
// (it goes into nginx's server_name) and a docker_host obcd cannot dial
// are refused where they are written.
func TestLoad_DomainAndDockerHostAreChecked(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{`domain = "x.example.org; } server {"`, "Invalid domain"},
		{`domain = "` + strings.Repeat("a", 64) + `.example.org"`, "Invalid domain"},
		{`domain = "-bad.example.org"`, "Invalid domain"},
		{"domain = \"s.example\"\n  docker_host = \"ftp://engine.example\"", "Invalid docker_host"},
		{"domain = \"s.example\"\n  docker_host = \"ssh://\"", "names no host"},
		{"domain = \"s.example\"\n  docker_host = \"ssh:///srv\"", "names no host"},
		{"domain = \"s.example\"\n  docker_host = \"unix://\"", "names no socket path"},
		{"domain = \"s.example\"\n  docker_host = \"unix://docker.sock\"", "names no socket path"},
		{"domain = \"s.example\"\n  docker_host = \"tcp://engine.example\"", "is not tcp://host:port"},
		{"domain = \"s.example\"\n  docker_host = \"tcp://engine.example:99999\"", "is not tcp://host:port"},
		{"domain = \"s.example\"\n  docker_host = \"engine.example:2376\"", "Invalid docker_host"},
	} {
		src := "stack \"x\" { app_image = \"demo/app\" }\nenvironment \"staging\" {\n  " + c.env + "\n}\n"
		_, diags := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource("obcd.hcl", []byte(src))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.env, diags, c.want)
		}
	}
	for _, env := range []string{`domain = "obcms.example.org"`, `domain = "localhost"`, "domain = \"s.example\"\n  docker_host = \"ssh://deploy@10.0.0.5\"",
		"domain = \"s.example\"\n  docker_host = \"ssh://deploy@[::1]:2222\"", "domain = \"s.example\"\n  docker_host = \"tcp://10.0.0.5:2376\"",
		"domain = \"s.example\"\n  docker_host = \"unix:///run/user/1000/docker.sock\""} {
		src := "stack \"x\" { app_image = \"demo/app\" }\nenvironment \"staging\" {\n  " + env + "\n}\n"
		_, diags := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource("obcd.hcl", []byte(src))
		if diags.HasErrors() && (strings.Contains(diags.Error(), "Invalid domain") || strings.Contains(diags.Error(), "Invalid docker_host")) {
			t.Errorf("%s refused: %v", env, diags)
		}
	}
}

// TestLoad_ASecretInAFunctionIsRefused: a function would turn a secret
// into a string or a JSON document (jsonencode(secret.x) rendered '{}'),
// so any function but try, can and coalesce refuses one, naming it.
func TestLoad_ASecretInAFunctionIsRefused(t *testing.T) {
	for _, expr := range []string{`jsonencode(secret.k)`, `jsonencode({ a = [secret.k] })`, `format("%v", secret.k)`, `tostring(secret.k)`, `upper(secret.k)`} {
		src := "stack \"x\" { app_image = \"demo/app\" }\nsecret \"k\" {}\nservice \"web\" \"web\" { env = { K = " + expr + " } }\nenvironment \"staging\" { domain = \"s.example\" }\n"
		_, diags := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource("obcd.hcl", []byte(src))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), "obcd.hcl:3") || (!strings.Contains(diags.Error(), "secret.k cannot be passed to") && !strings.Contains(diags.Error(), "but have secret")) {
			t.Errorf("%s: %v, want a refusal of secret.k at obcd.hcl:3", expr, diags)
		}
	}
}

// TestValidate_ALiteralCredentialInEnvIsRefused: a password in a
// service's env map or django.settings would land in a 0644 file.
func TestValidate_ALiteralCredentialInEnvIsRefused(t *testing.T) {
	for _, c := range []struct{ block, want string }{
		{"service \"web\" \"web\" {\n  env = { SMTP_PASSWORD = \"hunter2hunter2\" }\n}", "Literal credential in env"},
		{"service \"web\" \"web\" {}\ndjango {\n  settings = { STRIPE_API_KEY = \"sk_live_x\" }\n}", "Literal credential in settings"},
	} {
		src := "stack \"x\" { app_image = \"demo/app\" }\n" + c.block + "\nenvironment \"staging\" { domain = \"s.example\" }\n"
		_, diags := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource("obcd.hcl", []byte(src))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), c.want) || strings.Contains(diags.Error(), "hunter2") || strings.Contains(diags.Error(), "sk_live") {
			t.Errorf("%s: %v, want %q without the value", c.block, diags, c.want)
		}
	}
}

// TestValidate_AServiceDjangoNeedsMustRun: PgBouncer or Redis with
// replicas = 0 renders, but nothing answers Django.
func TestValidate_AServiceDjangoNeedsMustRun(t *testing.T) {
	stack, diags := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }}).Load("../stacks/obcms.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, name := range []string{stack.Django.Database, stack.Django.Cache} {
		stack.Service(name).Replicas = 0
		found := false
		for _, d := range validateStack(stack) {
			if d.Summary == "A service Django needs runs no replica" && strings.Contains(d.Detail, `"`+name+`"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("replicas = 0 on %s, which Django needs, passed validation", name)
		}
		stack.Service(name).Replicas = 1
	}
}

// hclQuote writes s as an HCL string literal (HCL has \uNNNN but no \x).
func hclQuote(s string) string {
	return strings.ReplaceAll(strconv.Quote(s), `\x00`, `\u0000`)
}

// TestValidate_ImageReferencesAreParsed: what Docker would refuse as an
// image reference is refused where it is written.
func TestValidate_ImageReferencesAreParsed(t *testing.T) {
	for _, image := range []string{"Demo/App:1", "demo/app:1\x00", "demo/app\u202e:1", "demo//app", "demo/app:"} {
		src := "stack \"x\" { app_image = \"demo/app\" }\nservice \"web\" \"web\" {\n  image = " + hclQuote(image) + "\n}\nenvironment \"staging\" { domain = \"s.example\" }\n"
		_, diags := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource("obcd.hcl", []byte(src))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), "Invalid image reference") || !strings.Contains(diags.Error(), "obcd.hcl:3") {
			t.Errorf("image %q: %v, want an invalid reference at obcd.hcl:3", image, diags)
		}
	}
	for _, image := range []string{"postgres:15-bookworm", "registry.example.org:5000/obcms/app:1.2.0", "obcd-e2e/nginx:latest"} {
		src := "stack \"x\" { app_image = \"demo/app\" }\nservice \"web\" \"web\" {\n  image = " + hclQuote(image) + "\n}\nenvironment \"staging\" { domain = \"s.example\" }\n"
		if _, diags := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource("obcd.hcl", []byte(src)); diags.HasErrors() && strings.Contains(diags.Error(), "Invalid image reference") {
			t.Errorf("image %q refused: %v", image, diags)
		}
	}
}

// TestValidate_AReplicationPasswordFitsPrimaryConninfo: a replication
// password generated past what primary_conninfo holds is refused at the
// secret.
func TestValidate_AReplicationPasswordFitsPrimaryConninfo(t *testing.T) {
	stack, diags := NewLoader(Options{Environment: "production", LookupEnv: func(string) (string, bool) { return "", false }}).Load("../stacks/obcms.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	db := stack.First(KindPostgres)
	if db.Replicas == 0 {
		t.Fatal("production has no streaming replica to test with")
	}
	stack.Secret(db.Postgres.ReplicationPassword).Length = 800
	found := false
	for _, d := range validateStack(stack) {
		found = found || d.Summary == "Replication password too long"
	}
	if !found {
		t.Error("an 800-character replication password passed validation")
	}
	stack.Secret(db.Postgres.ReplicationPassword).Length = MaxReplicationPassword
	for _, d := range validateStack(stack) {
		if d.Summary == "Replication password too long" {
			t.Errorf("a %d-character replication password was refused", MaxReplicationPassword)
		}
	}
}

// TestLoad_ASecretsFileGivenAsTheStackIsNotQuoted: -f .obcd/staging.secrets
// is refused without a snippet, so no secret line is printed.
func TestLoad_ASecretsFileGivenAsTheStackIsNotQuoted(t *testing.T) {
	src := "# obcd secrets\nOBCD_SECRET_DJANGO_SECRET_KEY=s3cr3t-value-here\nexport OBCD_SECRET_DB='other'\n"
	_, diags := NewLoader(Options{Environment: "staging"}).LoadSource("staging.secrets", []byte(src))
	if len(diags) != 1 || diags[0].Summary != "This is a secrets file, not a stack file" || diags[0].Subject != nil {
		t.Fatalf("diagnostics %v, want one refusal with no snippet", diags)
	}
	if strings.Contains(diags.Error(), "s3cr3t") || strings.Contains(diags.Error(), "other") {
		t.Errorf("the refusal quotes a value: %v", diags)
	}
}

// chainedLocals is a stack whose n locals each add one to the one before,
// written last first, so that an evaluation in file or name order finds
// one ready local per pass.
func chainedLocals(n int) []byte {
	var b strings.Builder
	b.WriteString("stack \"x\" { app_image = \"demo/app\" }\nlocals {\n  l0 = 0\n")
	for i := n - 1; i >= 1; i-- {
		fmt.Fprintf(&b, "  l%d = local.l%d + 1\n", i, i-1)
	}
	fmt.Fprintf(&b, "}\nservice \"web\" \"web\" {\n  replicas = local.l%d - %d\n}\nenvironment \"staging\" { domain = \"s.example\" }\n", n-1, n-3)
	return []byte(b.String())
}

// TestLoad_ManyChainedLocalsEvaluateOnce: 20,000 chained locals (which
// did not finish in 90 s when each pass evaluated one) load, with the
// right value at the end of the chain. BenchmarkLoad_ChainedLocals
// measures the time.
func TestLoad_ManyChainedLocalsEvaluateOnce(t *testing.T) {
	stack, diags := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource("obcd.hcl", chainedLocals(20000))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := stack.Service("web").Replicas; got != 2 {
		t.Errorf("replicas = local.l19999 - 19997 = %d, want 2", got)
	}
}

func BenchmarkLoad_ChainedLocals(b *testing.B) {
	for _, n := range []int{1000, 8000, 20000} {
		src := chainedLocals(n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				if _, diags := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource("obcd.hcl", src); diags.HasErrors() {
					b.Fatal(diags)
				}
			}
		})
	}
}

// TestWriteDiagnostics_NoValueReadByFileOrEnvIsPrinted: a function's
// error quotes its argument, and HCL prints the values of the variables
// an expression uses; neither may print what file() or env() read.
func TestWriteDiagnostics_NoValueReadByFileOrEnvIsPrinted(t *testing.T) {
	dir := t.TempDir()
	const content, token = "Top-Secret-File-Value\nsecond line of it", "Env-Token-Value-77"
	if err := os.WriteFile(filepath.Join(dir, "key.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(name string) (string, bool) { return token, name == "TOKEN" }
	for _, expr := range []string{
		`tonumber(file("key.txt"))`,
		`file(file("key.txt"))`,
		`tonumber(trimspace(file("key.txt")))`,
		`tonumber(local.key)`,
		`tonumber(env("TOKEN"))`,
		`file(env("TOKEN"))`,
		`{a = 1}[env("TOKEN")] + local.key`,
	} {
		src := "stack \"x\" { app_image = \"demo/app\" }\nlocals {\n  key = file(\"key.txt\")\n  z = " + expr + "\n}\nenvironment \"staging\" {\n  domain = \"s.example.org\"\n}\n"
		path := filepath.Join(dir, "obcd.hcl")
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		loader := NewLoader(Options{Environment: "staging", LookupEnv: env})
		_, diags := loader.Load(path)
		if !diags.HasErrors() {
			t.Fatalf("%s: loads", expr)
		}
		var text strings.Builder
		if err := loader.WriteDiagnostics(&text, diags, false); err != nil {
			t.Fatal(err)
		}
		for _, leaked := range []string{"Top-Secret-File-Value", "second line of it", token} {
			if strings.Contains(text.String()+diags.Error(), leaked) {
				t.Errorf("%s: a diagnostic prints %q:\n%s", expr, leaked, text.String())
			}
		}
		if !strings.Contains(text.String(), "redacted") {
			t.Errorf("%s: the diagnostic does not say a value was redacted:\n%s", expr, text.String())
		}
	}
}

// TestLoad_SizeIsBounded: past MaxStackSize bytes, MaxTokens of syntax
// or MaxServices services, a stack is refused where the bound is
// crossed; comments and the text of strings do not count as tokens, and
// what is within the bounds loads.
func TestLoad_SizeIsBounded(t *testing.T) {
	base, err := os.ReadFile("../stacks/obcms.hcl")
	if err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	load := func(src string) (*Stack, hcl.Diagnostics) {
		return NewLoader(Options{Environment: "staging", LookupEnv: noEnv}).LoadSource("obcd.hcl", []byte(src))
	}
	// Short locals: the token bound is crossed long before the size bound.
	var locals, services strings.Builder
	for i := 0; locals.Len() < MaxStackSize*3/4; i++ {
		fmt.Fprintf(&locals, "  l%d = %d\n", i, i)
	}
	for i := range MaxServices + 1 {
		fmt.Fprintf(&services, "service \"exporter\" \"node-%d\" {\n  type = \"node\"\n}\n", i)
	}
	room := MaxStackSize - len(base) - 100 // what a string or comments may add
	comments := func(n int) string {
		line := "# " + strings.Repeat("c", 98) + "\n"
		return strings.Repeat(line, n/len(line))
	}
	withString := func(n int) string {
		return strings.Replace(string(base), "locals {\n", "locals {\n  big = \""+strings.Repeat("s", n)+"\"\n", 1)
	}
	for _, c := range []struct {
		name, src, want string
		line            int // where the bound is crossed, if not 0
	}{
		{"short locals past the token bound", strings.Replace(string(base), "locals {\n", "locals {\n"+locals.String(), 1), "Stack file too large", 0},
		{"1001 more services", string(base) + services.String(), "Too many services", 0},
		{"a 10 MB string", withString(10 << 20), "Stack file too large", strings.Count(string(base)[:strings.Index(string(base), "locals {\n")], "\n") + 2},
		{"10 MB of comments", string(base) + comments(10<<20), "Stack file too large", 0},
		{"one byte past the bound", withString(room + 101), "Stack file too large", 0},
	} {
		_, diags := load(c.src)
		if !diags.HasErrors() || diags[0].Summary != c.want || diags[0].Subject == nil || diags[0].Subject.Start.Line < 30 {
			t.Errorf("%s: %v, want %q at the place it is crossed", c.name, diags, c.want)
			continue
		}
		if c.line != 0 && diags[0].Subject.Start.Line != c.line {
			t.Errorf("%s: refused at line %d, want %d, the string's", c.name, diags[0].Subject.Start.Line, c.line)
		}
	}
	for _, c := range []struct{ name, src string }{
		{"comments up to the size bound", string(base) + comments(room)},
		{"a string up to the size bound", withString(room)},
		{"30,000 locals", strings.Replace(string(base), "locals {\n", "locals {\n"+locals.String()[:strings.Index(locals.String(), "l30000 ")], 1)},
	} {
		if len(c.src) > MaxStackSize {
			t.Fatalf("%s: the case is %d bytes, over the bound", c.name, len(c.src))
		}
		if stack, diags := load(c.src); stack == nil {
			t.Errorf("%s: refused: %v", c.name, diags)
		}
	}
}

// TestLoad_ReadsOnlyARegularStackFileAndOnlyUpToTheBound: --stack of a
// device, a FIFO nobody writes or a directory is refused at once, not
// read without end; a file past MaxStackSize is read only as far as the
// bound.
func TestLoad_ReadsOnlyARegularStackFileAndOnlyUpToTheBound(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.hcl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.hcl")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("c", 3*MaxStackSize)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, summary, want string }{
		{"/dev/zero", "Cannot read stack file", "/dev/zero is a device, not a regular file"},
		{fifo, "Cannot read stack file", "is a named pipe, not a regular file"},
		{dir, "Cannot read stack file", "is a directory, not a regular file"},
		{filepath.Join(dir, "missing.hcl"), "Cannot read stack file", "no such file"},
		{big, "Stack file too large", "larger than 2 MiB"},
	} {
		done := make(chan hcl.Diagnostics, 1)
		go func() {
			_, diags := NewLoader(Options{Environment: "staging"}).Load(c.path)
			done <- diags
		}()
		var diags hcl.Diagnostics
		select {
		case diags = <-done:
		case <-time.After(20 * time.Second): // a hang detector, not a speed bound
			t.Fatalf("%s: Load did not return", c.path)
		}
		if len(diags) != 1 || diags[0].Summary != c.summary || !strings.Contains(diags[0].Detail, c.want) {
			t.Errorf("%s: %v, want %q saying %q", c.path, diags, c.summary, c.want)
		}
	}
}

// TestLoad_ManyProblemsAreCountedNotAllShown: a generated mistake
// repeated thousands of times gives the first MaxDiagnostics by place
// and one that counts the rest.
func TestLoad_ManyProblemsAreCountedNotAllShown(t *testing.T) {
	base, err := os.ReadFile("../stacks/obcms.hcl")
	if err != nil {
		t.Fatal(err)
	}
	src := string(base) + strings.Repeat("waive \"audit.A005\" {\n  reason = \"r\"\n}\n", 5000)
	_, diags := NewLoader(Options{Environment: "staging", LookupEnv: func(string) (string, bool) { return "", false }}).LoadSource("obcd.hcl", []byte(src))
	if len(diags) != MaxDiagnostics+1 || diags[MaxDiagnostics].Summary != "More problems" {
		t.Fatalf("%d diagnostics, want %d and one that counts the rest", len(diags), MaxDiagnostics+1)
	}
	if got := ErrorCount(diags); got != 4999 {
		t.Errorf("ErrorCount = %d, want 4999 (every waiver after the first)", got)
	}
	for i := 1; i < MaxDiagnostics; i++ {
		if before(diags[i].Subject, diags[i-1].Subject) {
			t.Errorf("diagnostic %d comes before %d in the file", i, i-1)
		}
	}
}
