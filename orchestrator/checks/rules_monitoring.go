package checks

// rules_monitoring.go holds the monitoring seed's checks (monitoring.E001
// to E013, W001 to W008), read from the stack file instead of from a
// running Django. E010 (Redis unreachable) needs the target and is a live
// rule, registered with the others that reach it.

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"

	stackhcl "github.com/obcd/obcd/hcl"
)

// monitoringRules are the monitoring seed's checks that the stack file
// can answer, registered by the catalog.
var monitoringRules = []*Rule{
	{
		Code: "monitoring.E001", Severity: SeverityError, Priority: PriorityCritical, Category: CategoryMonitoring,
		Title:  "Django metrics are disabled",
		Impact: "django-prometheus is not installed and /metrics is not exposed, so Prometheus collects no Django metrics.",
		Fix:    "Set enabled = true in the django.metrics block (add metrics { enabled = true, middleware = true } to the django block if it has none).",
		Source: "monitoring seed E001 (audit seed #3)",
		Check:  checkMetricsEnabled,
	},
	{
		Code: "monitoring.E002", Severity: SeverityError, Priority: PriorityMedium, Category: CategoryMonitoring,
		Title:  "Metrics enabled but no custom metrics module",
		Impact: "Only framework metrics are collected; business metrics are unavailable.",
		Fix:    "Set custom_module in the django.metrics block to the module that registers the app's metrics, e.g. \"myapp.metrics\".",
		Source: "monitoring seed E002",
		Check:  checkMetricsCustomModule,
	},
	{
		Code: "monitoring.E003", Severity: SeverityError, Priority: PriorityHigh, Category: CategoryMonitoring,
		Title:  "Custom metrics module is not an importable Python module path",
		Impact: "Django cannot import the custom metrics module, so metrics tracking is broken.",
		Fix:    "Set django.metrics.custom_module to a dotted Python module path such as \"myapp.metrics\".",
		Source: "monitoring seed E003",
		Check:  checkMetricsModulePath,
	},
	{
		Code: "monitoring.E004", Severity: SeverityError, Priority: PriorityHigh, Category: CategoryThirdParty,
		Title:  "Sentry is configured but sentry-sdk is not installed",
		Impact: "Errors are never reported to Sentry although the stack expects error tracking.",
		Fix:    "Install sentry-sdk in the app image and remove sdk = false from the django.sentry block.",
		Source: "monitoring seed E004",
		Check:  checkSentrySDK,
	},
	{
		Code: "monitoring.E005", Severity: SeverityError, Priority: PriorityHigh, Category: CategoryMonitoring,
		Title:  "No LOGGING configuration",
		Impact: "The application logs nothing useful, and nothing scrubs PHI from what it does log.",
		Fix:    "Add a logging block to the django block with output, level, scrub_filter and audit_retention_days.",
		Source: "monitoring seed E005",
		Check:  checkLoggingConfigured,
	},
	{
		Code: "monitoring.E006", Severity: SeverityError, Priority: PriorityHigh, Category: CategoryMonitoring,
		Title:  "No PHI scrubbing filter in LOGGING",
		Impact: "PHI can reach the logs: a HIPAA violation risk.",
		Fix:    "Set scrub_filter in the django.logging block to the name of the PHI scrubbing filter, e.g. \"phi_scrubber\".",
		Source: "monitoring seed E006",
		Check:  checkLoggingScrubFilter,
	},
	{
		Code: "monitoring.E007", Severity: SeverityError, Priority: PriorityHigh, Category: CategoryCelery,
		Title:  "Celery services without a broker",
		Impact: "Celery workers and beat cannot connect to a broker, so background tasks never run.",
		Fix:    "Set broker = service.<redis> in the django block.",
		Source: "monitoring seed E007",
		Check:  checkCeleryBroker,
	},
	{
		Code: "monitoring.E008", Severity: SeverityError, Priority: PriorityHigh, Category: CategoryCelery,
		Title:  "Celery runs without a celery exporter",
		Impact: "Task execution is not tracked: no queue length, failure or latency metrics.",
		Fix:    "Declare service \"exporter\" \"celery-exporter\" { type = \"celery\", target = service.<redis> }.",
		Source: "monitoring seed E008 (audit seed #13)",
		Check:  checkCeleryExporter,
	},
	{
		Code: "monitoring.E009", Severity: SeverityError, Priority: PriorityCritical, Category: CategoryRedis,
		Title:  "No cache configured (CACHES)",
		Impact: "Cache operations fail and sessions are not cached.",
		Fix:    "Set cache = service.<redis> in the django block (cache_backend then defaults to \"redis\").",
		Source: "monitoring seed E009 (audit seed #2)",
		Check:  checkCacheConfigured,
	},
	{
		Code: "monitoring.E011", Severity: SeverityError, Priority: PriorityHigh, Category: CategoryEnvironment,
		Title:  "PORTAL_BASE_URL is not set for production",
		Impact: "Links in alert emails are broken.",
		Fix:    "Set portal_base_url in the django block, e.g. \"https://${environment.domain}\".",
		Source: "monitoring seed E011",
		Check:  checkPortalBaseURL,
	},
	{
		Code: "monitoring.E012", Severity: SeverityError, Priority: PriorityHigh, Category: CategorySecurity,
		Title:  "ALLOWED_HOSTS is empty or a wildcard",
		Impact: "Host header attacks are possible, or every request is rejected with 400.",
		Fix:    "Set allowed_hosts in the django block to the environment's domains, e.g. [environment.domain], never \"*\".",
		Source: "monitoring seed E012",
		Check:  checkAllowedHosts,
	},
	{
		Code: "monitoring.E013", Severity: SeverityError, Priority: PriorityHigh, Category: CategorySecurity,
		Title:  "Real data mode without field encryption",
		Impact: "PHI is stored unencrypted at rest: a HIPAA violation.",
		Fix:    "Declare secret \"field_encryption_key\" { format = \"fernet\" } and set field_encryption_key = secret.field_encryption_key in the django block.",
		Source: "monitoring seed E013",
		Check:  checkFieldEncryption,
	},
	{
		Code: "monitoring.W001", Severity: SeverityWarning, Priority: PriorityMedium, Category: CategoryMonitoring,
		Title:  "PrometheusBeforeMiddleware is not configured",
		Impact: "Request metrics are incomplete.",
		Fix:    "Set middleware = true (or before_middleware = true) in the django.metrics block.",
		Source: "monitoring seed W001",
		Check:  checkBeforeMiddleware,
	},
	{
		Code: "monitoring.W002", Severity: SeverityWarning, Priority: PriorityMedium, Category: CategoryMonitoring,
		Title:  "PrometheusAfterMiddleware is not configured",
		Impact: "Response metrics are incomplete.",
		Fix:    "Set middleware = true (or after_middleware = true) in the django.metrics block.",
		Source: "monitoring seed W002",
		Check:  checkAfterMiddleware,
	},
	{
		Code: "monitoring.W003", Severity: SeverityWarning, Priority: PriorityMedium, Category: CategoryThirdParty,
		Title:  "Sentry is not configured in production",
		Impact: "Production errors are not tracked.",
		Fix:    "Add sentry { dsn = secret.sentry_dsn } to the django block and declare secret \"sentry_dsn\".",
		Source: "monitoring seed W003",
		Check:  checkSentryInProduction,
	},
	{
		Code: "monitoring.W004", Severity: SeverityWarning, Priority: PriorityMedium, Category: CategoryThirdParty,
		Title:  "Sentry SDK is installed but has no DSN",
		Impact: "The Sentry client is never configured, so error tracking does not work.",
		Fix:    "Set dsn = secret.<name> in the django.sentry block.",
		Source: "monitoring seed W004",
		Check:  checkSentryDSN,
	},
	{
		Code: "monitoring.W005", Severity: SeverityWarning, Priority: PriorityMedium, Category: CategoryMonitoring,
		Title:  "Audit log retention is shorter than 7 years",
		Impact: "The audit trail does not meet HIPAA's retention: a compliance risk.",
		Fix:    "Set audit_retention_days = 2555 (7 years) or more in the django.logging block.",
		Source: "monitoring seed W005",
		Check:  checkAuditRetention,
	},
	{
		Code: "monitoring.W006", Severity: SeverityWarning, Priority: PriorityMedium, Category: CategoryMonitoring,
		Title:  "File logging without rotation",
		Impact: "Log files grow until the disk is full.",
		Fix:    "Set output = \"stdout\" in the django.logging block, or keep output = \"file\" and set rotation = \"time\" or \"size\".",
		Source: "monitoring seed W006",
		Check:  checkLogRotation,
	},
	{
		Code: "monitoring.W007", Severity: SeverityWarning, Priority: PriorityMedium, Category: CategoryRedis,
		Title:  "Production cache is not Redis",
		Impact: "Performance degrades, and a per-process cache is not shared between web replicas.",
		Fix:    "Set cache = service.<redis> and remove cache_backend (or set cache_backend = \"redis\") in the django block.",
		Source: "monitoring seed W007",
		Check:  checkProductionCacheRedis,
	},
	{
		Code: "monitoring.W008", Severity: SeverityWarning, Priority: PriorityMedium, Category: CategoryEmail,
		Title:  "DEFAULT_FROM_EMAIL is not a real address",
		Impact: "Alert and notification emails may be rejected or never delivered.",
		Fix:    "Set default_from_email in the django block to a real address, e.g. \"noreply@${environment.domain}\".",
		Source: "monitoring seed W008",
		Check:  checkDefaultFromEmail,
	},
}

// Where findings point. A static rule always points into the file: at the
// attribute it is about when the file sets it, else at the enclosing
// block, else at the stack block.

// djangoAttrRange returns the range of the first of keys the django block
// (or the environment's django override) sets, else the django block,
// else the stack block.
func djangoAttrRange(stack *stackhcl.Stack, keys ...string) hcl.Range {
	for _, key := range keys {
		if r, ok := stack.Django.Ranges[key]; ok && r.Filename != "" {
			return r
		}
	}
	if stack.Django.DeclRange.Filename != "" {
		return stack.Django.DeclRange
	}
	return stack.DeclRange
}

// serviceAttrRange returns the range of the first of keys the service
// sets, else the service block.
func serviceAttrRange(svc *stackhcl.Service, keys ...string) hcl.Range {
	for _, key := range keys {
		if r, ok := svc.Ranges[key]; ok && r.Filename != "" {
			return r
		}
	}
	return svc.DeclRange
}

// isProduction says whether the production-only rules apply: the
// environment's tier, declared or by its name.
func isProduction(s *stackhcl.Stack) bool {
	return s.Tier == stackhcl.TierProduction
}

// environmentOf names the environment and its tier, for a finding that
// applies because of the tier: environment "live" (tier production).
func environmentOf(s *stackhcl.Stack) string {
	return fmt.Sprintf("environment %q (tier %s)", s.Environment, s.Tier)
}

func celeryServices(stack *stackhcl.Stack) []*stackhcl.Service {
	return append(stack.ServicesOf(stackhcl.KindCeleryWorker), stack.ServicesOf(stackhcl.KindCeleryBeat)...)
}

func hasExporter(stack *stackhcl.Stack, exporterType string) bool {
	for _, svc := range stack.ServicesOf(stackhcl.KindExporter) {
		if svc.Exporter != nil && svc.Exporter.Type == exporterType {
			return true
		}
	}
	return false
}

func checkMetricsEnabled(in *Input) []Finding {
	s := in.Stack
	if s.Django.Metrics.Enabled {
		return nil
	}
	msg := "django.metrics.enabled is false: django-prometheus is off and /metrics is not exposed"
	if _, ok := s.Django.Ranges["metrics"]; !ok {
		msg = "the django block has no metrics block: django-prometheus is off and /metrics is not exposed"
	}
	return []Finding{{Message: msg, Range: djangoAttrRange(s, "metrics.enabled", "metrics")}}
}

func checkMetricsCustomModule(in *Input) []Finding {
	m := in.Stack.Django.Metrics
	if !m.Enabled || m.CustomModule != "" {
		return nil
	}
	return []Finding{{
		Message: "django.metrics sets no custom_module, so no business metrics are registered",
		Range:   djangoAttrRange(in.Stack, "metrics"),
	}}
}

var pythonModulePath = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

func checkMetricsModulePath(in *Input) []Finding {
	m := in.Stack.Django.Metrics
	if !m.Enabled || m.CustomModule == "" || pythonModulePath.MatchString(m.CustomModule) {
		return nil
	}
	return []Finding{{
		Message: fmt.Sprintf("django.metrics.custom_module = %q is not a dotted Python module path", m.CustomModule),
		Range:   djangoAttrRange(in.Stack, "metrics.custom_module", "metrics"),
	}}
}

func checkSentrySDK(in *Input) []Finding {
	sentry := in.Stack.Django.Sentry
	if !sentry.Configured || sentry.SDK {
		return nil
	}
	msg := "the django.sentry block sets sdk = false: sentry-sdk is not installed in the app image"
	if sentry.DSN != "" {
		msg = fmt.Sprintf("django.sentry has dsn = secret.%s but sdk = false: sentry-sdk is not installed, so nothing reports to Sentry", sentry.DSN)
	}
	return []Finding{{Message: msg, Range: djangoAttrRange(in.Stack, "sentry.sdk", "sentry")}}
}

func checkLoggingConfigured(in *Input) []Finding {
	if in.Stack.Django.Logging.Configured {
		return nil
	}
	return []Finding{{
		Message: "the django block has no logging block, so Django's LOGGING is not configured",
		Range:   djangoAttrRange(in.Stack),
	}}
}

func checkLoggingScrubFilter(in *Input) []Finding {
	l := in.Stack.Django.Logging
	if !l.Configured || l.ScrubFilter != "" {
		return nil
	}
	return []Finding{{
		Message: "django.logging sets no scrub_filter, so no filter removes PHI from log records",
		Range:   djangoAttrRange(in.Stack, "logging.scrub_filter", "logging"),
	}}
}

func checkCeleryBroker(in *Input) []Finding {
	s := in.Stack
	celery := celeryServices(s)
	if len(celery) == 0 || s.Django.Broker != "" {
		return nil
	}
	return []Finding{{
		Message: fmt.Sprintf("service %q runs Celery, but the django block sets no broker", celery[0].Name),
		Range:   djangoAttrRange(s, "broker"),
	}}
}

func checkCeleryExporter(in *Input) []Finding {
	s := in.Stack
	celery := celeryServices(s)
	if len(celery) == 0 || hasExporter(s, stackhcl.ExporterCelery) {
		return nil
	}
	return []Finding{{
		Message: fmt.Sprintf("service %q runs Celery, but no exporter service has type = %q", celery[0].Name, stackhcl.ExporterCelery),
		Range:   celery[0].DeclRange,
	}}
}

func checkCacheConfigured(in *Input) []Finding {
	if in.Stack.Django.CacheBackend != "" {
		return nil
	}
	return []Finding{{
		Message: "the django block sets neither cache nor cache_backend, so CACHES is not configured",
		Range:   djangoAttrRange(in.Stack, "cache_backend", "cache"),
	}}
}

func checkPortalBaseURL(in *Input) []Finding {
	s := in.Stack
	if !isProduction(s) || s.Django.PortalBaseURL != "" {
		return nil
	}
	return []Finding{{
		Message: fmt.Sprintf("%s leaves django.portal_base_url empty, so alert email links are broken", environmentOf(s)),
		Range:   djangoAttrRange(s, "portal_base_url"),
	}}
}

func checkAllowedHosts(in *Input) []Finding {
	s := in.Stack
	hosts := s.Django.AllowedHosts
	at := djangoAttrRange(s, "allowed_hosts")
	for _, h := range hosts {
		if strings.TrimSpace(h) == "*" {
			return []Finding{{Message: "django.allowed_hosts contains \"*\", which accepts any Host header", Range: at}}
		}
	}
	if len(hosts) == 0 {
		return []Finding{{Message: "django.allowed_hosts is empty, so Django rejects every request", Range: at}}
	}
	return nil
}

func checkFieldEncryption(in *Input) []Finding {
	dj := in.Stack.Django
	if !dj.RealDataMode || dj.FieldEncryptionKey != "" {
		return nil
	}
	return []Finding{{
		Message: "django.real_data_mode is true but field_encryption_key is not set, so PHI is stored unencrypted",
		Range:   djangoAttrRange(in.Stack, "real_data_mode"),
	}}
}

func checkBeforeMiddleware(in *Input) []Finding {
	m := in.Stack.Django.Metrics
	if !m.Enabled || m.BeforeMiddleware {
		return nil
	}
	return []Finding{{
		Message: "django.metrics is enabled but PrometheusBeforeMiddleware is off",
		Range:   djangoAttrRange(in.Stack, "metrics.before_middleware", "metrics.middleware", "metrics"),
	}}
}

func checkAfterMiddleware(in *Input) []Finding {
	m := in.Stack.Django.Metrics
	if !m.Enabled || m.AfterMiddleware {
		return nil
	}
	return []Finding{{
		Message: "django.metrics is enabled but PrometheusAfterMiddleware is off",
		Range:   djangoAttrRange(in.Stack, "metrics.after_middleware", "metrics.middleware", "metrics"),
	}}
}

func checkSentryInProduction(in *Input) []Finding {
	s := in.Stack
	if !isProduction(s) || s.Django.Sentry.Configured {
		return nil
	}
	return []Finding{{
		Message: fmt.Sprintf("%s has no django.sentry block, so errors are not tracked", environmentOf(s)),
		Range:   djangoAttrRange(s),
	}}
}

func checkSentryDSN(in *Input) []Finding {
	sentry := in.Stack.Django.Sentry
	if !sentry.Configured || !sentry.SDK || sentry.DSN != "" {
		return nil
	}
	return []Finding{{
		Message: "the django.sentry block sets no dsn, so the Sentry client is never configured",
		Range:   djangoAttrRange(in.Stack, "sentry"),
	}}
}

// hipaaRetentionDays is seven years, HIPAA's retention for audit records.
const hipaaRetentionDays = 2555

func checkAuditRetention(in *Input) []Finding {
	l := in.Stack.Django.Logging
	if !l.Configured || l.AuditRetentionDays >= hipaaRetentionDays {
		return nil
	}
	msg := fmt.Sprintf("django.logging.audit_retention_days = %d is shorter than %d days (7 years)", l.AuditRetentionDays, hipaaRetentionDays)
	if l.AuditRetentionDays == 0 {
		msg = "django.logging sets no audit_retention_days, so no audit log is kept for 7 years"
	}
	return []Finding{{Message: msg, Range: djangoAttrRange(in.Stack, "logging.audit_retention_days", "logging")}}
}

func checkLogRotation(in *Input) []Finding {
	l := in.Stack.Django.Logging
	if l.Output != "file" || l.Rotation != "" {
		return nil
	}
	return []Finding{{
		Message: "django.logging writes to a file with no rotation",
		Range:   djangoAttrRange(in.Stack, "logging.output", "logging"),
	}}
}

func checkProductionCacheRedis(in *Input) []Finding {
	s := in.Stack
	backend := s.Django.CacheBackend
	if !isProduction(s) || backend == "" || backend == "redis" {
		return nil
	}
	return []Finding{{
		Message: fmt.Sprintf("%s uses cache_backend = %q instead of Redis", environmentOf(s), backend),
		Range:   djangoAttrRange(s, "cache_backend"),
	}}
}

// placeholderMailDomains are domains no real mail is sent from.
var placeholderMailDomains = map[string]bool{
	"localhost": true, "localhost.localdomain": true,
	"example.com": true, "example.org": true, "example.net": true,
}

func checkDefaultFromEmail(in *Input) []Finding {
	email := strings.TrimSpace(in.Stack.Django.DefaultFromEmail)
	at := djangoAttrRange(in.Stack, "default_from_email")
	if email == "" {
		return []Finding{{Message: "django.default_from_email is not set, so Django sends as webmaster@localhost", Range: at}}
	}
	_, domain, ok := strings.Cut(email, "@")
	domain = strings.ToLower(strings.TrimSuffix(domain, ">"))
	switch {
	case !ok || domain == "":
		return []Finding{{Message: fmt.Sprintf("django.default_from_email = %q is not an email address", email), Range: at}}
	case placeholderMailDomains[domain]:
		return []Finding{{Message: fmt.Sprintf("django.default_from_email = %q uses the placeholder domain %q", email, domain), Range: at}}
	}
	return nil
}
