package probe

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/templates"
)

// BuildOptions is what Build derives probes from.
type BuildOptions struct {
	Stack   *stackhcl.Stack
	Secrets templates.SecretSource
	// Docker enables the container probe; nil leaves it out.
	Docker ContainerAPI
	// Vantage runs the probes of services that declare no address, from
	// inside the environment's network (the in-network agent). nil: those
	// probes are skipped, with NoVantage (or a default) as the reason.
	Vantage   Vantage
	NoVantage string
}

// Plan is the probes of an environment, and the ones that could not be
// built, with why (usually: the service declares no address).
type Plan struct {
	Specs   []Spec
	Skipped []string
	// Vantage runs the specs that are InNetwork.
	Vantage Vantage
}

// draft is a probe before its checker is built: overrides from the
// stack file edit the config, then checker() builds it.
type draft struct {
	spec      Spec
	http      *HTTPConfig
	metrics   *MetricsConfig
	postgres  *PostgresConfig
	redis     *RedisConfig
	celery    *CeleryConfig
	prom      *PrometheusConfig
	am        *AlertmanagerConfig
	grafana   *GrafanaConfig
	container *ContainerConfig
}

// Build derives each service's natural probes from the stack, then
// applies the stack's probe blocks: tuning a derived probe by name,
// turning it off (enabled = false), or adding a new one.
func Build(opts BuildOptions) (Plan, error) {
	b := &builder{stack: opts.Stack, secrets: opts.Secrets, docker: opts.Docker, inNetwork: opts.Vantage != nil, noVantage: opts.NoVantage}
	b.web()
	b.site()
	b.database()
	b.redis()
	b.celery()
	b.monitoring()
	b.containers()
	if b.err != nil {
		return Plan{}, b.err
	}
	if err := b.applyOverrides(); err != nil {
		return Plan{}, err
	}
	plan := Plan{Skipped: b.skipped, Vantage: opts.Vantage}
	for _, d := range b.drafts {
		d.spec.Check = d.checker()
		if d.container == nil {
			d.spec.Config = d.config()
		}
		plan.Specs = append(plan.Specs, d.spec)
	}
	return plan, nil
}

type builder struct {
	stack   *stackhcl.Stack
	secrets templates.SecretSource
	docker  ContainerAPI
	drafts  []*draft
	skipped []string
	err     error
	// inNetwork: services without an address are probed by name and
	// port on the environment's network, through the vantage.
	inNetwork bool
	noVantage string
}

func (b *builder) add(d *draft) { b.drafts = append(b.drafts, d) }

func (b *builder) skip(format string, args ...any) {
	b.skipped = append(b.skipped, fmt.Sprintf(format, args...))
}

func (b *builder) secret(name string) string {
	if name == "" || b.secrets == nil {
		return ""
	}
	v, err := b.secrets.Value(name)
	if err != nil && b.err == nil {
		b.err = err
	}
	return v
}

// endpoint is where a probe reaches a service.
type endpoint struct {
	addr      string // host:port
	inNetwork bool   // a name and port on the environment's network, reached through the vantage
}

// reachable is where probes reach svc: its declared address, from here
// (address is the override for probing from outside); else its name and
// port on the environment's network, through the in-network agent. A
// service with neither is skipped, with why.
func (b *builder) reachable(svc *stackhcl.Service, what string) (endpoint, bool) {
	switch {
	case svc.Address != "":
		return endpoint{addr: svc.Address}, true
	case b.inNetwork && svc.Port > 0:
		return endpoint{addr: net.JoinHostPort(svc.Name, strconv.Itoa(svc.Port)), inNetwork: true}, true
	case svc.Port == 0:
		b.skip("%s: service %q listens on no port (set port, or address = \"host:port\" where obcd can reach it)", what, svc.Name)
	default:
		why := cmp.Or(b.noVantage, "obcd has no in-network agent here")
		b.skip("%s: service %q declares no address, and it cannot be probed from inside the network: %s (set address = \"host:port\" where obcd can reach it)", what, svc.Name, why)
	}
	return endpoint{}, false
}

// at marks d as reaching its service at ep, and adds it.
func (b *builder) at(ep endpoint, d *draft) {
	d.spec.InNetwork = ep.inNetwork
	b.add(d)
}

func spec(name, kind, target, component string, critical bool) Spec {
	return Spec{Name: name, Kind: kind, Target: target, Component: component, Critical: critical}
}

func (b *builder) web() {
	web := b.stack.First(stackhcl.KindWeb)
	if web == nil {
		return
	}
	ep, ok := b.reachable(web, "web probes")
	if !ok {
		return
	}
	base := "http://" + ep.addr
	b.at(ep, &draft{spec: spec("web-health", "http", base+"/health/", ComponentWeb, true),
		http: &HTTPConfig{URL: base + "/health/"}})
	ready := map[string]any{"database": true}
	if b.stack.Django.Cache != "" {
		ready["cache"] = true
	}
	b.at(ep, &draft{spec: spec("web-ready", "http", base+"/ready/", ComponentWeb, true),
		http: &HTTPConfig{URL: base + "/ready/", ExpectJSON: ready}})
	if b.stack.Django.Metrics.Enabled {
		u := base + b.stack.Django.Metrics.Path
		b.at(ep, &draft{spec: spec("web-metrics", "metrics", u, ComponentPrometheus, true),
			metrics: &MetricsConfig{URL: u, Require: DjangoMetrics}})
	}
}

// site probes the public URL through nginx: HTTPS with HSTS, the
// redirect from HTTP, and a bad Host header being refused.
func (b *builder) site() {
	if b.stack.First(stackhcl.KindNginx) == nil || b.stack.PublicURL == "" {
		return
	}
	public, err := url.Parse(b.stack.PublicURL)
	if err != nil || public.Host == "" {
		b.skip("site probes: public_url %q is not a URL", b.stack.PublicURL)
		return
	}
	root := strings.TrimSuffix(public.String(), "/")
	b.add(&draft{spec: spec("site-https", "http", root+"/health/", ComponentWeb, true),
		http: &HTTPConfig{URL: root + "/health/", ExpectHeaders: map[string]string{"Strict-Transport-Security": "max-age="}}})
	b.add(&draft{spec: spec("site-bad-host", "http", root+"/", ComponentWeb, false),
		http: &HTTPConfig{URL: root + "/", BadHostRejected: true}})
	if public.Port() == "" {
		plain := "http://" + public.Hostname() + "/"
		b.add(&draft{spec: spec("site-redirect", "http", plain, ComponentWeb, false),
			http: &HTTPConfig{URL: plain, RedirectToHTTPS: true}})
	} else {
		b.skip("site-redirect: public_url has a port, so the HTTP address is unknown; add probe \"site-redirect\" { type = \"http\", url = \"http://...\", redirect_to_https = true }")
	}
}

func (b *builder) database() {
	dj := b.stack.Django
	pool := b.stack.Service(dj.Database)
	if pool == nil {
		return
	}
	primary := pool
	if pool.PgBouncer != nil {
		primary = b.stack.Service(pool.PgBouncer.Server)
	}
	if primary == nil || primary.Postgres == nil {
		return
	}
	dbName := primary.Postgres.Database
	if ep, ok := b.reachable(pool, "database probes"); ok {
		addr := ep.addr
		if pool.PgBouncer != nil {
			for _, u := range pool.PgBouncer.Users {
				b.at(ep, &draft{spec: spec("pgbouncer-login-"+u.Name, "postgres", addr, ComponentDatabase, true),
					postgres: &PostgresConfig{Mode: PostgresLogin, Addr: addr, User: u.Name, Password: b.secret(u.Password), Database: dbName}})
			}
		}
		if user := b.appUser(pool); user != nil {
			b.at(ep, &draft{spec: spec("db-migrations", "postgres", addr, ComponentDatabase, true),
				postgres: &PostgresConfig{Mode: PostgresMigrations, Addr: addr, User: user.Name, Password: b.secret(user.Password),
					Database: dbName, ExpectMigrations: -1}})
		}
	}
	if primary.Replicas > 0 {
		if ep, ok := b.reachable(primary, "replication probe"); ok {
			addr := ep.addr
			user, password := "postgres", b.secret(primary.Postgres.SuperuserPassword)
			b.at(ep, &draft{spec: spec("db-replication", "postgres", addr, ComponentDatabase, true),
				postgres: &PostgresConfig{Mode: PostgresReplication, Addr: addr, User: user, Password: password,
					Database: dbName, Replicas: primary.ReplicaNames()}})
		}
	}
}

// appUser is the role the app logs in as, from the pool's user list.
func (b *builder) appUser(pool *stackhcl.Service) *stackhcl.PgUser {
	if pool.PgBouncer == nil {
		return nil
	}
	return pool.PgBouncer.User(b.stack.Django.DBUser)
}

func (b *builder) redis() {
	cache := b.stack.Service(b.stack.Django.Cache)
	if cache == nil {
		return
	}
	if ep, ok := b.reachable(cache, "redis probe"); ok {
		b.at(ep, &draft{spec: spec("redis-roundtrip", "redis", ep.addr, ComponentRedis, true), redis: &RedisConfig{Addr: ep.addr, MaxMemoryRatio: memoryRatio(cache)}})
	}
}

// memoryRatio is the share of maxmemory the round trip tolerates: a
// cache that evicts (allkeys-lru and the like) normally runs close to its
// limit, so only a noeviction Redis, which refuses writes when full, is
// held to 90%.
func memoryRatio(cache *stackhcl.Service) float64 {
	if cache.Redis != nil && cache.Redis.MaxMemoryPolicy != "" && cache.Redis.MaxMemoryPolicy != "noeviction" {
		return 1.01 // above 1: never a failure
	}
	return 0.9
}

// celery proves workers are alive: through the celery exporter when it
// has an address, else by listening for heartbeats on the broker.
func (b *builder) celery() {
	workers := 0
	for _, svc := range b.stack.ServicesOf(stackhcl.KindCeleryWorker) {
		workers += svc.Replicas
	}
	if workers == 0 {
		return
	}
	for _, exp := range b.stack.ServicesOf(stackhcl.KindExporter) {
		if exp.Exporter.Type != stackhcl.ExporterCelery || (exp.Address == "" && !b.inNetwork) {
			continue
		}
		if ep, ok := b.reachable(exp, "celery probe"); ok {
			u := "http://" + ep.addr + "/metrics"
			b.at(ep, &draft{spec: spec("celery-workers", "celery", u, ComponentCelery, false),
				celery: &CeleryConfig{ExporterURL: u, MinWorkers: workers}})
			return
		}
	}
	broker := b.stack.Service(b.stack.Django.Broker)
	if broker == nil {
		return
	}
	if ep, ok := b.reachable(broker, "celery probe"); ok {
		b.at(ep, &draft{spec: spec("celery-workers", "celery", ep.addr, ComponentCelery, false),
			celery: &CeleryConfig{BrokerAddr: ep.addr, MinWorkers: workers}})
	}
}

func (b *builder) monitoring() {
	if prom := b.stack.First(stackhcl.KindPrometheus); prom != nil {
		if ep, ok := b.reachable(prom, "prometheus probes"); ok {
			base := "http://" + ep.addr
			b.at(ep, &draft{spec: spec("prometheus-targets", "prometheus", base, ComponentPrometheus, true),
				prom: &PrometheusConfig{URL: base, Mode: PrometheusTargets, ExpectJobs: templates.PrometheusJobs(b.stack),
					Discovered: templates.PrometheusDiscoveredJobs(b.stack)}})
			b.at(ep, &draft{spec: spec("prometheus-rules", "prometheus", base, ComponentPrometheus, true),
				prom: &PrometheusConfig{URL: base, Mode: PrometheusRules}})
			if b.stack.First(stackhcl.KindAlertmanager) != nil {
				b.at(ep, &draft{spec: spec("prometheus-alertmanagers", "prometheus", base, ComponentAlertmanager, false),
					prom: &PrometheusConfig{URL: base, Mode: PrometheusAlertmanagers}})
			}
		}
	}
	if am := b.stack.First(stackhcl.KindAlertmanager); am != nil {
		if ep, ok := b.reachable(am, "alertmanager probe"); ok {
			b.at(ep, &draft{spec: spec("alertmanager-ready", "alertmanager", "http://"+ep.addr, ComponentAlertmanager, false),
				am: &AlertmanagerConfig{URL: "http://" + ep.addr}})
		}
	}
	if g := b.stack.First(stackhcl.KindGrafana); g != nil {
		if ep, ok := b.reachable(g, "grafana probe"); ok {
			b.at(ep, &draft{spec: spec("grafana", "grafana", "http://"+ep.addr, ComponentGrafana, false),
				grafana: &GrafanaConfig{URL: "http://" + ep.addr, User: g.Grafana.AdminUser,
					Password: b.secret(g.Grafana.AdminPassword), Dashboards: templates.GrafanaDashboardUIDs(b.stack)}})
		}
	}
}

// containers checks the Docker health of every long-running service.
func (b *builder) containers() {
	if b.docker == nil {
		return
	}
	var services []string
	for _, svc := range b.stack.Services {
		if svc.Replicas > 0 || svc.Kind == stackhcl.KindPostgres {
			services = append(services, svc.Name)
		}
		services = append(services, svc.ReplicaNames()...)
	}
	sort.Strings(services)
	project := templates.ProjectName(b.stack)
	b.add(&draft{spec: spec("containers", "container", "project "+project, ComponentWeb, true),
		container: &ContainerConfig{Docker: b.docker, Project: project, Services: services}})
}

func (d *draft) checker() Checker {
	if d.container != nil {
		return Container(*d.container)
	}
	return d.config().Checker(d.spec.Name)
}

// config is the draft's check as data.
func (d *draft) config() *Config {
	return &Config{HTTP: d.http, Metrics: d.metrics, Postgres: d.postgres, Redis: d.redis, Celery: d.celery,
		Prometheus: d.prom, Alertmanager: d.am, Grafana: d.grafana}
}

// newDraft makes a probe the stack adds: its type decides the checker,
// its target or url where it points.
func (b *builder) newDraft(pc *stackhcl.ProbeConfig) (*draft, error) {
	if pc.Type == nil {
		return nil, fmt.Errorf("%s: probe %q is not one obcd derives, so it needs type = \"http\" (or another probe type)", pc.DeclRange, pc.Name)
	}
	target, inNetwork := "", false
	if pc.URL != nil {
		target = *pc.URL
	} else if pc.Target != "" {
		svc := b.stack.Service(pc.Target)
		if svc == nil {
			return nil, fmt.Errorf("%s: probe %q targets service %q, which the stack does not declare", pc.DeclRange, pc.Name, pc.Target)
		}
		switch {
		case svc.Address != "":
			target = svc.Address
		case b.inNetwork && svc.Port > 0:
			target, inNetwork = net.JoinHostPort(svc.Name, strconv.Itoa(svc.Port)), true
		default:
			return nil, fmt.Errorf("%s: probe %q targets service %q, which declares no address and cannot be probed from inside the network here (%s); set address on the service or url on the probe",
				pc.DeclRange, pc.Name, pc.Target, cmp.Or(b.noVantage, "no in-network agent"))
		}
	} else {
		return nil, fmt.Errorf("%s: probe %q needs url = \"...\" or target = service.<name>", pc.DeclRange, pc.Name)
	}
	d := &draft{spec: spec(pc.Name, *pc.Type, target, componentFor(*pc.Type), true)}
	d.spec.InNetwork = inNetwork
	base := target
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	switch *pc.Type {
	case "http":
		d.http = &HTTPConfig{URL: base}
	case "metrics":
		d.metrics = &MetricsConfig{URL: base}
	case "postgres":
		d.postgres = &PostgresConfig{Mode: PostgresRecovery, Addr: strings.TrimPrefix(base, "http://"), User: "postgres",
			Password: b.secret(b.superuserSecret()), Database: "postgres"}
	case "redis":
		d.redis = &RedisConfig{Addr: strings.TrimPrefix(base, "http://")}
	case "prometheus":
		d.prom = &PrometheusConfig{URL: base, Mode: PrometheusTargets}
	case "alertmanager":
		d.am = &AlertmanagerConfig{URL: base}
	case "grafana":
		d.grafana = &GrafanaConfig{URL: base}
	case "celery":
		d.celery = &CeleryConfig{ExporterURL: base + "/metrics"}
	default:
		return nil, fmt.Errorf("%s: probe %q: type %q cannot be added by hand", pc.DeclRange, pc.Name, *pc.Type)
	}
	return d, b.err
}

func (b *builder) superuserSecret() string {
	if pg := b.stack.First(stackhcl.KindPostgres); pg != nil {
		return pg.Postgres.SuperuserPassword
	}
	return ""
}

func componentFor(kind string) string {
	switch kind {
	case "postgres":
		return ComponentDatabase
	case "redis":
		return ComponentRedis
	case "metrics", "prometheus":
		return ComponentPrometheus
	case "celery":
		return ComponentCelery
	case "alertmanager":
		return ComponentAlertmanager
	case "grafana":
		return ComponentGrafana
	default:
		return ComponentWeb
	}
}
