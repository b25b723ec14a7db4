package templates

import (
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"

	stackhcl "github.com/obcd/obcd/hcl"
)

func envVarsMap(t *testing.T, stack *stackhcl.Stack) map[string]string {
	t.Helper()
	vars, err := EnvVars(stack)
	if err != nil {
		t.Fatalf("EnvVars: %v", err)
	}
	out := map[string]string{}
	for _, v := range vars {
		if _, dup := out[v.Key]; dup {
			t.Errorf("key %s appears twice", v.Key)
		}
		out[v.Key] = v.Value
	}
	return out
}

func renderEnvFile(t *testing.T, stack *stackhcl.Stack) string {
	t.Helper()
	artifacts, err := renderEnv(stack)
	if err != nil {
		t.Fatalf("renderEnv: %v", err)
	}
	if len(artifacts) != 1 || artifacts[0].Path != EnvFilePath(stack.Environment) || artifacts[0].Mode != ModePublic {
		t.Fatalf("renderEnv gave %+v, want one %s (0644)", artifacts, EnvFilePath(stack.Environment))
	}
	return string(artifacts[0].Data)
}

func TestEnv_StagingHasTheAuditSettings(t *testing.T) {
	stack := loadOBCMS(t, "staging")
	got := envVarsMap(t, stack)
	want := map[string]string{
		"APP_VERSION":                    "1.0.0",
		"DJANGO_SETTINGS_MODULE":         "obc_management.settings.production",
		"DJANGO_DEBUG":                   "False",
		"ALLOWED_HOSTS":                  "staging.obcms.example.org",
		"CSRF_TRUSTED_ORIGINS":           "https://staging.obcms.example.org",
		"CORS_ALLOWED_ORIGINS":           "https://staging.obcms.example.org",
		"SITE_URL":                       "https://staging.obcms.example.org",
		"PORTAL_BASE_URL":                "https://staging.obcms.example.org",
		"DEFAULT_FROM_EMAIL":             "noreply@staging.obcms.example.org",
		"API_PREFIX":                     "/api/v1/",
		"ALLOWED_ADMIN_IPS":              "10.0.0.0/8,192.168.0.0/16",
		"MEDIA_STORAGE":                  "s3",
		"FILE_UPLOAD_MAX_MEMORY_SIZE":    "104857600",
		"DATA_UPLOAD_MAX_MEMORY_SIZE":    "104857600",
		"CSP_DEFAULT_SRC":                "'self'",
		"CSP_SCRIPT_SRC":                 "'self'",
		"CSP_STYLE_SRC":                  "'self'",
		"SECURE_HSTS_SECONDS":            "31536000",
		"SECURE_HSTS_PRELOAD":            "False",
		"SECURE_SSL_REDIRECT":            "True",
		"SESSION_COOKIE_SECURE":          "True",
		"CSRF_COOKIE_SECURE":             "True",
		"LOG_OUTPUT":                     "stdout",
		"LOG_LEVEL":                      "INFO",
		"LOG_SCRUB_FILTER":               "phi_scrubber",
		"AUDIT_LOG_RETENTION_DAYS":       "2555",
		"METRICS_ENABLED":                "True",
		"PROMETHEUS_MULTIPROC_DIR":       "/tmp/prometheus-multiproc",
		"REAL_DATA_MODE":                 "True",
		"DB_HOST":                        "pgbouncer",
		"DB_PORT":                        "6432",
		"DB_NAME":                        "obcms",
		"DB_USER":                        "obcms_user",
		"DISABLE_SERVER_SIDE_CURSORS":    "True",
		"REDIS_URL":                      "redis://redis:6379/1",
		"CACHE_BACKEND":                  "django_redis.cache.RedisCache",
		"SESSION_ENGINE":                 "django.contrib.sessions.backends.cache",
		"SESSION_CACHE_ALIAS":            "default",
		"CELERY_BROKER_URL":              "redis://redis:6379/0",
		"CELERY_RESULT_BACKEND":          "redis://redis:6379/2",
		"CELERY_WORKER_SEND_TASK_EVENTS": "True",
		"CELERY_TASK_SEND_SENT_EVENT":    "True",
	}
	for key, value := range want {
		if got[key] != value {
			t.Errorf("%s = %q, want %q", key, got[key], value)
		}
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("unexpected key %s = %q", key, got[key])
		}
	}
	for _, key := range []string{"CSP_DEFAULT_SRC", "CSP_SCRIPT_SRC", "CSP_STYLE_SRC"} {
		if strings.Contains(got[key], "unsafe-inline") {
			t.Errorf("%s allows 'unsafe-inline': %q", key, got[key])
		}
	}
}

// TestEnv_FileReadsBackThroughComposeDotenv parses the rendered file with
// compose's own dotenv parser: every value must come back unchanged.
func TestEnv_FileReadsBackThroughComposeDotenv(t *testing.T) {
	stack := loadOBCMS(t, "production")
	stack.Django.Settings = map[string]string{
		"CSP_IMG_SRC":    "'self' data: https://cdn.example.org",
		"GREETING":       `it's "quoted" and costs $5 \ # not a comment`,
		"PLAIN":          "plain-value_1.2/3",
		"TRAILING_SLASH": `C:\dir\`,
		"EMPTY":          "",
	}
	vars, err := EnvVars(stack)
	if err != nil {
		t.Fatal(err)
	}
	data := renderEnvFile(t, stack)
	header := "# Rendered by obcd from obcms.hcl for production. Do not edit"
	if !strings.HasPrefix(data, header) || !strings.Contains(data, "Holds no secrets") {
		t.Errorf("header: want it to start %q and say it holds no secrets:\n%s", header, data)
	}
	parsed, err := dotenv.UnmarshalWithLookup(data, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("compose dotenv cannot read the env file: %v\n%s", err, data)
	}
	if len(parsed) != len(vars) {
		t.Errorf("dotenv read %d variables, want %d", len(parsed), len(vars))
	}
	var keys []string
	for _, v := range vars {
		keys = append(keys, v.Key)
		if parsed[v.Key] != v.Value {
			t.Errorf("%s reads back as %q, want %q", v.Key, parsed[v.Key], v.Value)
		}
	}
	if !sort.StringsAreSorted(keys) {
		t.Errorf("variables are not sorted by key: %v", keys)
	}
	if !strings.Contains(data, "\nPLAIN=plain-value_1.2/3\n") || !strings.Contains(data, "\nCSP_DEFAULT_SRC=\"'self'\"\n") {
		t.Errorf("values should be quoted only when needed:\n%s", data)
	}
}

func TestEnv_NoSecretsReachTheEnvFile(t *testing.T) {
	// By API shape: the env renderer gets the stack and nothing that can
	// produce a secret value.
	stackType := reflect.TypeOf(&stackhcl.Stack{})
	for name, fn := range map[string]any{"EnvVars": EnvVars, "renderEnv": renderEnv} {
		ft := reflect.TypeOf(fn)
		if ft.NumIn() != 1 || ft.In(0) != stackType {
			t.Errorf("%s takes %v; it must take only *hcl.Stack, never a SecretSource", name, ft)
		}
	}

	// Even with every secret set in the environment obcd reads, none of
	// them shows up.
	secretValues := map[string]string{}
	lookup := func(name string) (string, bool) {
		if strings.HasPrefix(name, "OBCD_SECRET_") {
			value := "known-secret-" + strings.ToLower(strings.TrimPrefix(name, "OBCD_SECRET_")) + "-9f8e7d"
			secretValues[name] = value
			return value, true
		}
		return "", false
	}
	stack := loadOBCMSWithEnv(t, "staging", lookup)
	for _, sec := range stack.Secrets {
		value, _ := lookup(sec.EnvVar())
		secretValues[sec.EnvVar()] = value
	}
	if len(secretValues) < 8 {
		t.Fatalf("expected the example stack's 8 secrets, got %d", len(secretValues))
	}
	data := renderEnvFile(t, stack)
	for name, value := range secretValues {
		if strings.Contains(data, value) || strings.Contains(data, "known-secret-") {
			t.Errorf("the env file holds the value of %s", name)
		}
	}
	for key := range envVarsMap(t, stack) {
		upper := strings.ToUpper(key)
		if strings.Contains(upper, "PASSWORD") || strings.Contains(upper, "SECRET") {
			t.Errorf("the env file has a secret-like key %s", key)
		}
		for _, reserved := range reservedSecretKeys {
			if upper == reserved {
				t.Errorf("the env file has the secret key %s, even if empty", key)
			}
		}
	}
}

func TestEnv_SettingsThatLookLikeSecretsAreRefused(t *testing.T) {
	for _, key := range []string{"SECRET_KEY", "DB_PASSWORD", "SENTRY_DSN", "EMAIL_HOST_PASSWORD", "GITHUB_TOKEN"} {
		stack := loadOBCMS(t, "staging")
		stack.Django.Settings = map[string]string{key: "x"}
		if _, err := EnvVars(stack); err == nil {
			t.Errorf("settings key %s was accepted into the public env file", key)
		}
	}
}

func TestEnv_LineBreakInValueIsRefused(t *testing.T) {
	cases := map[string]func(*stackhcl.Stack){
		"setting":  func(s *stackhcl.Stack) { s.Django.Settings = map[string]string{"BANNER": "line one\nLEAKED=1"} },
		"cr":       func(s *stackhcl.Stack) { s.Django.Settings = map[string]string{"BANNER": "a\rb"} },
		"site_url": func(s *stackhcl.Stack) { s.Django.SiteURL = "https://x.example.org\nDJANGO_DEBUG=True" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			stack := loadOBCMS(t, "staging")
			mutate(stack)
			artifacts, err := renderEnv(stack)
			if err == nil {
				t.Fatalf("want an error, got:\n%s", artifacts[0].Data)
			}
			var invalid *InvalidValueError
			if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "line break") {
				t.Errorf("want an *InvalidValueError about a line break, got %T: %v", err, err)
			}
		})
	}
}

func TestEnv_SettingCollidingWithGeneratedKeyIsRefused(t *testing.T) {
	cases := []struct{ key, wantFrom string }{
		{"REDIS_URL", "django.cache"},
		{"APP_VERSION", "stack.version"},
		{"session_engine", "django.session_engine"},
		// Not generated for this stack, but obcd owns the key.
		{"LOG_SCRUB_FILTER", "django.logging.scrub_filter"},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			stack := loadOBCMS(t, "staging")
			stack.Django.Settings = map[string]string{"EXTRA_OK": "1", tc.key: "redis://elsewhere:6379/1"}
			_, err := EnvVars(stack)
			var invalid *InvalidValueError
			if !errors.As(err, &invalid) {
				t.Fatalf("want *InvalidValueError, got %T: %v", err, err)
			}
			if !strings.Contains(invalid.Attr, tc.key) || !strings.Contains(err.Error(), tc.wantFrom) {
				t.Errorf("error should name settings key %s and its source %s: %v", tc.key, tc.wantFrom, err)
			}
		})
	}

	stack := loadOBCMS(t, "staging")
	stack.Django.Logging.ScrubFilter = ""
	stack.Django.Settings = map[string]string{"LOG_SCRUB_FILTER": "x"}
	if _, err := EnvVars(stack); err == nil || !strings.Contains(err.Error(), "LOG_SCRUB_FILTER") {
		t.Errorf("a generated key must be refused in settings even when not generated here; got %v", err)
	}

	stack = loadOBCMS(t, "staging")
	stack.Django.Settings = map[string]string{"EXTRA_OK": "1"}
	if got := envVarsMap(t, stack); got["EXTRA_OK"] != "1" {
		t.Errorf("a non-colliding setting should be exported, got %q", got["EXTRA_OK"])
	}
}

// TestEnv_GeneratedKeysAreAllReserved keeps generatedEnvKeys in step with
// what EnvVars emits.
func TestEnv_GeneratedKeysAreAllReserved(t *testing.T) {
	reserved := map[string]bool{}
	for _, k := range generatedEnvKeys {
		reserved[k] = true
	}
	for _, env := range []string{"staging", "production"} {
		for key := range envVarsMap(t, loadOBCMS(t, env)) {
			if !reserved[key] {
				t.Errorf("%s is generated but missing from generatedEnvKeys", key)
			}
		}
	}
}

func TestEnv_DatabaseDirectlyOnPostgres(t *testing.T) {
	stack := loadOBCMS(t, "staging")
	stack.Django.Database = "db"
	got := envVarsMap(t, stack)
	if got["DB_HOST"] != "db" || got["DB_PORT"] != "5432" || got["DB_NAME"] != "obcms" {
		t.Errorf("DB_* = %s:%s/%s, want db:5432/obcms", got["DB_HOST"], got["DB_PORT"], got["DB_NAME"])
	}
	if _, ok := got["DISABLE_SERVER_SIDE_CURSORS"]; ok {
		t.Errorf("server-side cursors only need disabling behind transaction pooling")
	}
}

func TestEnv_LeadingDotHostTrustsSubdomains(t *testing.T) {
	stack := loadOBCMS(t, "staging")
	stack.Django.AllowedHosts = []string{".obcms.example.org", "localhost"}
	got := envVarsMap(t, stack)
	if want := "https://obcms.example.org,https://*.obcms.example.org,https://localhost"; got["CSRF_TRUSTED_ORIGINS"] != want {
		t.Errorf("CSRF_TRUSTED_ORIGINS = %q, want %q", got["CSRF_TRUSTED_ORIGINS"], want)
	}
}

func TestEnv_DotenvQuoteRoundTrips(t *testing.T) {
	for _, value := range []string{
		"", "plain", "a b", "'self'", "'self' 'nonce-x'", "$HOME", "${X}", `back\slash`, `trail\`,
		`"dq"`, "a#b", "a #b", "it's $5", `mix ' " $ \`, "\ttab", "=", "x=y",
	} {
		line := "K=" + dotenvQuote(value) + "\n"
		parsed, err := dotenv.UnmarshalWithLookup(line, func(string) (string, bool) { return "SHOULD-NOT-EXPAND", true })
		if err != nil {
			t.Errorf("%q: dotenv cannot parse %q: %v", value, line, err)
			continue
		}
		if parsed["K"] != value {
			t.Errorf("%q written as %q reads back as %q", value, line, parsed["K"])
		}
	}
}
