package hcl

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
	"github.com/hashicorp/hcl/v2"
)

// validateStack links defaults that depend on other services and checks
// what a schema cannot: allowed values, cross-references between blocks
// and settings that only make sense together. It runs once the stack has
// decoded without errors.
func validateStack(s *Stack) hcl.Diagnostics {
	v := &validator{stack: s}
	v.linkDefaults()
	for _, svc := range s.Services {
		v.service(svc)
	}
	v.django()
	v.monitoring()
	v.renderedSize()
	v.singletons()
	return v.diags
}

// singletonKinds are the kinds a stack has at most one service of: their
// config files have fixed paths, and obcd's probes and rules take the
// first of each; a second Celery beat sends every periodic task twice.
var singletonKinds = []Kind{KindPostgres, KindPgBouncer, KindNginx, KindPrometheus, KindAlertmanager, KindGrafana, KindBackup, KindCeleryBeat}

// singletons refuses a second service of a singleton kind, at it.
func (v *validator) singletons() {
	for _, kind := range singletonKinds {
		if svcs := v.stack.ServicesOf(kind); len(svcs) > 1 {
			if kind == KindCeleryBeat {
				for _, extra := range svcs[1:] {
					v.errorAt(extra.DeclRange, "A second celery_beat service",
						"Services %q and %q are both celery_beat: two beat schedulers send every periodic task twice (celery#2856). Keep one; its replicas stay at 1.",
						svcs[0].Name, extra.Name)
				}
				continue
			}
			for _, extra := range svcs[1:] {
				v.errorAt(extra.DeclRange, "A second "+string(kind)+" service",
					"Services %q and %q are both %s: a stack has at most one, because its config files have fixed paths and obcd's probes use the first. For more capacity use replicas (PostgreSQL's are streaming replicas); for a second database, use a second stack.",
					svcs[0].Name, extra.Name, kind)
			}
		}
	}
}

// MaxRenderedEnv bounds the environment values a render writes: each
// service's env, and django.settings once for every service that runs
// Django. A value of megabytes (a file() read into env) given to a
// thousand services would otherwise render gigabytes.
const MaxRenderedEnv = 16 << 20

// renderedSize refuses a stack whose env and settings would render more
// than MaxRenderedEnv, pointing at the service that adds the most.
func (v *validator) renderedSize() {
	settings := 0
	for k, value := range v.stack.Django.Settings {
		settings += len(k) + len(value)
	}
	total, most := 0, 0
	var largest *Service
	for _, svc := range v.stack.Services {
		size := 0
		for k, value := range svc.Env {
			size += len(k) + len(value)
		}
		if svc.Kind == KindWeb || svc.Kind == KindCeleryWorker || svc.Kind == KindCeleryBeat {
			size += settings
		}
		total += size
		if size > most {
			most, largest = size, svc
		}
	}
	if total > MaxRenderedEnv && largest != nil {
		v.errorAt(rangeOr(largest.Ranges, "env", largest.DeclRange), "Rendered environment too large",
			"The services' env and django.settings would render %d MB of environment values, past obcd's bound of %d MB; service %q adds the most (%d KB). Environment variables carry settings: put data in a file the service reads instead.",
			total>>20, MaxRenderedEnv>>20, largest.Name, most>>10)
	}
}

type validator struct {
	stack *Stack
	diags hcl.Diagnostics
}

func (v *validator) errorAt(subject hcl.Range, summary, detail string, args ...any) {
	v.diags = append(v.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detail, args...), Subject: subject.Ptr(),
	})
}

// credentialAt is errorAt for a diagnostic about a literal credential:
// its snippet would print the line, and so the credential.
func (v *validator) credentialAt(subject hcl.Range, summary, detail string, args ...any) {
	v.errorAt(subject, summary, detail, args...)
	v.diags[len(v.diags)-1].Extra = unquoted{}
}

// linkDefaults points references the file left out at the only sensible
// service: nginx proxies the first web service, pgbouncer pools the first
// postgres, and so on.
func (v *validator) linkDefaults() {
	s := v.stack
	firstName := func(kind Kind) string {
		if svc := s.First(kind); svc != nil {
			return svc.Name
		}
		return ""
	}
	for _, svc := range s.Services {
		switch {
		case svc.Nginx != nil && svc.Nginx.Upstream == "":
			svc.Nginx.Upstream = firstName(KindWeb)
		case svc.PgBouncer != nil && svc.PgBouncer.Server == "":
			svc.PgBouncer.Server = firstName(KindPostgres)
		case svc.Backup != nil && svc.Backup.Database == "":
			svc.Backup.Database = firstName(KindPostgres)
		}
	}
}

var (
	promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
	memorySize   = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?[bkmgBKMG]?$`)
)

// credentialKey says whether an environment key names a credential, by
// the words the renderer refuses in settings (PASSWORD, SECRET, TOKEN)
// and a few more.
func credentialKey(key string) bool {
	upper := strings.ToUpper(key)
	for _, word := range []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "PRIVATE_KEY", "ACCESS_KEY"} {
		if strings.Contains(upper, word) {
			return true
		}
	}
	return false
}

// MaxReplicas bounds a service's replica count.
const MaxReplicas = 1000

// checkPort parses a ports entry as the renderer does (compose's short
// syntax), and wants every port in it within 1..65535.
func checkPort(entry string) error {
	configs, err := types.ParsePortConfig(entry)
	if err != nil {
		return err
	}
	if len(configs) == 0 {
		return fmt.Errorf("no port in it")
	}
	for _, c := range configs {
		if c.Target < 1 || c.Target > 65535 {
			return fmt.Errorf("container port %d is outside 1-65535", c.Target)
		}
		if c.Published != "" {
			n, err := strconv.Atoi(c.Published)
			if err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("published port %q is outside 1-65535", c.Published)
			}
		}
	}
	return nil
}

// swarmPortProblem says why a swarm cannot publish a valid ports entry
// as it is written, or "": it publishes in host mode (the routing mesh
// needs IPVS) on every address of the node, one port to one port.
func swarmPortProblem(entry string) string {
	configs, err := types.ParsePortConfig(entry)
	if err != nil || len(configs) == 0 {
		return ""
	}
	if len(configs) > 1 {
		return "a range; write one entry per port"
	}
	switch c := configs[0]; {
	case c.HostIP != "" && c.HostIP != "0.0.0.0" && c.HostIP != "::":
		return fmt.Sprintf("it binds the address %s; leave the address out, or keep the service behind the edge proxy", c.HostIP)
	case c.Published == "":
		return "it publishes on a random host port; name the host port"
	}
	return ""
}

func (v *validator) service(svc *Service) {
	at := func(attr string) hcl.Range { return rangeOr(svc.Ranges, attr, svc.DeclRange) }
	if svc.Replicas < 0 {
		v.errorAt(at("replicas"), "Invalid replicas", "Service %q asks for %d replicas; use 0 or more.", svc.Name, svc.Replicas)
	}
	if svc.Kind == KindCeleryBeat && svc.Replicas != 1 {
		v.errorAt(at("replicas"), "Celery beat must run exactly once",
			"Service %q has %d replicas. Two beat schedulers send every periodic task twice; remove the replicas argument.", svc.Name, svc.Replicas)
	}
	if svc.Kind == KindWeb && svc.Replicas < 1 {
		v.errorAt(at("replicas"), "No web replicas", "Service %q needs at least one replica to serve requests.", svc.Name)
	}
	if svc.Replicas > MaxReplicas {
		v.errorAt(at("replicas"), "Too many replicas", "Service %q asks for %d replicas; obcd runs at most %d of one service.", svc.Name, svc.Replicas, MaxReplicas)
	}
	for _, key := range slices.Sorted(maps.Keys(svc.Env)) {
		if svc.Env[key] != "" && credentialKey(key) {
			v.credentialAt(at("env"), "Literal credential in env", "Service %q: env key %s looks like a credential, and the compose file that carries env is readable by anyone (0644). Declare a secret block and pass it through an argument that takes one, or rename the key if it is not a secret.", svc.Name, key)
		}
	}
	for _, p := range svc.Ports {
		if err := checkPort(p); err != nil {
			v.errorAt(at("ports"), "Invalid port", "Service %q: ports entry %q: %v. Write it as \"HOST_PORT:CONTAINER_PORT\", optionally with an address first (\"127.0.0.1:8080:80\") and /tcp or /udp after, with ports from 1 to 65535.", svc.Name, p, err)
		} else if why := swarmPortProblem(p); why != "" && v.stack.Engine == EngineSwarm {
			v.errorAt(at("ports"), "Port a swarm cannot publish", "Service %q: ports entry %q: %s. The environment runs on a swarm (engine = \"swarm\"), which publishes one port on every address of the node that runs the task.", svc.Name, p, why)
		}
	}
	if svc.Memory != "" && !memorySize.MatchString(svc.Memory) {
		v.errorAt(at("memory"), "Invalid memory limit", "%q is not a size; write it as 512M or 2G.", svc.Memory)
	}
	if svc.CPUs < 0 {
		v.errorAt(at("cpus"), "Invalid cpus", "cpus must be positive, such as 0.5 or 2.")
	}
	if svc.Image == "" {
		v.errorAt(at("image"), "Missing image", "Service %q has no image; set image = \"repository:tag\".", svc.Name)
	} else if _, err := reference.ParseNormalizedNamed(svc.Image); err != nil {
		v.errorAt(at("image"), "Invalid image reference", "Service %q: image %q is not an image reference (%v). Write it as repository:tag, such as \"postgres:15-bookworm\" or \"registry.example.org/obcms/app:1.2.0\", in lower case.", svc.Name, svc.Image, err)
	}
	switch {
	case svc.Postgres != nil:
		v.postgres(svc, at)
	case svc.PgBouncer != nil:
		v.pgbouncer(svc, at)
	case svc.Backup != nil:
		if _, err := time.ParseDuration(svc.Backup.Interval); err != nil {
			v.errorAt(at("interval"), "Invalid backup interval", "%q is not a duration; write it as 24h or 6h30m.", svc.Backup.Interval)
		}
		if svc.Backup.KeepDays < 1 {
			v.errorAt(at("keep_days"), "Invalid keep_days", "Backups must be kept at least 1 day.")
		}
		if svc.Backup.Database == "" {
			v.errorAt(svc.DeclRange, "Backup without a database", "Declare a postgres service, or set database = service.<name>.")
		}
	case svc.Nginx != nil && svc.Nginx.Upstream == "":
		v.errorAt(svc.DeclRange, "Nginx without upstream", "Declare a web service for nginx to proxy, or set upstream = service.<name>.")
	}
}

func (v *validator) postgres(svc *Service, at func(string) hcl.Range) {
	pg := svc.Postgres
	if pg.SuperuserPassword == "" {
		v.errorAt(svc.DeclRange, "Missing superuser password",
			"Postgres service %q needs superuser_password = secret.<name>; declare the secret and run obcd secrets init.", svc.Name)
	}
	if pg.MaxConnections < 10 {
		v.errorAt(at("max_connections"), "max_connections too low", "Postgres needs at least 10 connections; the default is 100.")
	}
	if sec := v.stack.Secret(pg.ReplicationPassword); sec != nil && svc.Replicas > 0 && sec.Length > MaxReplicationPassword {
		v.errorAt(sec.DeclRange, "Replication password too long",
			"Secret %q would be generated with %d characters, and it is the replication password of %q: a replica's primary_conninfo holds at most 1024 bytes, so with a longer password the replica never streams while its healthcheck stays green. Use a length of at most %d.",
			sec.Name, sec.Length, svc.Name, MaxReplicationPassword)
	}
}

// MaxReplicationPassword is the longest replication password that fits,
// with the host, port, user, application name and options, in
// PostgreSQL's 1024-byte primary_conninfo.
const MaxReplicationPassword = 512

func (v *validator) pgbouncer(svc *Service, at func(string) hcl.Range) {
	pb := svc.PgBouncer
	if !oneOf(pb.PoolMode, []string{"session", "transaction", "statement"}) {
		v.errorAt(at("pool_mode"), "Unknown pool_mode", "%q is not session, transaction or statement.", pb.PoolMode)
	}
	if !oneOf(pb.AuthType, []string{"scram-sha-256", "md5"}) {
		v.errorAt(at("auth_type"), "Unknown auth_type", "%q is not \"scram-sha-256\" (the default) or \"md5\".", pb.AuthType)
	}
	if pb.Server == "" {
		v.errorAt(svc.DeclRange, "PgBouncer without a server", "Declare a postgres service, or set server = service.<name>.")
	}
	if len(pb.Users) == 0 {
		v.errorAt(svc.DeclRange, "PgBouncer without users",
			"Declare at least one user \"name\" { password = secret.<name> } block; PgBouncer authenticates every login against them.")
	}
	for _, u := range pb.Users {
		if u.Password == "" {
			v.errorAt(u.DeclRange, "PgBouncer user without a password",
				"User %q of %q has no password: set password = secret.<name> in its block; PgBouncer and PostgreSQL authenticate the role with it.", u.Name, svc.Name)
		}
	}
}

func (v *validator) django() {
	dj := v.stack.Django
	at := func(attr string) hcl.Range { return rangeOr(dj.Ranges, attr, dj.DeclRange) }
	if svc := v.stack.Service(dj.Database); svc != nil && svc.PgBouncer != nil {
		for _, attr := range []struct{ name, user string }{{"db_user", dj.DBUser}, {"migrate_user", dj.MigrateUser}} {
			if attr.user != "" && svc.PgBouncer.User(attr.user) == nil {
				v.errorAt(at(attr.name), "Unknown database user",
					"%s = %q, but pgbouncer service %q declares no such user. Add user %q { password = secret.<name> } to it.",
					attr.name, attr.user, svc.Name, attr.user)
			}
		}
	}
	for _, dep := range []struct{ attr, name string }{{"database", dj.Database}, {"cache", dj.Cache}, {"broker", dj.Broker}} {
		svc := v.stack.Service(dep.name)
		if svc == nil || svc.Kind == KindPostgres || svc.Replicas > 0 {
			continue // a postgres service's replicas are its streaming replicas; the primary always runs
		}
		v.errorAt(rangeOr(svc.Ranges, "replicas", svc.DeclRange), "A service Django needs runs no replica",
			"django.%s is service %q, which has replicas = %d: nothing would answer Django. Give it at least 1 replica, or point django.%s at a service that runs.", dep.attr, svc.Name, svc.Replicas, dep.attr)
	}
	for _, key := range slices.Sorted(maps.Keys(dj.Settings)) {
		if dj.Settings[key] != "" && credentialKey(key) {
			v.credentialAt(at("settings"), "Literal credential in settings", "django.settings key %s looks like a credential, and the env file it goes to is readable by anyone (0644). Declare a secret block instead, or rename the key if it is not a secret.", key)
		}
	}
	if !oneOf(dj.MediaStorage, []string{"local", "s3"}) {
		v.errorAt(at("media_storage"), "Unknown media_storage", "%q is not \"local\" or \"s3\".", dj.MediaStorage)
	}
	if dj.SessionEngine != "" && !oneOf(dj.SessionEngine, []string{"cache", "db", "signed_cookies"}) {
		v.errorAt(at("session_engine"), "Unknown session_engine", "%q is not cache, db or signed_cookies.", dj.SessionEngine)
	}
	if dj.CacheBackend != "" && !oneOf(dj.CacheBackend, []string{"redis", "locmem", "db", "memcached", "dummy"}) {
		v.errorAt(at("cache_backend"), "Unknown cache_backend", "%q is not redis, locmem, db, memcached or dummy.", dj.CacheBackend)
	}
	if dj.CacheBackend == "redis" && dj.Cache == "" {
		v.errorAt(at("cache_backend"), "Redis cache without a redis service", "cache_backend = \"redis\" needs cache = service.<redis>.")
	}
	if !oneOf(dj.Logging.Rotation, []string{"", "time", "size"}) {
		v.errorAt(at("logging.rotation"), "Unknown logging rotation", "%q is not \"time\" or \"size\".", dj.Logging.Rotation)
	}
	if dj.SessionEngine == "cache" && dj.Cache == "" {
		v.errorAt(at("session_engine"), "Cache sessions without a cache", "session_engine = \"cache\" needs cache = service.<redis>.")
	}
	if !oneOf(dj.Logging.Output, []string{"stdout", "file"}) {
		v.errorAt(dj.DeclRange, "Unknown logging output", "%q is not \"stdout\" or \"file\".", dj.Logging.Output)
	}
}

func (v *validator) monitoring() {
	m := v.stack.Monitoring
	subject := m.DeclRange
	if subject.Filename == "" {
		subject = v.stack.DeclRange
	}
	for _, d := range []struct{ name, value string }{
		{"retention", m.Retention}, {"scrape_interval", m.ScrapeInterval}, {"evaluation_interval", m.EvaluationInterval},
	} {
		if !promDuration.MatchString(d.value) {
			v.errorAt(subject, "Invalid "+d.name, "%q is not a Prometheus duration; write it as 15s, 7d or 30d.", d.value)
		}
	}
	names := map[string]bool{}
	for _, r := range m.Receivers {
		names[r.Name] = true
		if len(r.Email) == 0 && r.WebhookURL == "" {
			v.errorAt(r.DeclRange, "Receiver without a destination", "Receiver %q needs email = [...] or webhook_url.", r.Name)
		}
		if why := checkHTTPURL(r.WebhookURL); r.WebhookURL != "" && why != "" {
			v.errorAt(r.DeclRange, "Invalid webhook_url", "Receiver %q: webhook_url = %q: %s; Alertmanager refuses its configuration. Write the endpoint's absolute URL, such as https://hooks.example.org/alertmanager.", r.Name, r.WebhookURL, why)
		}
		if len(r.Email) > 0 && (m.SMTPSmarthost == "" || m.SMTPFrom == "") {
			v.errorAt(r.DeclRange, "Email receiver without SMTP", "Receiver %q sends email; set smtp_smarthost and smtp_from in the monitoring block.", r.Name)
		}
	}
	if why := checkHostPort(m.SMTPSmarthost); m.SMTPSmarthost != "" && why != "" {
		v.errorAt(subject, "Invalid smtp_smarthost", "smtp_smarthost = %q: %s; Alertmanager refuses its configuration. Write the mail server as smtp.example.org:587.", m.SMTPSmarthost, why)
	}
	for _, ref := range []struct{ name, value string }{{"default_receiver", m.DefaultReceiver}, {"critical_receiver", m.CriticalReceiver}} {
		if ref.value != "" && !names[ref.value] {
			v.errorAt(subject, "Unknown receiver", "%s = %q, but no receiver block has that name.", ref.name, ref.value)
		}
	}
}
