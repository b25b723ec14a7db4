package checks

// rules_audit.go holds the readiness audit seed's items as checks of the
// stack file (audit.A<item>). Items covered elsewhere: #2 is
// monitoring.E009, #3 is monitoring.E001, #13 is monitoring.E008. Items
// that no stack file can show have no rule: #17 (Gemini API usage docs),
// #22 (email template preview) and #23 (.dockerignore) are about the
// application's repository, not its deployment.

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"

	stackhcl "github.com/obcd/obcd/hcl"
)

// auditRules are the readiness audit's checks, registered by the catalog.
var auditRules = []*Rule{
	{
		Code: "audit.A001", Severity: SeverityError, Priority: PriorityCritical, Category: CategoryDatabase,
		Title:  "PgBouncer credentials are not configured",
		Impact: "PgBouncer rejects every login, so database connections fail.",
		Fix:    "Give every pgbouncer user block a password = secret.<name> and run obcd secrets init to generate real values in place of placeholders.",
		Source: "audit seed #1",
		Check:  checkPgBouncerCredentials,
	},
	{
		Code: "audit.A004", Severity: SeverityError, Priority: PriorityCritical, Category: CategoryEnvironment,
		Title:  "Application version is not defined",
		Impact: "settings.VERSION is missing, so the health endpoint fails and releases cannot be told apart.",
		Fix:    "Set version in the stack block, e.g. version = var.app_version.",
		Source: "audit seed #4",
		Check:  checkVersionSet,
	},
	{
		Code: "audit.A005", Severity: SeverityError, Priority: PriorityCritical, Category: CategoryDocker,
		Title:  "No staging environment",
		Impact: "Staging must be deployed with the production configuration, or not at all.",
		Fix:    "Declare environment \"staging\" { domain = \"...\" } with staging-sized overrides (fewer web and worker replicas, shorter retention).",
		Source: "audit seed #5",
		Check:  checkStagingDeclared,
	},
	{
		Code: "audit.A006", Severity: SeverityWarning, Priority: PriorityHigh, Category: CategorySecurity,
		Title:  "Content Security Policy allows unsafe inline code",
		Impact: "XSS protection is reduced.",
		Fix:    "Remove 'unsafe-inline' and 'unsafe-eval' from csp_script_src and csp_style_src in the django.security block; use nonces or hashes.",
		Source: "audit seed #6",
		Check:  checkCSPUnsafe,
	},
	{
		Code: "audit.A007", Severity: SeverityWarning, Priority: PriorityHigh, Category: CategoryMonitoring,
		Title:  "Grafana dashboards are not provisioned",
		Impact: "No monitoring visibility: no dashboards load.",
		Fix:    "Declare service \"grafana\" \"grafana\" {} and service \"prometheus\" \"prometheus\" {}; obcd provisions the datasource and dashboards.",
		Source: "audit seed #7",
		Check:  checkGrafanaProvisioned,
	},
	{
		Code: "audit.A008", Severity: SeverityWarning, Priority: PriorityHigh, Category: CategoryMonitoring,
		Title:  "Alertmanager is not configured",
		Impact: "Monitoring generates no alerts.",
		Fix:    "Declare service \"alertmanager\" \"alertmanager\" {} and at least one receiver block in the monitoring block.",
		Source: "audit seed #8",
		Check:  checkAlertmanager,
	},
	{
		Code: "audit.A009", Severity: SeverityError, Priority: PriorityHigh, Category: CategoryDatabase,
		Title:  "Database replicas without replication credentials",
		Impact: "Replicas cannot authenticate to the primary and never receive data.",
		Fix:    "Set replication_password = secret.<name> on the postgres service, or set replicas = 0.",
		Source: "audit seed #9",
		Check:  checkReplication,
	},
	{
		Code: "audit.A010", Severity: SeverityWarning, Priority: PriorityHigh, Category: CategorySecurity,
		Title:  "HSTS preload is on but the domain is not registered",
		Impact: "Browsers' preload lists will not include the domain.",
		Fix:    "Submit the domain at https://hstspreload.org/ and record it in hsts_preload_note in the django.security block, or set hsts_preload = false.",
		Source: "audit seed #10",
		Check:  checkHSTSPreload,
	},
	{
		Code: "audit.A011", Severity: SeverityWarning, Priority: PriorityHigh, Category: CategorySecurity,
		Title:  "Django admin is not restricted by IP",
		Impact: "The admin login is exposed to the whole internet.",
		Fix:    "Set admin_allowed_ips in the django.security block to the networks allowed to reach /admin/.",
		Source: "audit seed #11",
		Check:  checkAdminAllowedIPs,
	},
	{
		Code: "audit.A012", Severity: SeverityWarning, Priority: PriorityHigh, Category: CategoryMonitoring,
		Title:  "Nginx metrics are not collected",
		Impact: "No reverse proxy metrics: request rates and errors at the edge are invisible.",
		Fix:    "Declare service \"exporter\" \"nginx-exporter\" { type = \"nginx\", target = service.<nginx> }.",
		Source: "audit seed #12",
		Check:  checkNginxExporter,
	},
	{
		Code: "audit.A014", Severity: SeverityWarning, Priority: PriorityHigh, Category: CategoryEnvironment,
		Title:  "Sessions are not stored in the cache",
		Impact: "Sessions do not use Redis: every request hits the database, or sessions live in cookies.",
		Fix:    "Set session_engine = \"cache\" in the django block (the default when cache is set).",
		Source: "audit seed #14",
		Check:  checkSessionEngine,
	},
	{
		Code: "audit.A015", Severity: SeverityWarning, Priority: PriorityHigh, Category: CategoryStatic,
		Title:  "No upload size limit",
		Impact: "Large uploads can exhaust a worker's memory and crash it.",
		Fix:    "Set upload_max_size in the django block, e.g. \"100M\".",
		Source: "audit seed #15",
		Check:  checkUploadLimit,
	},
	{
		Code: "audit.A016", Severity: SeverityWarning, Priority: PriorityHigh, Category: CategoryStatic,
		Title:  "Local media storage with several web replicas",
		Impact: "Each replica sees only its own uploads: media storage blocks horizontal scaling.",
		Fix:    "Set media_storage = \"s3\" in the django block, or run the web service with one replica.",
		Source: "audit seed #16",
		Check:  checkMediaStorage,
	},
	{
		Code: "audit.A018", Severity: SeverityWarning, Priority: PriorityHigh, Category: CategoryDatabase,
		Title:  "Database backup is not automated",
		Impact: "No automated backups: a lost volume loses the data.",
		Fix:    "Declare service \"backup\" \"backup\" { database = service.<postgres> }.",
		Source: "audit seed #18",
		Check:  checkBackup,
	},
	{
		Code: "audit.A019", Severity: SeverityWarning, Priority: PriorityMedium, Category: CategoryAPI,
		Title:  "CORS allowed origins are not configured",
		Impact: "Cross-origin API requests fail.",
		Fix:    "Set cors_origins in the django block, e.g. [\"https://${environment.domain}\"].",
		Source: "audit seed #19",
		Check:  checkCORSOrigins,
	},
	{
		Code: "audit.A020", Severity: SeverityWarning, Priority: PriorityMedium, Category: CategoryEnvironment,
		Title:  "SITE_URL does not match the environment's domain",
		Impact: "Links the application builds point at the wrong host in every environment but one.",
		Fix:    "Remove site_url from the django block (it defaults to https://<domain>) or set it to \"https://${environment.domain}\".",
		Source: "audit seed #20",
		Check:  checkSiteURL,
	},
	{
		Code: "audit.A021", Severity: SeverityInfo, Priority: PriorityMedium, Category: CategoryMonitoring,
		Title:  "Logs are written to files inside containers",
		Impact: "Logs are not centralized and are lost when a container is replaced.",
		Fix:    "Set output = \"stdout\" in the django.logging block and ship logs from Docker.",
		Source: "audit seed #21",
		Check:  checkFileLogging,
	},
	{
		Code: "audit.A024", Severity: SeverityWarning, Priority: PriorityMedium, Category: CategoryAPI,
		Title:  "API is not versioned",
		Impact: "Breaking API changes cannot be introduced without breaking clients.",
		Fix:    "Set api_prefix = \"/api/v1/\" in the django block.",
		Source: "audit seed #24",
		Check:  checkAPIVersioning,
	},
}

// checkPgBouncerCredentials reports, once per pgbouncer service as the
// audit did, every user whose password is a placeholder. (A pgbouncer
// with no users does not load: the language requires them.)
func checkPgBouncerCredentials(in *Input) []Finding {
	var out []Finding
	for _, svc := range in.Stack.ServicesOf(stackhcl.KindPgBouncer) {
		var users []string
		var first hcl.Range
		for _, user := range svc.PgBouncer.Users {
			if !looksLikePlaceholder(in.SecretValue(user.Password)) {
				continue
			}
			if len(users) == 0 {
				first = user.DeclRange
			}
			users = append(users, fmt.Sprintf("%s (secret %s)", user.Name, user.Password))
		}
		if len(users) == 0 {
			continue
		}
		what := "the password of " + users[0] + " is a placeholder"
		if len(users) > 1 {
			what = "the passwords of " + strings.Join(users, ", ") + " are placeholders"
		}
		out = append(out, Finding{
			Message: fmt.Sprintf("pgbouncer service %q: %s, so its userlist holds no usable secret", svc.Name, what),
			Range:   first,
		})
	}
	return out
}

func checkVersionSet(in *Input) []Finding {
	s := in.Stack
	if s.VersionSet {
		return nil
	}
	return []Finding{{
		Message: fmt.Sprintf("stack %q sets no version, so APP_VERSION is %q", s.Name, s.Version),
		Range:   s.DeclRange,
	}}
}

func checkStagingDeclared(in *Input) []Finding {
	s := in.Stack
	for _, env := range s.Environments {
		if env == "staging" {
			return nil
		}
	}
	return []Finding{{
		Message: fmt.Sprintf("stack %q declares no environment \"staging\" (it declares %s)", s.Name, strings.Join(s.Environments, ", ")),
		Range:   s.DeclRange,
	}}
}

// unsafeCSPSources are CSP source expressions that undo XSS protection.
var unsafeCSPSources = []string{"unsafe-inline", "unsafe-eval"}

func checkCSPUnsafe(in *Input) []Finding {
	sec := in.Stack.Django.Security
	var out []Finding
	for _, directive := range []struct {
		attr    string
		sources []string
	}{{"csp_script_src", sec.CSPScriptSrc}, {"csp_style_src", sec.CSPStyleSrc}} {
		for _, src := range directive.sources {
			normalized := strings.ToLower(strings.Trim(strings.TrimSpace(src), "'\""))
			for _, unsafe := range unsafeCSPSources {
				if normalized != unsafe {
					continue
				}
				out = append(out, Finding{
					Message: fmt.Sprintf("django.security.%s allows '%s'", directive.attr, unsafe),
					Range:   djangoAttrRange(in.Stack, "security."+directive.attr, "security"),
				})
			}
		}
	}
	return out
}

func checkGrafanaProvisioned(in *Input) []Finding {
	s := in.Stack
	grafana := s.First(stackhcl.KindGrafana)
	switch {
	case grafana == nil:
		return []Finding{{Message: fmt.Sprintf("stack %q declares no grafana service", s.Name), Range: s.DeclRange}}
	case s.First(stackhcl.KindPrometheus) == nil:
		return []Finding{{
			Message: fmt.Sprintf("grafana service %q has no prometheus service to read from", grafana.Name),
			Range:   grafana.DeclRange,
		}}
	}
	return nil
}

func checkAlertmanager(in *Input) []Finding {
	s := in.Stack
	if s.First(stackhcl.KindAlertmanager) == nil {
		return []Finding{{Message: fmt.Sprintf("stack %q declares no alertmanager service", s.Name), Range: s.DeclRange}}
	}
	if len(s.Monitoring.Receivers) == 0 {
		at := s.Monitoring.DeclRange
		if at.Filename == "" {
			at = s.DeclRange
		}
		return []Finding{{Message: "the monitoring block declares no receiver, so alerts go nowhere", Range: at}}
	}
	return nil
}

func checkReplication(in *Input) []Finding {
	var out []Finding
	for _, svc := range in.Stack.ServicesOf(stackhcl.KindPostgres) {
		if svc.Postgres == nil || svc.Replicas == 0 || svc.Postgres.ReplicationPassword != "" {
			continue
		}
		out = append(out, Finding{
			Message: fmt.Sprintf("postgres service %q has %d replica(s) but no replication_password", svc.Name, svc.Replicas),
			Range:   serviceAttrRange(svc, "replicas"),
		})
	}
	return out
}

func checkHSTSPreload(in *Input) []Finding {
	sec := in.Stack.Django.Security
	if !sec.HSTSPreload || strings.TrimSpace(sec.HSTSPreloadNote) != "" {
		return nil
	}
	return []Finding{{
		Message: "django.security.hsts_preload is true but hsts_preload_note does not record the hstspreload.org submission",
		Range:   djangoAttrRange(in.Stack, "security.hsts_preload", "security"),
	}}
}

func checkAdminAllowedIPs(in *Input) []Finding {
	if len(in.Stack.Django.Security.AdminAllowedIPs) > 0 {
		return nil
	}
	return []Finding{{
		Message: "django.security.admin_allowed_ips is empty, so /admin/ is reachable from any address",
		Range:   djangoAttrRange(in.Stack, "security.admin_allowed_ips", "security"),
	}}
}

func checkNginxExporter(in *Input) []Finding {
	s := in.Stack
	nginx := s.First(stackhcl.KindNginx)
	if nginx == nil || hasExporter(s, stackhcl.ExporterNginx) {
		return nil
	}
	return []Finding{{
		Message: fmt.Sprintf("nginx service %q has no exporter with type = %q", nginx.Name, stackhcl.ExporterNginx),
		Range:   nginx.DeclRange,
	}}
}

func checkSessionEngine(in *Input) []Finding {
	dj := in.Stack.Django
	if dj.CacheBackend == "" || dj.SessionEngine == "cache" {
		return nil
	}
	msg := fmt.Sprintf("django.session_engine = %q although a %s cache is configured", dj.SessionEngine, dj.CacheBackend)
	if dj.SessionEngine == "" {
		msg = fmt.Sprintf("django.session_engine is not set although a %s cache is configured", dj.CacheBackend)
	}
	return []Finding{{Message: msg, Range: djangoAttrRange(in.Stack, "session_engine", "cache_backend", "cache")}}
}

func checkUploadLimit(in *Input) []Finding {
	if in.Stack.Django.UploadMaxBytes > 0 {
		return nil
	}
	return []Finding{{
		Message: "django.upload_max_size is not set, so uploads have no size limit",
		Range:   djangoAttrRange(in.Stack, "upload_max_size"),
	}}
}

func checkMediaStorage(in *Input) []Finding {
	s := in.Stack
	if s.Django.MediaStorage != "local" {
		return nil
	}
	var out []Finding
	for _, web := range s.ServicesOf(stackhcl.KindWeb) {
		if web.Replicas <= 1 {
			continue
		}
		at := djangoAttrRange(s, "media_storage")
		if _, set := s.Django.Ranges["media_storage"]; !set {
			at = serviceAttrRange(web, "replicas")
		}
		out = append(out, Finding{
			Message: fmt.Sprintf("media_storage is \"local\" but web service %q runs %d replicas", web.Name, web.Replicas),
			Range:   at,
		})
	}
	return out
}

func checkBackup(in *Input) []Finding {
	s := in.Stack
	db := s.First(stackhcl.KindPostgres)
	if db == nil || s.First(stackhcl.KindBackup) != nil {
		return nil
	}
	return []Finding{{
		Message: fmt.Sprintf("postgres service %q has no backup service dumping it", db.Name),
		Range:   db.DeclRange,
	}}
}

func checkCORSOrigins(in *Input) []Finding {
	if len(in.Stack.Django.CORSOrigins) > 0 {
		return nil
	}
	return []Finding{{
		Message: "django.cors_origins is empty, so browsers block cross-origin API requests",
		Range:   djangoAttrRange(in.Stack, "cors_origins"),
	}}
}

func checkSiteURL(in *Input) []Finding {
	s := in.Stack
	if s.Domain == "" {
		return nil
	}
	host := ""
	if u, err := url.Parse(s.Django.SiteURL); err == nil {
		host = u.Hostname()
	}
	if strings.EqualFold(host, s.Domain) {
		return nil
	}
	msg := fmt.Sprintf("django.site_url = %q is not on the environment's domain %q", s.Django.SiteURL, s.Domain)
	if host == "" {
		msg = fmt.Sprintf("django.site_url = %q names no host; the environment's domain is %q", s.Django.SiteURL, s.Domain)
	}
	return []Finding{{Message: msg, Range: djangoAttrRange(s, "site_url")}}
}

func checkFileLogging(in *Input) []Finding {
	l := in.Stack.Django.Logging
	// Without rotation it is monitoring.W006's finding, the more urgent one.
	if l.Output != "file" || l.Rotation == "" {
		return nil
	}
	return []Finding{{
		Message: fmt.Sprintf("django.logging writes to files (rotation %q) inside the containers", l.Rotation),
		Range:   djangoAttrRange(in.Stack, "logging.output", "logging"),
	}}
}

var versionedAPIPrefix = regexp.MustCompile(`^/api/v[0-9]+/?$`)

func checkAPIVersioning(in *Input) []Finding {
	prefix := in.Stack.Django.APIPrefix
	if versionedAPIPrefix.MatchString(prefix) {
		return nil
	}
	msg := fmt.Sprintf("django.api_prefix = %q has no version, like /api/v1/", prefix)
	if prefix == "" {
		msg = "django.api_prefix is not set, so the API is not versioned"
	}
	return []Finding{{Message: msg, Range: djangoAttrRange(in.Stack, "api_prefix")}}
}
