package hcl

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/hashicorp/hcl/v2"
)

// Stack is one environment's fully evaluated view of a stack file: every
// variable, local and environment override has been applied, every
// reference resolved, and every default filled in. Renderers and checks
// read it; nothing writes to it after Load returns.
//
// Secret values never appear here. Fields that name a secret hold the
// secret's name (see Secret), and the renderer asks a SecretSource for the
// value only where an artifact truly needs a derived form of it (a SCRAM
// verifier, for instance).
type Stack struct {
	Name        string // stack "<name>"
	Environment string // the environment this view was evaluated for
	File        string // the stack file as given on the command line
	Digest      string // sha256 of the stack file's bytes, hex: what a saved plan was made from
	AppImage    string // repository of the Django image, e.g. "obcms/app"
	Version     string // release version, exported as APP_VERSION; "latest" when unset
	VersionSet  bool   // the stack block sets version explicitly
	Domain      string // public DNS name of this environment
	DockerHost  string // Docker endpoint, e.g. unix:///var/run/docker.sock or ssh://deploy@host
	// DockerCertPath is the directory of ca.pem, cert.pem and key.pem
	// that a tcp:// DockerHost is reached with over TLS, the engine's
	// certificate verified against ca.pem ("" : DOCKER_CERT_PATH and
	// DOCKER_TLS_VERIFY apply, as for the docker CLI). Absolute; a
	// relative path in the stack is resolved against the stack file.
	DockerCertPath string
	// Engine is how the environment's services run on DockerHost:
	// EngineDocker, containers on that one engine, or EngineSwarm,
	// services of the swarm whose manager it is.
	Engine    string
	PublicURL string // where users reach the site; default https://<domain>
	// Tier is what the environment is (TierProduction, TierStaging or
	// TierDevelopment): it decides which rules apply. The environment's
	// tier attribute, else TierByName.
	Tier string
	// TierRange is where the environment declares its tier; its Filename
	// is empty when the tier comes from the environment's name.
	TierRange hcl.Range
	// Watch is how long a deploy keeps watching a release after the
	// switch before it calls it stable (environment's watch, DefaultWatch).
	Watch time.Duration

	// Environments lists every environment the file declares, sorted.
	Environments []string

	Django     Django
	Services   []*Service // declaration order
	Secrets    []*Secret  // declaration order
	Monitoring Monitoring
	// Probes tune or add to the probes obcd derives from the services.
	Probes []*ProbeConfig
	// State is where releases and the deploy lock live.
	State State
	// Waivers are the accepted risks, in declaration order; the same in
	// every environment.
	Waivers []*Waiver

	DeclRange hcl.Range // the stack block
	// EnvRange is the environment block this view was evaluated for.
	EnvRange hcl.Range
}

// useAppImage points every service running the app image at image, a
// tag of the stack's app_image ("1.2.0") or a whole reference
// ("registry.example.org:5000/obcms/app:1.2.0", or pinned by digest,
// "…@sha256:…"). The tag (a digest's first 12 digits) becomes the release
// version, set as if the stack block said so.
func (s *Stack) useAppImage(image string) error {
	ref, version := s.AppImage+":"+image, image
	if !tagRE.MatchString(image) {
		named, err := reference.ParseNormalizedNamed(image)
		if err != nil {
			return fmt.Errorf("--image %q is neither a tag (such as 1.2.0) nor an image reference (such as registry.example.org/obcms/app:1.2.0): %v", image, err)
		}
		switch r := named.(type) {
		case reference.Tagged:
			version = r.Tag()
		case reference.Digested:
			version = "sha256-" + r.Digest().Encoded()[:12]
		default:
			return fmt.Errorf("--image %q names no tag or digest; give one, such as %s:1.2.0, so that the release says what it runs", image, image)
		}
		ref = image
	}
	for _, svc := range s.Services {
		if strings.HasPrefix(svc.Image, s.AppImage+":") || strings.HasPrefix(svc.Image, s.AppImage+"@") {
			svc.Image = ref
		}
	}
	s.Version, s.VersionSet = version, true
	return nil
}

// tagRE is an image tag, as the distribution spec allows it.
var tagRE = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)

// Service returns the service with the given name, or nil.
func (s *Stack) Service(name string) *Service {
	for _, svc := range s.Services {
		if svc.Name == name {
			return svc
		}
	}
	return nil
}

// ServicesOf returns the services of one kind, in declaration order.
func (s *Stack) ServicesOf(kind Kind) []*Service {
	var out []*Service
	for _, svc := range s.Services {
		if svc.Kind == kind {
			out = append(out, svc)
		}
	}
	return out
}

// First returns the first service of a kind, or nil.
func (s *Stack) First(kind Kind) *Service {
	for _, svc := range s.Services {
		if svc.Kind == kind {
			return svc
		}
	}
	return nil
}

// Secret returns the declared secret with the given name, or nil.
func (s *Stack) Secret(name string) *Secret {
	for _, sec := range s.Secrets {
		if sec.Name == name {
			return sec
		}
	}
	return nil
}

// Waiver returns the waiver of the check with the given code, or nil.
func (s *Stack) Waiver(code string) *Waiver {
	for _, w := range s.Waivers {
		if w.Code == code {
			return w
		}
	}
	return nil
}

// Kind is the role a service plays in the stack. It decides the schema of
// the service block, its defaults, and how each artifact treats it.
type Kind string

// The service kinds a stack can declare.
const (
	KindWeb          Kind = "web"           // Django under gunicorn
	KindNginx        Kind = "nginx"         // TLS-terminating reverse proxy
	KindPostgres     Kind = "postgres"      // primary plus optional streaming replicas
	KindPgBouncer    Kind = "pgbouncer"     // connection pooler in front of postgres
	KindRedis        Kind = "redis"         // cache, sessions and Celery broker
	KindCeleryWorker Kind = "celery_worker" // Celery worker pool
	KindCeleryBeat   Kind = "celery_beat"   // Celery scheduler (always exactly one)
	KindPrometheus   Kind = "prometheus"
	KindAlertmanager Kind = "alertmanager"
	KindGrafana      Kind = "grafana"
	KindExporter     Kind = "exporter" // a Prometheus exporter; Exporter.Type says which
	KindBackup       Kind = "backup"   // scheduled pg_dump with retention
)

// Kinds lists every service kind, in the order the language documents them.
var Kinds = []Kind{
	KindWeb, KindNginx, KindPostgres, KindPgBouncer, KindRedis,
	KindCeleryWorker, KindCeleryBeat, KindPrometheus, KindAlertmanager,
	KindGrafana, KindExporter, KindBackup,
}

// Service is one long-running service (or, for postgres, a primary and
// its replicas). Exactly one of the kind-specific pointers is set, the one
// matching Kind; kinds without settings of their own leave all nil.
type Service struct {
	Kind     Kind
	Name     string   // DNS name on the stack network
	Image    string   // full image reference
	Replicas int      // containers of this service; for postgres, streaming replicas besides the primary
	Port     int      // the port the service listens on inside the network
	CPUs     float64  // limit; 0 means none
	Memory   string   // limit, e.g. "512M"; "" means none
	Ports    []string // published ports, compose short syntax ("127.0.0.1:8080:80")
	// Address is where obcd itself reaches the service for live checks and
	// probes ("127.0.0.1:5432", "db.internal:5432"); "" when not declared.
	Address string
	Env     map[string]string
	Command []string // overrides the kind's default command when set
	// Placement are Swarm placement constraints on the service's tasks
	// (for postgres, its primary's); a single engine ignores them.
	Placement []string
	Health    *Health // overrides the kind's default healthcheck when set
	Build     *Build  // builds Image from a directory when the engine lacks it

	Web       *Web
	Nginx     *Nginx
	Postgres  *Postgres
	PgBouncer *PgBouncer
	Redis     *Redis
	Celery    *Celery
	Grafana   *Grafana
	Exporter  *Exporter
	Backup    *Backup

	DeclRange hcl.Range
	// Ranges holds the source range of each attribute set in the file (or
	// in the environment's override), keyed by attribute name.
	Ranges map[string]hcl.Range
}

// Build is a docker build context, resolved against the stack file.
type Build struct {
	Context    string
	Dockerfile string
}

// Health overrides a service's default healthcheck.
type Health struct {
	Test        []string // compose syntax: ["CMD", ...] or ["CMD-SHELL", "..."]
	Interval    string
	Timeout     string
	Retries     int
	StartPeriod string
}

// Web holds gunicorn settings.
type Web struct {
	Workers int
	Timeout int // seconds
}

// Nginx holds reverse-proxy settings.
type Nginx struct {
	Upstream   string // name of the web service it proxies to
	HTTPPort   int
	HTTPSPort  int
	StatusPort int    // stub_status listener, scraped by the nginx exporter
	TLSCert    string // certificate path inside the container
	TLSKey     string // key path inside the container
}

// Postgres holds the primary's settings and its replication.
type Postgres struct {
	Database            string
	MaxConnections      int
	SharedBuffers       string
	SuperuserPassword   string // secret name
	ReplicationUser     string
	ReplicationPassword string // secret name; required when Replicas > 0
}

// ReplicaNames returns the service names of the streaming replicas.
func (s *Service) ReplicaNames() []string {
	if s.Kind != KindPostgres {
		return nil
	}
	names := make([]string, 0, s.Replicas)
	for i := 1; i <= s.Replicas; i++ {
		names = append(names, s.Name+"-replica-"+strconv.Itoa(i))
	}
	return names
}

// SlotName is the replication slot of the replica with the given service name.
func SlotName(replica string) string {
	out := make([]byte, 0, len(replica))
	for i := 0; i < len(replica); i++ {
		c := replica[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
			out = append(out, c)
		case c >= 'A' && c <= 'Z':
			out = append(out, c+'a'-'A')
		default:
			out = append(out, '_')
		}
	}
	return string(out)
}

// PgBouncer holds pooler settings and the users it authenticates.
type PgBouncer struct {
	Server          string // name of the postgres service it pools
	PoolMode        string // session | transaction | statement
	AuthType        string // scram-sha-256 | md5
	MaxClientConn   int
	DefaultPoolSize int
	Users           []*PgUser
}

// User returns the pgbouncer user with the given name, or nil.
func (p *PgBouncer) User(name string) *PgUser {
	for _, u := range p.Users {
		if u.Name == name {
			return u
		}
	}
	return nil
}

// PgUser is a database role that logs in through PgBouncer.
type PgUser struct {
	Name     string
	Password string // secret name
	Admin    bool   // listed in admin_users; owns the database
	Stats    bool   // listed in stats_users; read-only monitoring role
	// DeclRange is the user block.
	DeclRange hcl.Range
}

// Redis holds cache and broker settings.
type Redis struct {
	MaxMemory       string // e.g. "512mb"; "" means no limit
	MaxMemoryPolicy string
}

// Celery holds worker or beat settings.
type Celery struct {
	Concurrency int
	Queues      []string
	LogLevel    string
}

// Grafana holds Grafana's settings.
type Grafana struct {
	AdminUser     string
	AdminPassword string // secret name
}

// Exporter types a stack can declare.
const (
	ExporterNode      = "node"
	ExporterPostgres  = "postgres"
	ExporterPgBouncer = "pgbouncer"
	ExporterRedis     = "redis"
	ExporterNginx     = "nginx"
	ExporterCelery    = "celery"
)

// ExporterTypes lists the exporter types and their default ports.
var ExporterTypes = map[string]int{
	ExporterNode:      9100,
	ExporterPostgres:  9187,
	ExporterPgBouncer: 9127,
	ExporterRedis:     9121,
	ExporterNginx:     9113,
	ExporterCelery:    9808,
}

// Exporter is a Prometheus exporter for one target service.
type Exporter struct {
	Type   string // one of the Exporter* constants
	Target string // service it exports; "" for node
}

// Backup is the scheduled database dump.
type Backup struct {
	Database string // name of the postgres service it dumps
	Interval string // Go duration between dumps, e.g. "24h"
	KeepDays int    // dumps older than this are pruned
}

// Django is the application's configuration: how it is wired to the
// services, and the settings the audit found missing. Everything here is
// exported to the containers through the rendered env file.
type Django struct {
	SettingsModule string
	WSGI           string // gunicorn app, e.g. "obc_management.wsgi:application"
	CeleryApp      string // celery -A value; "" when Celery is not used
	// MigrateCommand runs migrations and collectstatic as a one-off before
	// any web change; nil means manage.py migrate && collectstatic.
	MigrateCommand []string

	Database    string // service the app connects to (pgbouncer or postgres)
	DBUser      string // role the app logs in as
	MigrateUser string // role migrations run as, directly against the primary
	Cache       string // redis service for CACHES and sessions; "" means none
	Broker      string // redis service for Celery; "" means none

	SecretKey          string // secret name
	FieldEncryptionKey string // secret name; "" when not configured
	CacheBackend       string // redis | locmem | db | memcached | dummy; "" when no cache

	Debug            bool
	AllowedHosts     []string
	CORSOrigins      []string
	SiteURL          string
	PortalBaseURL    string
	DefaultFromEmail string
	APIPrefix        string
	MediaStorage     string // local | s3
	UploadMaxBytes   int64
	RealDataMode     bool
	SessionEngine    string // cache | db | signed_cookies
	Settings         map[string]string

	Metrics  Metrics
	Logging  Logging
	Security Security
	Sentry   Sentry

	DeclRange hcl.Range
	// Ranges holds the source range of each attribute that was set in the
	// file, keyed by attribute name ("debug", or "metrics.enabled" for a
	// nested block), so checks can point at it. Blocks are keyed by name.
	Ranges map[string]hcl.Range
}

// Metrics configures django-prometheus.
type Metrics struct {
	Enabled          bool   // django_prometheus installed, /metrics exposed
	BeforeMiddleware bool   // PrometheusBeforeMiddleware first in MIDDLEWARE
	AfterMiddleware  bool   // PrometheusAfterMiddleware last in MIDDLEWARE
	CustomModule     string // module registering the app's own metrics
	Path             string
}

// Logging configures Django's LOGGING.
type Logging struct {
	Configured         bool   // the stack has a logging block
	Output             string // stdout | file
	Rotation           string // for file output: time | size | ""
	Level              string
	ScrubFilter        string // name of the PHI/PII scrubbing filter; "" means none
	AuditRetentionDays int
}

// Sentry configures error tracking.
type Sentry struct {
	Configured bool   // the stack has a sentry block
	SDK        bool   // sentry-sdk is installed in the app image
	DSN        string // secret name; "" when none
}

// Security holds the HTTP security settings.
type Security struct {
	CSPScriptSrc    []string
	CSPStyleSrc     []string
	HSTSSeconds     int
	HSTSPreload     bool
	HSTSPreloadNote string
	AdminAllowedIPs []string
}

// Monitoring holds what Prometheus and Alertmanager need beyond services.
type Monitoring struct {
	Retention          string // Prometheus TSDB retention, e.g. "30d"
	ScrapeInterval     string
	EvaluationInterval string
	SMTPSmarthost      string
	SMTPFrom           string
	DefaultReceiver    string
	CriticalReceiver   string
	Receivers          []*Receiver

	DeclRange hcl.Range
}

// Receiver is an Alertmanager receiver.
type Receiver struct {
	Name       string
	Email      []string // addresses; uses the SMTP settings of Monitoring
	WebhookURL string
	DeclRange  hcl.Range
}

// Secret is a named secret the stack needs. Its value lives outside the
// stack file: in .obcd/<env>.secrets or in OBCD_SECRET_<NAME>.
type Secret struct {
	Name        string
	Description string
	Length      int    // generated length
	Format      string // alnum | hex | base64url | fernet (32 random bytes, padded base64url)
	DeclRange   hcl.Range
}

// EnvVar is the environment variable that carries a secret's value, both
// as an override for obcd and in the rendered compose file.
func (s *Secret) EnvVar() string { return SecretEnvVar(s.Name) }

// SecretEnvVar is the environment variable for the secret with this name.
func SecretEnvVar(name string) string {
	out := []byte("OBCD_SECRET_")
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z':
			out = append(out, c-'a'+'A')
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			out = append(out, c)
		default:
			out = append(out, '_')
		}
	}
	return string(out)
}

// Waiver is a `waive "<code>" { reason = "..." }` block: a risk the
// stack accepts, reviewed like code. Which codes exist, and which may be
// waived, is the checks' business; the language only requires a reason.
type Waiver struct {
	Code      string // the check it accepts, e.g. "audit.A007"
	Reason    string // why the risk is accepted; never empty
	DeclRange hcl.Range
}

// State chooses where an environment's releases and deploy lock live:
// the local state directory (the default), or a Postgres database shared
// by a team, where the lock is an advisory lock.
type State struct {
	Backend   string // local | postgres
	DSN       string // secret name holding the connection string (postgres)
	DeclRange hcl.Range
}
