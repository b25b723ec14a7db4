package hcl

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// djangoBlock is the `django { ... }` block: how the app is wired to the
// services and the settings it needs in every environment.
type djangoBlock struct {
	SettingsModule     string            `hcl:"settings_module,optional"`
	WSGI               string            `hcl:"wsgi,optional"`
	CeleryApp          string            `hcl:"celery_app,optional"`
	MigrateCommand     []string          `hcl:"migrate_command,optional"`
	Database           hcl.Expression    `hcl:"database,optional"`
	DBUser             string            `hcl:"db_user,optional"`
	MigrateUser        string            `hcl:"migrate_user,optional"`
	Cache              hcl.Expression    `hcl:"cache,optional"`
	Broker             hcl.Expression    `hcl:"broker,optional"`
	SecretKey          hcl.Expression    `hcl:"secret_key,optional"`
	FieldEncryptionKey hcl.Expression    `hcl:"field_encryption_key,optional"`
	CacheBackend       string            `hcl:"cache_backend,optional"`
	Debug              bool              `hcl:"debug,optional"`
	AllowedHosts       []string          `hcl:"allowed_hosts,optional"`
	CORSOrigins        []string          `hcl:"cors_origins,optional"`
	SiteURL            string            `hcl:"site_url,optional"`
	PortalBaseURL      string            `hcl:"portal_base_url,optional"`
	DefaultFromEmail   string            `hcl:"default_from_email,optional"`
	APIPrefix          string            `hcl:"api_prefix,optional"`
	MediaStorage       string            `hcl:"media_storage,optional"`
	UploadMaxSize      string            `hcl:"upload_max_size,optional"`
	RealDataMode       bool              `hcl:"real_data_mode,optional"`
	SessionEngine      string            `hcl:"session_engine,optional"`
	Settings           map[string]string `hcl:"settings,optional"`
	Metrics            *metricsBlock     `hcl:"metrics,block"`
	Logging            *loggingBlock     `hcl:"logging,block"`
	Security           *securityBlock    `hcl:"security,block"`
	Sentry             *sentryBlock      `hcl:"sentry,block"`
}

// metricsBlock: middleware = true turns on both Prometheus middlewares;
// before_middleware and after_middleware set each one.
type metricsBlock struct {
	Enabled          bool   `hcl:"enabled,optional"`
	Middleware       *bool  `hcl:"middleware,optional"`
	BeforeMiddleware *bool  `hcl:"before_middleware,optional"`
	AfterMiddleware  *bool  `hcl:"after_middleware,optional"`
	CustomModule     string `hcl:"custom_module,optional"`
	Path             string `hcl:"path,optional"`
}

type loggingBlock struct {
	Output             string `hcl:"output,optional"`
	Rotation           string `hcl:"rotation,optional"`
	Level              string `hcl:"level,optional"`
	ScrubFilter        string `hcl:"scrub_filter,optional"`
	AuditRetentionDays int    `hcl:"audit_retention_days,optional"`
}

type sentryBlock struct {
	SDK *bool          `hcl:"sdk,optional"`
	DSN hcl.Expression `hcl:"dsn,optional"`
}

type securityBlock struct {
	CSPScriptSrc    []string `hcl:"csp_script_src,optional"`
	CSPStyleSrc     []string `hcl:"csp_style_src,optional"`
	HSTSSeconds     int      `hcl:"hsts_seconds,optional"`
	HSTSPreload     bool     `hcl:"hsts_preload,optional"`
	HSTSPreloadNote string   `hcl:"hsts_preload_note,optional"`
	AdminAllowedIPs []string `hcl:"admin_allowed_ips,optional"`
}

func defaultLogging() loggingBlock { return loggingBlock{Output: "stdout", Level: "INFO"} }

func defaultSecurity() securityBlock {
	return securityBlock{CSPScriptSrc: []string{"'self'"}, CSPStyleSrc: []string{"'self'"}, HSTSSeconds: 31536000}
}

func (d *decoder) decodeDjango(ctx *hcl.EvalContext, stack *Stack) Django {
	db, dj := d.decodeDjangoBlock(ctx, stack)
	dj.SettingsModule, dj.WSGI, dj.CeleryApp = db.SettingsModule, db.WSGI, db.CeleryApp
	dj.MigrateCommand = db.MigrateCommand
	dj.DBUser, dj.MigrateUser = db.DBUser, db.MigrateUser
	d.resolveDjangoRefs(db, &dj)
	dj.Debug, dj.AllowedHosts, dj.CORSOrigins = db.Debug, db.AllowedHosts, db.CORSOrigins
	dj.SiteURL, dj.PortalBaseURL, dj.DefaultFromEmail = db.SiteURL, db.PortalBaseURL, db.DefaultFromEmail
	dj.APIPrefix, dj.MediaStorage, dj.RealDataMode = db.APIPrefix, db.MediaStorage, db.RealDataMode
	dj.SessionEngine = db.SessionEngine
	if dj.SessionEngine == "" && dj.Cache != "" {
		dj.SessionEngine = "cache"
	}
	dj.Settings = db.Settings
	dj.Metrics = decodeMetrics(db.Metrics)
	dj.Logging = decodeLogging(db.Logging)
	dj.Security = decodeSecurity(db.Security)
	dj.UploadMaxBytes = d.decodeUploadMaxSize(db.UploadMaxSize, dj)
	return dj
}

// decodeDjangoBlock decodes the django block, with its defaults and the
// environment's override, and records where each attribute is.
func (d *decoder) decodeDjangoBlock(ctx *hcl.EvalContext, stack *Stack) (djangoBlock, Django) {
	db := djangoBlock{
		SessionEngine: "", MediaStorage: "local", APIPrefix: "",
		SiteURL: "https://" + stack.Domain, PortalBaseURL: "",
	}
	if stack.Domain != "" {
		db.AllowedHosts = []string{stack.Domain}
	}
	dj := Django{Ranges: map[string]hcl.Range{}}
	if blocks := d.blocks[blockDjango]; len(blocks) > 0 {
		body := blocks[0].Body
		dj.DeclRange = blocks[0].DefRange
		d.addDiags(gohcl.DecodeBody(body, ctx, &db))
		dj.Ranges = attrRanges(body)
		nestedRanges(body, dj.Ranges, "metrics", "logging", "security", "sentry")
	}
	if d.overrides.django != nil {
		d.addDiags(applyOverride(d.overrides.django, ctx, dj.Ranges, &db))
	}
	return db, dj
}

// resolveDjangoRefs resolves the services and secrets Django names.
func (d *decoder) resolveDjangoRefs(db djangoBlock, dj *Django) {
	dj.Database = d.resolveService(db.Database, "database", KindPgBouncer, KindPostgres)
	dj.Cache = d.resolveService(db.Cache, "cache", KindRedis)
	dj.Broker = d.resolveService(db.Broker, "broker", KindRedis)
	dj.SecretKey = d.resolveSecret(db.SecretKey, "secret_key")
	dj.FieldEncryptionKey = d.resolveSecret(db.FieldEncryptionKey, "field_encryption_key")
	dj.CacheBackend = db.CacheBackend
	if dj.CacheBackend == "" && dj.Cache != "" {
		dj.CacheBackend = "redis"
	}
	if db.Sentry != nil {
		dj.Sentry = Sentry{Configured: true, SDK: db.Sentry.SDK == nil || *db.Sentry.SDK, DSN: d.resolveSecret(db.Sentry.DSN, "dsn")}
	}
}

func decodeMetrics(block *metricsBlock) Metrics {
	metrics := metricsBlock{Path: "/metrics"}
	if block != nil {
		metrics = *block
		metrics.Path = cmp.Or(metrics.Path, "/metrics")
	}
	both := metrics.Middleware != nil && *metrics.Middleware
	return Metrics{
		Enabled: metrics.Enabled, CustomModule: metrics.CustomModule, Path: metrics.Path,
		BeforeMiddleware: boolOr(metrics.BeforeMiddleware, both), AfterMiddleware: boolOr(metrics.AfterMiddleware, both),
	}
}

func decodeLogging(block *loggingBlock) Logging {
	logging := defaultLogging()
	if block != nil {
		logging = mergeLogging(*block)
	}
	return Logging{
		Configured: block != nil, Output: logging.Output, Rotation: logging.Rotation, Level: logging.Level,
		ScrubFilter: logging.ScrubFilter, AuditRetentionDays: logging.AuditRetentionDays,
	}
}

func decodeSecurity(block *securityBlock) Security {
	security := defaultSecurity()
	if block != nil {
		security = mergeSecurity(*block)
	}
	return Security{
		CSPScriptSrc: security.CSPScriptSrc, CSPStyleSrc: security.CSPStyleSrc,
		HSTSSeconds: security.HSTSSeconds, HSTSPreload: security.HSTSPreload,
		HSTSPreloadNote: security.HSTSPreloadNote, AdminAllowedIPs: security.AdminAllowedIPs,
	}
}

// decodeUploadMaxSize is upload_max_size in bytes (0 when unset).
func (d *decoder) decodeUploadMaxSize(value string, dj Django) int64 {
	if value == "" {
		return 0
	}
	size, err := ParseSize(value)
	if err != nil {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid upload_max_size",
			Detail:   err.Error() + ` Write a size such as "100M" or "1G".`,
			Subject:  rangeOr(dj.Ranges, "upload_max_size", dj.DeclRange).Ptr(),
		})
	}
	return size
}

// mergeLogging fills what a logging block leaves unset with the defaults.
func mergeLogging(l loggingBlock) loggingBlock {
	def := defaultLogging()
	if l.Output == "" {
		l.Output = def.Output
	}
	if l.Level == "" {
		l.Level = def.Level
	}
	return l
}

// mergeSecurity fills what a security block leaves unset with the
// defaults; an explicit empty list stays empty.
func mergeSecurity(s securityBlock) securityBlock {
	def := defaultSecurity()
	if s.CSPScriptSrc == nil {
		s.CSPScriptSrc = def.CSPScriptSrc
	}
	if s.CSPStyleSrc == nil {
		s.CSPStyleSrc = def.CSPStyleSrc
	}
	if s.HSTSSeconds == 0 {
		s.HSTSSeconds = def.HSTSSeconds
	}
	return s
}

func boolOr(p *bool, fallback bool) bool {
	if p == nil {
		return fallback
	}
	return *p
}

func rangeOr(ranges map[string]hcl.Range, name string, fallback hcl.Range) hcl.Range {
	if r, ok := ranges[name]; ok {
		return r
	}
	return fallback
}

// ParseSize reads a size such as "100M", "1G", "512k" or "1048576" into
// bytes, with binary multiples as nginx and Docker use them.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult, t = 1<<10, t[:n-1]
		case 'M':
			mult, t = 1<<20, t[:n-1]
		case 'G':
			mult, t = 1<<30, t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size.", s)
	}
	return n * mult, nil
}
