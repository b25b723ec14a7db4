package hcl

import (
	"fmt"
	"regexp"
	"time"

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
	return v.diags
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
	if svc.Memory != "" && !memorySize.MatchString(svc.Memory) {
		v.errorAt(at("memory"), "Invalid memory limit", "%q is not a size; write it as 512M or 2G.", svc.Memory)
	}
	if svc.CPUs < 0 {
		v.errorAt(at("cpus"), "Invalid cpus", "cpus must be positive, such as 0.5 or 2.")
	}
	if svc.Image == "" {
		v.errorAt(at("image"), "Missing image", "Service %q has no image; set image = \"repository:tag\".", svc.Name)
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
}

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
		if len(r.Email) > 0 && (m.SMTPSmarthost == "" || m.SMTPFrom == "") {
			v.errorAt(r.DeclRange, "Email receiver without SMTP", "Receiver %q sends email; set smtp_smarthost and smtp_from in the monitoring block.", r.Name)
		}
	}
	for _, ref := range []struct{ name, value string }{{"default_receiver", m.DefaultReceiver}, {"critical_receiver", m.CriticalReceiver}} {
		if ref.value != "" && !names[ref.value] {
			v.errorAt(subject, "Unknown receiver", "%s = %q, but no receiver block has that name.", ref.name, ref.value)
		}
	}
}
