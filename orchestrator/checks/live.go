package checks

// live.go holds the live rules (validate --deploy, audit --live): the
// ones that need the target. RunLive runs them, each network step under
// its own timeout, and turns every failure to reach something into a
// finding. live_docker.go, live_db.go and live_redis.go reach the Docker
// engine, the database and the cache; the secret and env rules are here.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/templates"
)

// DefaultLiveTimeout bounds each network step of RunLive when
// LiveOptions.Timeout is zero.
const DefaultLiveTimeout = 5 * time.Second

// liveBudgetSteps is how many per-step timeouts the whole run may take:
// the Docker checks are two steps deep (ping, then info and images in
// parallel), the database check two (login, then the migrations query);
// everything else runs in parallel with them.
const liveBudgetSteps = 3

// Django's rules for a production SECRET_KEY (security.W009).
const (
	liveMinSecretKeyLength      = 50
	liveMinSecretKeyUniqueChars = 5
	liveInsecureSecretKeyPrefix = "django-insecure-"
)

// The live rules. Their findings come from RunLive only.
var (
	liveDockerUnreachable = &Rule{
		Code: "deploy.D001", Severity: SeverityError, Priority: PriorityCritical, Category: CategoryDocker, Live: true,
		Title:  "Docker engine unreachable",
		Impact: "Nothing can be deployed: obcd cannot create, start or inspect containers on the target.",
		Fix:    "Start the Docker engine, or correct docker_host in the environment block (unix://, tcp:// with docker_cert_path or DOCKER_TLS_VERIFY/DOCKER_CERT_PATH for TLS, or ssh://user@host with key-based login and docker on the host).",
		Source: "monitoring seed pre-deployment script; audit seed Docker & Deployment",
	}
	liveSecretMissing = &Rule{
		Code: "deploy.D002", Severity: SeverityError, Priority: PriorityCritical, Category: CategorySecurity, Live: true,
		Title:  "A declared secret has no value",
		Impact: "The containers start without the credential or key, so logins, sessions or encrypted fields fail.",
		Fix:    "Run `obcd secrets init ENV` to generate missing values into .obcd/ENV.secrets, or export OBCD_SECRET_<NAME>.",
		Source: "monitoring seed pre-deployment script (environment variables)",
	}
	liveEnvUnsafe = &Rule{
		Code: "deploy.D003", Severity: SeverityError, Priority: PriorityCritical, Category: CategorySecurity, Live: true,
		Title:  "The rendered environment is unsafe: DEBUG on, or SECRET_KEY missing, short or Django's default",
		Impact: "DEBUG leaks settings and tracebacks to anyone; a weak or default SECRET_KEY lets sessions, password-reset tokens and signed data be forged.",
		Fix:    "Set debug = false in the django block, and give django.secret_key a secret of at least 50 random characters that does not start with \"django-insecure-\" (`obcd secrets init ENV` generates one).",
		Source: "monitoring seed pre-deployment script (security: DEBUG must be False, custom SECRET_KEY)",
	}
	liveDatabaseUnreachable = &Rule{
		Code: "deploy.D004", Severity: SeverityError, Priority: PriorityCritical, Category: CategoryDatabase, Live: true,
		Title:  "Database unreachable, login refused, or migration state unreadable",
		Impact: "Django cannot serve requests or run migrations against the database.",
		Fix:    "Make the django.database service reachable at its address, check that django.db_user exists with the password of its secret, and that it can read django_migrations.",
		Source: "monitoring seed pre-deployment script (database connectivity and migration status)",
	}
	liveImageMissing = &Rule{
		Code: "deploy.D005", Severity: SeverityWarning, Priority: PriorityHigh, Category: CategoryDocker, Live: true,
		Title:  "An image is missing on the Docker engine",
		Impact: "The deploy pulls it (or builds it, with a build block) before any change; a pull that fails (the registry unreachable from the engine, no credentials or refused ones, no such tag) stops that deploy, and a pull of large images adds to the deploy's time.",
		Fix:    "Push the image to its registry and `docker login` to it where obcd runs, or pull or build it on the engine before deploying; or correct the service's image.",
		Source: "audit seed Docker & Deployment",
	}
	liveDiskLow = &Rule{
		Code: "deploy.D006", Severity: SeverityWarning, Priority: PriorityHigh, Category: CategoryDocker, Live: true,
		Title:  "Less than 5 GiB free for Docker on the host",
		Impact: "Pulling images, container logs and database growth can fill the disk and stop every service.",
		Fix:    "Free space under Docker's root dir (docker system prune, remove old images and volumes) or grow the disk.",
		Source: "monitoring seed W006 (disk space issues over time)",
	}
	liveNoMigrations = &Rule{
		Code: "deploy.D007", Severity: SeverityInfo, Priority: PriorityLow, Category: CategoryDatabase, Live: true,
		Title:  "No migrations applied yet",
		Impact: "The database has no django_migrations table: it is new, and the first deploy's migrate step creates the schema.",
		Fix:    "Nothing to do for a first deploy. If this database should hold data, check that django.database and the postgres database name point at it.",
		Source: "monitoring seed pre-deployment script (migration status)",
	}
	liveDiskUnmeasured = &Rule{
		Code: "deploy.D008", Severity: SeverityInfo, Priority: PriorityLow, Category: CategoryDocker, Live: true,
		Title:  "Free disk on the Docker host not measurable",
		Impact: "obcd measures free disk only for a local engine; a remote engine's disk can fill unnoticed.",
		Fix:    "Check free space under Docker's root dir on the host yourself (df -h /var/lib/docker), or monitor it with node-exporter.",
		Source: "monitoring seed W006 (disk space issues over time)",
	}
	liveNoAddress = &Rule{
		Code: "deploy.D009", Severity: SeverityInfo, Priority: PriorityLow, Category: CategoryPreDeploy, Live: true,
		Title:  "No address declared for a service a live check needs",
		Impact: "The live check of that service was skipped: obcd does not guess where to reach it.",
		Fix:    "Set address = \"host:port\" on the service (in the environment block if it differs per environment): where obcd itself reaches it.",
		Source: "obcd",
	}
	liveRedisUnreachable = &Rule{
		Code: "monitoring.E010", Severity: SeverityError, Priority: PriorityHigh, Category: CategoryRedis, Live: true,
		Title:  "Cannot connect to the Redis cache",
		Impact: "The application may be degraded: cache and sessions are broken.",
		Fix:    "Check that the django.cache Redis service is running and reachable at its address.",
		Source: "monitoring seed E010",
	}
)

// liveRules are the rules only the target can answer, registered by the
// catalog.
var liveRules = []*Rule{liveDockerUnreachable, liveSecretMissing, liveEnvUnsafe, liveDatabaseUnreachable,
	liveImageMissing, liveDiskLow, liveNoMigrations, liveDiskUnmeasured, liveNoAddress, liveRedisUnreachable}

// LiveOptions says what RunLive checks and how.
type LiveOptions struct {
	Stack   *stackhcl.Stack
	Secrets templates.SecretSource
	Docker  DockerAPI     // nil: dial Stack.DockerHost
	Timeout time.Duration // per network step; 0 = DefaultLiveTimeout
}

// LiveReport is what RunLive found.
type LiveReport struct {
	Findings         []Finding
	DockerAPIVersion string // the engine's API version; "" when unreachable
	Migrations       int    // applied migrations; -1 when unknown
}

// RunLive runs the live rules against the stack's target. The Docker,
// database and Redis checks run in parallel; each network step has its own
// timeout, and the whole run ends within liveBudgetSteps timeouts (or
// ctx's deadline, when earlier). Unreachable targets are findings, never
// errors, and no finding carries a secret's value. The stack's waivers are
// attached to the findings they accept, as Run does.
func RunLive(ctx context.Context, opts LiveOptions) LiveReport {
	report := LiveReport{Migrations: -1}
	if opts.Stack == nil {
		return report
	}
	run := newLiveRun(opts)
	ctx, cancel := context.WithTimeout(ctx, liveBudgetSteps*run.timeout)
	defer cancel()

	var mu sync.Mutex
	add := func(findings []Finding) {
		mu.Lock()
		defer mu.Unlock()
		report.Findings = append(report.Findings, findings...)
	}
	add(run.secretFindings())
	add(run.envFindings())

	var wg sync.WaitGroup
	wg.Go(func() {
		findings, version := run.docker(ctx, opts.Docker)
		add(findings)
		mu.Lock()
		report.DockerAPIVersion = version
		mu.Unlock()
	})
	wg.Go(func() {
		findings, migrations := run.database(ctx)
		add(findings)
		mu.Lock()
		report.Migrations = migrations
		mu.Unlock()
	})
	wg.Go(func() { add(run.redis(ctx)) })
	wg.Wait()

	run.redact(report.Findings)
	waive(opts.Stack, report.Findings)
	Sort(report.Findings)
	return report
}

// liveRun is one RunLive: the stack, the secrets, the step timeout.
type liveRun struct {
	stack   *stackhcl.Stack
	secrets templates.SecretSource
	timeout time.Duration
}

func newLiveRun(opts LiveOptions) *liveRun {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultLiveTimeout
	}
	return &liveRun{stack: opts.Stack, secrets: opts.Secrets, timeout: timeout}
}

// secret returns a secret's value and the reason it has none.
func (run *liveRun) secret(name string) (string, error) {
	if run.secrets == nil {
		return "", fmt.Errorf("secret %q has no value: no secret source was given", name)
	}
	value, err := run.secrets.Value(name)
	if err == nil && value == "" {
		err = fmt.Errorf("secret %q has no value", name)
	}
	return value, err
}

// secretFindings is deploy.D002: one finding per declared secret without a
// value, naming the secret and where to set it.
func (run *liveRun) secretFindings() []Finding {
	var findings []Finding
	for _, sec := range run.stack.Secrets {
		if _, err := run.secret(sec.Name); err != nil {
			findings = append(findings, Finding{Rule: liveSecretMissing, Message: err.Error(), Range: sec.DeclRange})
		}
	}
	return findings
}

// envFindings is deploy.D003: DEBUG on in the rendered env, or a
// SECRET_KEY Django's deploy check would reject. It never shows the key.
func (run *liveRun) envFindings() []Finding {
	var findings []Finding
	unsafe := func(at hcl.Range, format string, args ...any) {
		findings = append(findings, Finding{Rule: liveEnvUnsafe, Message: fmt.Sprintf(format, args...), Range: at})
	}
	vars, err := templates.EnvVars(run.stack)
	if err != nil {
		unsafe(run.djangoRange(), "the env file cannot be rendered, so DEBUG cannot be judged: %v", err)
	}
	for _, v := range vars {
		if (v.Key == "DJANGO_DEBUG" || v.Key == "DEBUG") && liveTruthy(v.Value) {
			unsafe(run.djangoRange("debug", "settings"), "the rendered env sets %s=%s: Django would show settings and tracebacks to anyone", v.Key, v.Value)
		}
	}
	if problem := run.secretKeyProblem(); problem != "" {
		unsafe(run.djangoRange("secret_key"), "%s", problem)
	}
	return findings
}

// secretKeyProblem says what is wrong with the SECRET_KEY, without its value.
func (run *liveRun) secretKeyProblem() string {
	name := run.stack.Django.SecretKey
	if name == "" {
		return "SECRET_KEY is missing: django.secret_key names no secret"
	}
	key, err := run.secret(name)
	switch {
	case err != nil:
		return fmt.Sprintf("SECRET_KEY is missing: secret %q has no value", name)
	case strings.HasPrefix(key, liveInsecureSecretKeyPrefix):
		return fmt.Sprintf("SECRET_KEY (secret %q) is a key Django generated for development (it starts with %q); generate a new one", name, liveInsecureSecretKeyPrefix)
	case utf8.RuneCountInString(key) < liveMinSecretKeyLength:
		return fmt.Sprintf("SECRET_KEY (secret %q) has %d characters; Django's deploy check wants at least %d", name, utf8.RuneCountInString(key), liveMinSecretKeyLength)
	case liveUniqueRunes(key) < liveMinSecretKeyUniqueChars:
		return fmt.Sprintf("SECRET_KEY (secret %q) has fewer than %d distinct characters", name, liveMinSecretKeyUniqueChars)
	}
	return ""
}

// djangoRange is the range of the first attribute of the django block
// that is set, else the block, else the stack block.
func (run *liveRun) djangoRange(attrs ...string) hcl.Range {
	dj := &run.stack.Django
	for _, attr := range attrs {
		if r, ok := dj.Ranges[attr]; ok && r.Filename != "" {
			return r
		}
	}
	if dj.DeclRange.Filename != "" {
		return dj.DeclRange
	}
	return run.stack.DeclRange
}

// noAddress is deploy.D009 for a service a check needs but cannot reach.
func (run *liveRun) noAddress(svc *stackhcl.Service, check *Rule) Finding {
	return Finding{Rule: liveNoAddress, Range: svc.DeclRange, Message: fmt.Sprintf(
		"no address declared for service %q: the %s check was skipped; set address = \"host:port\" where obcd can reach it",
		svc.Name, check.Code)}
}

// redact replaces every known secret value in the findings' messages, in
// case an error from a driver or the engine echoed one.
func (run *liveRun) redact(findings []Finding) {
	for _, sec := range run.stack.Secrets {
		value, err := run.secret(sec.Name)
		if err != nil || value == "" {
			continue
		}
		for i := range findings {
			findings[i].Message = strings.ReplaceAll(findings[i].Message, value, "<secret "+sec.Name+">")
		}
	}
}

// liveStepError describes a failed network step: "no answer within 5s" for
// a timeout, the error otherwise.
func liveStepError(err error, timeout time.Duration) string {
	text := liveOneLine(err.Error())
	if errors.Is(err, context.DeadlineExceeded) || liveIsTimeout(err) {
		return fmt.Sprintf("no answer within %s (%s)", timeout, text)
	}
	return text
}

// liveOneLine joins a multi-line error (pgx lists one line per connection
// attempt) into one line, dropping repeated lines.
func liveOneLine(text string) string {
	var out strings.Builder
	seen := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || seen[line] {
			continue
		}
		seen[line] = true
		switch {
		case out.Len() == 0:
		case strings.HasSuffix(out.String(), ":"):
			out.WriteString(" ")
		default:
			out.WriteString("; ")
		}
		out.WriteString(line)
	}
	return out.String()
}

// liveIsTimeout reports a network timeout anywhere in err's chain.
func liveIsTimeout(err error) bool {
	var timeout interface{ Timeout() bool }
	return errors.As(err, &timeout) && timeout.Timeout()
}

func liveTruthy(value string) bool {
	switch strings.ToLower(strings.TrimSpace(value)) {
	case "true", "1", "yes", "on":
		return true
	}
	return false
}

func liveUniqueRunes(s string) int {
	seen := map[rune]bool{}
	for _, r := range s {
		seen[r] = true
	}
	return len(seen)
}
