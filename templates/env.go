package templates

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	stackhcl "github.com/obcd/obcd/hcl"
)

// EnvVar is one variable of the rendered env file.
type EnvVar struct {
	Key   string
	Value string
}

// generatedEnvKeys are the keys EnvVars can generate, whether or not this
// stack needs them: django.settings may not set any of them.
var generatedEnvKeys = []string{
	"ALLOWED_HOSTS", "ALLOWED_ADMIN_IPS", "API_PREFIX", "APP_VERSION", "AUDIT_LOG_RETENTION_DAYS",
	"CACHE_BACKEND", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_TASK_SEND_SENT_EVENT",
	"CELERY_WORKER_SEND_TASK_EVENTS", "CORS_ALLOWED_ORIGINS", "CSP_DEFAULT_SRC", "CSP_SCRIPT_SRC",
	"CSP_STYLE_SRC", "CSRF_COOKIE_SECURE", "CSRF_TRUSTED_ORIGINS", "DATA_UPLOAD_MAX_MEMORY_SIZE",
	"DB_HOST", "DB_NAME", "DB_PORT", "DB_USER", "DEFAULT_FROM_EMAIL", "DISABLE_SERVER_SIDE_CURSORS",
	"DJANGO_DEBUG", "DJANGO_SETTINGS_MODULE", "FILE_UPLOAD_MAX_MEMORY_SIZE", "LOG_LEVEL", "LOG_OUTPUT",
	"LOG_SCRUB_FILTER", "MEDIA_STORAGE", "METRICS_ENABLED", "PORTAL_BASE_URL", "PROMETHEUS_MULTIPROC_DIR",
	"REAL_DATA_MODE", "REDIS_URL", "SECURE_HSTS_PRELOAD", "SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT",
	"SESSION_CACHE_ALIAS", "SESSION_COOKIE_SECURE", "SESSION_ENGINE", "SITE_URL",
}

// Keys the env file must never carry: secrets reach the containers only
// through compose interpolation, added by the compose renderer.
var reservedSecretKeys = []string{"SECRET_KEY", "DB_PASSWORD", "FIELD_ENCRYPTION_KEY", "SENTRY_DSN"}

// renderEnv renders the environment's dotenv file: the Django settings the
// audit found missing, wired to the stack's services. It holds no secrets.
func renderEnv(s *stackhcl.Stack) ([]Artifact, error) {
	vars, err := EnvVars(s)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Rendered by obcd from %s for %s. Do not edit: change the stack file and render again.\n", path.Base(s.File), s.Environment)
	b.WriteString("# Holds no secrets: SECRET_KEY, DB_PASSWORD and the other secrets come from OBCD_SECRET_* through the compose file.\n")
	for _, v := range vars {
		b.WriteString(v.Key + "=" + dotenvQuote(v.Value) + "\n")
	}
	return []Artifact{{Path: EnvFilePath(s.Environment), Mode: ModePublic, Data: []byte(b.String())}}, nil
}

// EnvVars returns the env file's variables sorted by key: the generated
// settings, then django.settings. It cannot see secret values, and it
// refuses a value with a line break and a settings key that collides with
// a generated key or names a secret.
func EnvVars(s *stackhcl.Stack) ([]EnvVar, error) {
	e := &envBuilder{stack: s, attrs: map[string]string{}}
	steps := []func() error{e.app, e.security, e.database, e.cacheAndBroker}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	e.observability()
	if err := e.settings(); err != nil {
		return nil, err
	}
	sort.Slice(e.vars, func(i, j int) bool { return e.vars[i].Key < e.vars[j].Key })
	return e.vars, nil
}

type envBuilder struct {
	stack *stackhcl.Stack
	vars  []EnvVar
	attrs map[string]string // key -> stack attribute it came from
}

// set adds a generated variable; attr names the stack attribute it comes
// from, for errors.
func (e *envBuilder) set(key, value, attr string) {
	e.vars = append(e.vars, EnvVar{Key: key, Value: value})
	e.attrs[key] = attr
}

// setIf adds a variable when its value is not empty.
func (e *envBuilder) setIf(key, value, attr string) {
	if value != "" {
		e.set(key, value, attr)
	}
}

func (e *envBuilder) app() error {
	s, dj := e.stack, &e.stack.Django
	e.setIf("APP_VERSION", s.Version, "stack.version")
	e.setIf("DJANGO_SETTINGS_MODULE", dj.SettingsModule, "django.settings_module")
	e.set("DJANGO_DEBUG", pyBool(dj.Debug), "django.debug")
	hosts, err := allowedHosts(s)
	if err != nil {
		return err
	}
	if len(hosts) > 0 {
		origins := make([]string, 0, len(hosts))
		for _, host := range hosts {
			if strings.HasPrefix(host, ".") { // the domain and every subdomain
				origins = append(origins, "https://"+host[1:], "https://*"+host)
				continue
			}
			origins = append(origins, "https://"+host)
		}
		e.set("ALLOWED_HOSTS", strings.Join(hosts, ","), "django.allowed_hosts")
		e.set("CSRF_TRUSTED_ORIGINS", strings.Join(origins, ","), "django.allowed_hosts")
	}
	cors, err := envList(dj.CORSOrigins, "django.cors_origins")
	if err != nil {
		return err
	}
	e.setIf("CORS_ALLOWED_ORIGINS", cors, "django.cors_origins")
	e.setIf("SITE_URL", dj.SiteURL, "django.site_url")
	e.setIf("PORTAL_BASE_URL", dj.PortalBaseURL, "django.portal_base_url")
	e.setIf("DEFAULT_FROM_EMAIL", dj.DefaultFromEmail, "django.default_from_email")
	e.setIf("API_PREFIX", dj.APIPrefix, "django.api_prefix")
	e.setIf("MEDIA_STORAGE", dj.MediaStorage, "django.media_storage")
	if dj.UploadMaxBytes > 0 {
		size := strconv.FormatInt(dj.UploadMaxBytes, 10)
		e.set("FILE_UPLOAD_MAX_MEMORY_SIZE", size, "django.upload_max_size")
		e.set("DATA_UPLOAD_MAX_MEMORY_SIZE", size, "django.upload_max_size")
	}
	e.set("REAL_DATA_MODE", pyBool(dj.RealDataMode), "django.real_data_mode")
	return nil
}

func (e *envBuilder) security() error {
	sec := &e.stack.Django.Security
	admin, err := adminAllowedIPs(e.stack)
	if err != nil {
		return err
	}
	e.setIf("ALLOWED_ADMIN_IPS", strings.Join(admin, ","), "django.security.admin_allowed_ips")
	e.set("CSP_DEFAULT_SRC", "'self'", "django.security")
	e.setIf("CSP_SCRIPT_SRC", strings.Join(sec.CSPScriptSrc, " "), "django.security.csp_script_src")
	e.setIf("CSP_STYLE_SRC", strings.Join(sec.CSPStyleSrc, " "), "django.security.csp_style_src")
	e.set("SECURE_HSTS_SECONDS", strconv.Itoa(sec.HSTSSeconds), "django.security.hsts_seconds")
	e.set("SECURE_HSTS_PRELOAD", pyBool(sec.HSTSPreload), "django.security.hsts_preload")
	e.set("SECURE_SSL_REDIRECT", "True", "django")
	e.set("SESSION_COOKIE_SECURE", "True", "django")
	e.set("CSRF_COOKIE_SECURE", "True", "django")
	return nil
}

// database points Django at django.database. Through PgBouncer, DB_NAME is
// the database of the postgres service behind it, and transaction or
// statement pooling needs server-side cursors off.
func (e *envBuilder) database() error {
	s, dj := e.stack, &e.stack.Django
	if dj.Database == "" {
		return nil
	}
	svc := s.Service(dj.Database)
	if svc == nil {
		return &InvalidValueError{Attr: "django.database", Value: dj.Database, Reason: "names no service of the stack",
			Subject: rangeOf(dj.Ranges, "database", dj.DeclRange)}
	}
	primary := svc
	if svc.PgBouncer != nil {
		primary = s.Service(svc.PgBouncer.Server)
		if primary == nil || primary.Postgres == nil {
			return &InvalidValueError{Attr: fmt.Sprintf("service %q %q server", svc.Kind, svc.Name), Value: svc.PgBouncer.Server,
				Reason: "names no postgres service", Subject: rangeOf(svc.Ranges, "server", svc.DeclRange)}
		}
		if svc.PgBouncer.PoolMode == "transaction" || svc.PgBouncer.PoolMode == "statement" {
			e.set("DISABLE_SERVER_SIDE_CURSORS", "True", fmt.Sprintf("service %q %q pool_mode", svc.Kind, svc.Name))
		}
	}
	if primary.Postgres == nil {
		return &InvalidValueError{Attr: "django.database", Value: dj.Database, Reason: "is neither a pgbouncer nor a postgres service",
			Subject: rangeOf(dj.Ranges, "database", dj.DeclRange)}
	}
	e.set("DB_HOST", svc.Name, "django.database")
	e.set("DB_PORT", strconv.Itoa(svc.Port), "django.database")
	e.setIf("DB_NAME", primary.Postgres.Database, fmt.Sprintf("service %q %q database", primary.Kind, primary.Name))
	e.setIf("DB_USER", dj.DBUser, "django.db_user")
	return nil
}

// cacheAndBroker puts CACHES and sessions on django.cache (Redis db 1),
// and Celery on django.broker (db 0, results in db 2) with the task events
// celery-exporter needs.
func (e *envBuilder) cacheAndBroker() error {
	dj := &e.stack.Django
	switch dj.SessionEngine {
	case "":
	case "cache", "db", "signed_cookies":
		e.set("SESSION_ENGINE", "django.contrib.sessions.backends."+dj.SessionEngine, "django.session_engine")
	default:
		return &InvalidValueError{Attr: "django.session_engine", Value: dj.SessionEngine, Reason: "is not cache, db or signed_cookies",
			Subject: rangeOf(dj.Ranges, "session_engine", dj.DeclRange)}
	}
	if dj.Cache != "" {
		addr, err := e.redisAddr(dj.Cache, "cache")
		if err != nil {
			return err
		}
		e.set("REDIS_URL", "redis://"+addr+"/1", "django.cache")
		e.set("CACHE_BACKEND", "django_redis.cache.RedisCache", "django.cache")
		if dj.SessionEngine == "cache" {
			e.set("SESSION_CACHE_ALIAS", "default", "django.session_engine")
		}
	}
	if dj.Broker != "" {
		addr, err := e.redisAddr(dj.Broker, "broker")
		if err != nil {
			return err
		}
		e.set("CELERY_BROKER_URL", "redis://"+addr+"/0", "django.broker")
		e.set("CELERY_RESULT_BACKEND", "redis://"+addr+"/2", "django.broker")
		e.set("CELERY_WORKER_SEND_TASK_EVENTS", "True", "django.broker")
		e.set("CELERY_TASK_SEND_SENT_EVENT", "True", "django.broker")
	}
	return nil
}

func (e *envBuilder) redisAddr(name, attr string) (string, error) {
	dj := &e.stack.Django
	svc := e.stack.Service(name)
	if svc == nil || !serviceName.MatchString(name) {
		return "", &InvalidValueError{Attr: "django." + attr, Value: name, Reason: "names no redis service of the stack",
			Subject: rangeOf(dj.Ranges, attr, dj.DeclRange)}
	}
	return svc.Name + ":" + strconv.Itoa(svc.Port), nil
}

// observability sends logs to stdout and sets up django-prometheus; with
// several gunicorn workers it needs a multiprocess directory.
func (e *envBuilder) observability() {
	dj := &e.stack.Django
	e.setIf("LOG_OUTPUT", dj.Logging.Output, "django.logging.output")
	e.setIf("LOG_LEVEL", dj.Logging.Level, "django.logging.level")
	e.setIf("LOG_SCRUB_FILTER", dj.Logging.ScrubFilter, "django.logging.scrub_filter")
	if dj.Logging.AuditRetentionDays > 0 {
		e.set("AUDIT_LOG_RETENTION_DAYS", strconv.Itoa(dj.Logging.AuditRetentionDays), "django.logging.audit_retention_days")
	}
	e.set("METRICS_ENABLED", pyBool(dj.Metrics.Enabled), "django.metrics.enabled")
	if dj.Metrics.Enabled {
		e.set("PROMETHEUS_MULTIPROC_DIR", "/tmp/prometheus-multiproc", "django.metrics.enabled")
	}
}

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// settings adds django.settings, then checks every value for line breaks.
func (e *envBuilder) settings() error {
	dj := &e.stack.Django
	at := rangeOf(dj.Ranges, "settings", dj.DeclRange)
	keys := make([]string, 0, len(dj.Settings))
	for k := range dj.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		attr := fmt.Sprintf("django.settings[%q]", key)
		if reason := settingsKeyProblem(key); reason != "" {
			return &InvalidValueError{Attr: attr, Reason: reason, Subject: at}
		}
		if from := generatedFrom(key, e.attrs); from != "" {
			return &InvalidValueError{Attr: attr, Subject: at,
				Reason: fmt.Sprintf("collides with %s, which obcd generates from %s; set that instead", key, from)}
		}
		e.set(key, dj.Settings[key], attr)
	}
	for _, v := range e.vars {
		if strings.ContainsAny(v.Value, "\n\r\x00") {
			err := &InvalidValueError{Attr: e.attrs[v.Key], Value: v.Value,
				Reason: fmt.Sprintf("the value of %s contains a line break or NUL, which an env file cannot hold", v.Key)}
			if strings.HasPrefix(err.Attr, "django.settings") {
				err.Subject = at
			}
			return err
		}
	}
	return nil
}

// generatedFrom names what a generated key comes from, or "" when key is
// not one EnvVars generates. Keys are matched case-insensitively, since a
// near-duplicate would confuse whoever reads the settings.
func generatedFrom(key string, attrs map[string]string) string {
	for _, k := range generatedEnvKeys {
		if strings.EqualFold(k, key) {
			if from, ok := attrs[k]; ok {
				return from
			}
			return "the stack (not needed in this environment)"
		}
	}
	return ""
}

// settingsKeyProblem says why a django.settings key cannot go into the
// env file, or "".
func settingsKeyProblem(key string) string {
	if !envKey.MatchString(key) {
		return "is not an environment variable name (letters, digits and _, not starting with a digit)"
	}
	upper := strings.ToUpper(key)
	for _, reserved := range reservedSecretKeys {
		if upper == reserved {
			return key + " is a secret: declare a secret block; the compose file passes it from OBCD_SECRET_*"
		}
	}
	for _, word := range []string{"PASSWORD", "SECRET", "TOKEN"} {
		if strings.Contains(upper, word) {
			return key + " looks like a secret, and the env file is public (0644): declare a secret block instead"
		}
	}
	return ""
}

// envList comma-joins list values, refusing items a comma-split would
// break apart.
func envList(items []string, attr string) (string, error) {
	for i, item := range items {
		if item == "" || strings.ContainsAny(item, ", \t") {
			return "", &InvalidValueError{Attr: fmt.Sprintf("%s[%d]", attr, i), Value: item,
				Reason: "must be non-empty without commas or whitespace; it is written as a comma-separated list"}
		}
	}
	return strings.Join(items, ","), nil
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// dotenvBare are the characters a value may hold unquoted: nothing a
// dotenv parser reads as a quote, comment, interpolation or separator.
var dotenvBare = regexp.MustCompile(`^[A-Za-z0-9_./:,@+%=*\[\]-]*$`)

// dotenvQuote writes a value the way compose's dotenv parser reads it
// back unchanged: bare when safe, else in single quotes (literal, no
// interpolation), else in double quotes with \ " and $ escaped. Values
// never contain line breaks; EnvVars refuses them.
func dotenvQuote(value string) string {
	if dotenvBare.MatchString(value) {
		return value
	}
	if !strings.Contains(value, "'") && !strings.HasSuffix(value, `\`) {
		return "'" + value + "'"
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`)
	return `"` + r.Replace(value) + `"`
}
