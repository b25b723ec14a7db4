package templates

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	stackhcl "github.com/obcd/obcd/hcl"
)

// app wires a Django container (web, celery, migrate): the env file, the
// secrets it reads, and the services it needs healthy first.
func (b *composeBuilder) app(sc *types.ServiceConfig, dbUser string) {
	s, dj := b.stack, b.stack.Django
	sc.EnvFiles = []types.EnvFile{{Path: EnvFilePath(s.Environment), Required: true}}
	b.secretEnv(sc, "SECRET_KEY", dj.SecretKey)
	b.secretEnv(sc, "FIELD_ENCRYPTION_KEY", dj.FieldEncryptionKey)
	b.secretEnv(sc, "SENTRY_DSN", dj.Sentry.DSN)
	if user := b.dbUser(dbUser); user != nil {
		b.secretEnv(sc, "DB_PASSWORD", user.Password)
	}
	dependsOn(sc, dj.Database, dj.Cache, dj.Broker)
}

// dbUser finds a pgbouncer user of the app's database service.
func (b *composeBuilder) dbUser(name string) *stackhcl.PgUser {
	for _, svc := range b.stack.ServicesOf(stackhcl.KindPgBouncer) {
		if u := svc.PgBouncer.User(name); u != nil {
			return u
		}
	}
	return nil
}

func (b *composeBuilder) web(svc *stackhcl.Service, sc *types.ServiceConfig) {
	dj := b.stack.Django
	sc.Command = types.ShellCommand{"gunicorn", "--bind", fmt.Sprintf("0.0.0.0:%d", svc.Port),
		"--workers", itoa(svc.Web.Workers), "--timeout", itoa(svc.Web.Timeout),
		"--access-logfile", "-", "--error-logfile", "-", dj.WSGI}
	b.app(sc, dj.DBUser)
	b.afterMigrate(sc)
	sc.Deploy.UpdateConfig = &types.UpdateConfig{Order: "start-first", FailureAction: "rollback"}
	sc.StopGracePeriod = duration("30s")
	// Readiness, not liveness: a new web container joins the rotation
	// (and an old one leaves) only once it can reach its database and
	// cache, so a broken release never takes traffic.
	sc.HealthCheck = healthcheck([]string{"CMD", "python3", "-c",
		fmt.Sprintf("import urllib.request; urllib.request.urlopen('http://127.0.0.1:%d/ready/', timeout=4)", svc.Port)},
		"10s", "5s", 3, "30s")
	b.volume(sc, "static", ContainerStaticDir, false)
	if dj.MediaStorage == "local" {
		b.volume(sc, "media", ContainerMediaDir, false)
	}
}

// migrateService is the one-off job that migrates and collects static
// files before any web container starts.
const migrateService = "migrate"

func (b *composeBuilder) addMigrate(web *stackhcl.Service) {
	dj := b.stack.Django
	sc := b.base(web)
	sc.Name = migrateService
	one := 1
	sc.Deploy = &types.DeployConfig{Replicas: &one}
	sc.Restart = types.RestartPolicyNo
	sc.Command = types.ShellCommand{"sh", "-c", "python3 manage.py migrate --noinput && python3 manage.py collectstatic --noinput"}
	if len(dj.MigrateCommand) > 0 {
		sc.Command = dj.MigrateCommand
	}
	b.app(&sc, dj.MigrateUser)
	// Migrations take advisory locks and must not go through a
	// transaction-mode pool: connect to the primary directly.
	if primary := b.primaryOf(dj.Database); primary != nil {
		delete(sc.DependsOn, dj.Database)
		dependsOn(&sc, primary.Name)
		sc.Environment["DB_HOST"] = strPtr(primary.Name)
		sc.Environment["DB_PORT"] = strPtr(itoa(primary.Port))
		sc.Environment["DB_USER"] = strPtr(dj.MigrateUser)
	}
	b.volume(&sc, "static", ContainerStaticDir, false)
	b.project.Services[migrateService] = sc
}

// primaryOf returns the postgres service behind the app's database
// service (itself, or the server a pgbouncer pools).
func (b *composeBuilder) primaryOf(name string) *stackhcl.Service {
	svc := b.stack.Service(name)
	if svc != nil && svc.PgBouncer != nil {
		svc = b.stack.Service(svc.PgBouncer.Server)
	}
	if svc == nil || svc.Kind != stackhcl.KindPostgres {
		return nil
	}
	return svc
}

func (b *composeBuilder) nginx(svc *stackhcl.Service, sc *types.ServiceConfig) {
	b.mount(sc, PathNginx, ContainerNginxConf)
	b.volume(sc, "static", ContainerStaticDir, true)
	if b.stack.Django.MediaStorage == "local" {
		b.volume(sc, "media", ContainerMediaDir, true)
	}
	b.volume(sc, "nginx-tls", dirOf(svc.Nginx.TLSCert), true)
	b.volume(sc, "acme", ContainerACMEDir, true)
	dependsOn(sc, svc.Nginx.Upstream)
	sc.HealthCheck = healthcheck(httpCheck("curl", fmt.Sprintf("http://127.0.0.1:%d/nginx_status", svc.Nginx.StatusPort)),
		"10s", "5s", 3, "10s")
}

func (b *composeBuilder) postgres(svc *stackhcl.Service, sc *types.ServiceConfig) error {
	pg := svc.Postgres
	sc.Command = append(types.ShellCommand{"postgres"}, PostgresPrimaryArgs(svc)...)
	sc.Environment["POSTGRES_DB"] = strPtr(pg.Database)
	sc.Environment["POSTGRES_USER"] = strPtr("postgres")
	sc.Environment["PGDATA"] = strPtr(pgdata)
	b.secretEnv(sc, "POSTGRES_PASSWORD", pg.SuperuserPassword)
	b.mount(sc, PathPostgresHBA, ContainerPostgresConfDir+"/pg_hba.conf")
	b.mount(sc, PathPostgresRoles, ContainerPostgresInitDir+"/10-roles.sql")
	b.volume(sc, svc.Name+"-data", "/var/lib/postgresql/data", false)
	sc.StopGracePeriod = duration("60s")
	sc.HealthCheck = pgIsReady(svc.Port, pg.Database)
	for _, replica := range svc.ReplicaNames() {
		b.project.Services[replica] = b.replica(svc, replica)
	}
	return nil
}

const pgdata = "/var/lib/postgresql/data/pgdata"

func pgIsReady(port int, db string) *types.HealthCheckConfig {
	return healthcheck([]string{"CMD", "pg_isready", "-h", "127.0.0.1", "-p", itoa(port), "-U", "postgres", "-d", db},
		"5s", "5s", 5, "60s")
}

// replica is one streaming replica: bootstrapped by pg_basebackup -R into
// its own volume with its own slot, then started as a hot standby.
func (b *composeBuilder) replica(primary *stackhcl.Service, name string) types.ServiceConfig {
	sc := b.base(primary)
	sc.Name = name
	sc.User = "postgres"
	sc.Entrypoint = types.ShellCommand{"/bin/sh", ContainerPostgresConfDir + "/replica-entrypoint.sh"}
	// A hot standby refuses limits below the primary's, so it runs with
	// the primary's settings and its own cluster_name.
	sc.Command = append(types.ShellCommand{"postgres"}, PostgresReplicaArgs(primary, name)...)
	for k, v := range PostgresReplicaEnv(primary, name) {
		sc.Environment[k] = strPtr(v)
	}
	sc.Environment["PGDATA"] = strPtr(pgdata)
	b.secretEnv(&sc, "PGPASSWORD", primary.Postgres.ReplicationPassword)
	b.mount(&sc, PathPostgresReplica, ContainerPostgresConfDir+"/replica-entrypoint.sh")
	b.mount(&sc, PathPostgresHBA, ContainerPostgresConfDir+"/pg_hba.conf")
	b.volume(&sc, name+"-data", "/var/lib/postgresql/data", false)
	dependsOn(&sc, primary.Name)
	sc.StopGracePeriod = duration("60s")
	sc.HealthCheck = pgIsReady(primary.Port, primary.Postgres.Database)
	return sc
}

func (b *composeBuilder) pgbouncer(svc *stackhcl.Service, sc *types.ServiceConfig) {
	sc.Command = types.ShellCommand{"pgbouncer", ContainerPgBouncerDir + "/pgbouncer.ini"}
	b.mount(sc, PathPgBouncerIni, ContainerPgBouncerDir+"/pgbouncer.ini")
	b.mount(sc, PathPgBouncerUserlist, ContainerPgBouncerDir+"/userlist.txt")
	dependsOn(sc, svc.PgBouncer.Server)
	sc.HealthCheck = healthcheck([]string{"CMD", "pg_isready", "-h", "127.0.0.1", "-p", itoa(svc.Port)},
		"5s", "5s", 5, "10s")
}

func (b *composeBuilder) redis(svc *stackhcl.Service, sc *types.ServiceConfig) {
	cmd := types.ShellCommand{"redis-server", "--port", itoa(svc.Port), "--appendonly", "yes"}
	if svc.Redis.MaxMemory != "" {
		cmd = append(cmd, "--maxmemory", svc.Redis.MaxMemory, "--maxmemory-policy", svc.Redis.MaxMemoryPolicy)
	}
	sc.Command = cmd
	b.volume(sc, svc.Name+"-data", "/data", false)
	sc.HealthCheck = healthcheck([]string{"CMD", "redis-cli", "-p", itoa(svc.Port), "ping"}, "5s", "3s", 5, "5s")
}

func (b *composeBuilder) celery(svc *stackhcl.Service, sc *types.ServiceConfig) {
	dj, c := b.stack.Django, svc.Celery
	if svc.Kind == stackhcl.KindCeleryBeat {
		sc.Command = types.ShellCommand{"celery", "-A", dj.CeleryApp, "beat", "--loglevel", c.LogLevel,
			"--pidfile", "/tmp/celerybeat.pid", "--schedule", "/tmp/celerybeat-schedule"}
		sc.HealthCheck = healthcheck([]string{"CMD-SHELL", "kill -0 $$(cat /tmp/celerybeat.pid)"}, "30s", "5s", 3, "30s")
	} else {
		sc.Command = types.ShellCommand{"celery", "-A", dj.CeleryApp, "worker", "--loglevel", c.LogLevel,
			"--concurrency", itoa(c.Concurrency), "-Q", strings.Join(c.Queues, ","), "--events"}
		sc.HealthCheck = healthcheck([]string{"CMD-SHELL", "celery -A " + dj.CeleryApp + " inspect ping -d celery@$$HOSTNAME --timeout 5"},
			"30s", "10s", 3, "30s")
	}
	b.app(sc, dj.DBUser)
	b.afterMigrate(sc)
	sc.StopGracePeriod = duration("60s")
}

// afterMigrate makes an app container wait for the migrate job, which
// exists whenever the stack has a web service.
func (b *composeBuilder) afterMigrate(sc *types.ServiceConfig) {
	if b.stack.First(stackhcl.KindWeb) != nil {
		sc.DependsOn[migrateService] = types.ServiceDependency{Condition: types.ServiceConditionCompletedSuccessfully, Required: true}
	}
}

func (b *composeBuilder) prometheus(svc *stackhcl.Service, sc *types.ServiceConfig) {
	sc.Command = PrometheusArgs(b.stack)
	b.mount(sc, PathPrometheus, ContainerPrometheusDir+"/prometheus.yml")
	b.mountDir(sc, DirPrometheusRules, ContainerPrometheusDir+"/rules")
	b.volume(sc, svc.Name+"-data", "/prometheus", false)
	sc.HealthCheck = healthcheck(httpCheck("wget", fmt.Sprintf("http://127.0.0.1:%d/-/healthy", svc.Port)), "10s", "5s", 3, "30s")
}

func (b *composeBuilder) alertmanager(svc *stackhcl.Service, sc *types.ServiceConfig) {
	sc.Command = types.ShellCommand{"--config.file=" + ContainerAlertmanagerDir + "/alertmanager.yml",
		"--storage.path=/alertmanager", fmt.Sprintf("--web.listen-address=:%d", svc.Port)}
	b.mount(sc, PathAlertmanager, ContainerAlertmanagerDir+"/alertmanager.yml")
	b.volume(sc, svc.Name+"-data", "/alertmanager", false)
	sc.HealthCheck = healthcheck(httpCheck("wget", fmt.Sprintf("http://127.0.0.1:%d/-/healthy", svc.Port)), "10s", "5s", 3, "10s")
}

func (b *composeBuilder) grafana(svc *stackhcl.Service, sc *types.ServiceConfig) {
	sc.Environment["GF_SECURITY_ADMIN_USER"] = strPtr(svc.Grafana.AdminUser)
	sc.Environment["GF_USERS_ALLOW_SIGN_UP"] = strPtr("false")
	sc.Environment["GF_SERVER_HTTP_PORT"] = strPtr(itoa(svc.Port))
	b.secretEnv(sc, "GF_SECURITY_ADMIN_PASSWORD", svc.Grafana.AdminPassword)
	b.mountDir(sc, DirGrafanaDatasources, ContainerGrafanaProvision+"/datasources")
	b.mountDir(sc, DirGrafanaProviders, ContainerGrafanaProvision+"/dashboards")
	b.mountDir(sc, DirGrafanaDashboards, ContainerGrafanaDashboard)
	b.volume(sc, svc.Name+"-data", "/var/lib/grafana", false)
	if prom := b.stack.First(stackhcl.KindPrometheus); prom != nil {
		dependsOn(sc, prom.Name)
	}
	sc.HealthCheck = healthcheck(httpCheck("wget", fmt.Sprintf("http://127.0.0.1:%d/api/health", svc.Port)), "10s", "5s", 3, "30s")
}

func (b *composeBuilder) exporter(svc *stackhcl.Service, sc *types.ServiceConfig) {
	target := b.stack.Service(svc.Exporter.Target)
	listen := fmt.Sprintf(":%d", svc.Port)
	switch svc.Exporter.Type {
	case stackhcl.ExporterNode:
		sc.Command = types.ShellCommand{"--web.listen-address=" + listen, "--path.rootfs=/host",
			"--collector.textfile.directory=" + ContainerTextfileDir}
		sc.Volumes = append(sc.Volumes, types.ServiceVolumeConfig{Type: types.VolumeTypeBind, Source: "/", Target: "/host", ReadOnly: true})
		b.volume(sc, "backup-metrics", ContainerTextfileDir, true)
	case stackhcl.ExporterPostgres:
		b.postgresExporter(svc, sc, target)
	case stackhcl.ExporterPgBouncer:
		if stats := b.statsUser(target); stats != nil {
			// The password is not in the URL, where a value with any of
			// " %/?#@: would break it or decode into another password, nor
			// on the command line: lib/pq, the exporter's driver, reads
			// PGPASSWORD.
			sc.Command = types.ShellCommand{"--web.listen-address=" + listen, fmt.Sprintf(
				"--pgBouncer.connectionString=postgres://%s@%s:%d/pgbouncer?sslmode=disable",
				url.PathEscape(stats.Name), target.Name, target.Port)}
			b.secretEnv(sc, "PGPASSWORD", stats.Password)
		}
	case stackhcl.ExporterRedis:
		sc.Environment["REDIS_ADDR"] = strPtr(fmt.Sprintf("redis://%s:%d", target.Name, target.Port))
		sc.Environment["REDIS_EXPORTER_WEB_LISTEN_ADDRESS"] = strPtr(listen)
	case stackhcl.ExporterNginx:
		sc.Command = types.ShellCommand{"-web.listen-address=" + listen, "-nginx.scrape-uri=" + NginxExporterScrapeURI(b.stack, target)}
	case stackhcl.ExporterCelery:
		sc.Environment["CE_BROKER_URL"] = strPtr(fmt.Sprintf("redis://%s:%d/0", target.Name, target.Port))
		sc.Environment["CE_PORT"] = strPtr(itoa(svc.Port))
	}
	if target != nil {
		dependsOn(sc, target.Name)
	}
	sc.HealthCheck = healthcheck(httpCheck("wget", fmt.Sprintf("http://127.0.0.1:%d/metrics", svc.Port)), "15s", "5s", 3, "15s")
}

func (b *composeBuilder) postgresExporter(svc *stackhcl.Service, sc *types.ServiceConfig, target *stackhcl.Service) {
	sc.Environment["DATA_SOURCE_URI"] = strPtr(fmt.Sprintf("%s:%d/%s?sslmode=disable", target.Name, target.Port, target.Postgres.Database))
	sc.Environment["PG_EXPORTER_WEB_LISTEN_ADDRESS"] = strPtr(fmt.Sprintf(":%d", svc.Port))
	sc.Environment["PG_EXPORTER_EXTEND_QUERY_PATH"] = strPtr(PostgresExporterQueriesPath)
	// The password goes in PGPASSWORD, which lib/pq (the exporter's
	// driver) reads, not in DATA_SOURCE_PASS: postgres_exporter 0.11
	// writes that into a DSN that its own parser then refuses for a
	// space ("malformed dsn"), and prints the DSN, password and all, in
	// the error.
	if stats := b.statsUserFor(target); stats != nil {
		sc.Environment["DATA_SOURCE_USER"] = strPtr(stats.Name)
		b.secretEnv(sc, "PGPASSWORD", stats.Password)
	} else {
		sc.Environment["DATA_SOURCE_USER"] = strPtr("postgres")
		b.secretEnv(sc, "PGPASSWORD", target.Postgres.SuperuserPassword)
	}
	b.mount(sc, PathPostgresQueries, PostgresExporterQueriesPath)
}

// statsUser is the stats user of a pgbouncer service.
func (b *composeBuilder) statsUser(pgbouncer *stackhcl.Service) *stackhcl.PgUser {
	if pgbouncer == nil || pgbouncer.PgBouncer == nil {
		return nil
	}
	for _, u := range pgbouncer.PgBouncer.Users {
		if u.Stats {
			return u
		}
	}
	return nil
}

// statsUserFor is the stats user of any pgbouncer pooling a postgres.
func (b *composeBuilder) statsUserFor(postgres *stackhcl.Service) *stackhcl.PgUser {
	for _, svc := range b.stack.ServicesOf(stackhcl.KindPgBouncer) {
		if svc.PgBouncer.Server == postgres.Name {
			return b.statsUser(svc)
		}
	}
	return nil
}

func (b *composeBuilder) backup(svc *stackhcl.Service, sc *types.ServiceConfig) error {
	db := b.stack.Service(svc.Backup.Database)
	interval, err := time.ParseDuration(svc.Backup.Interval)
	if err != nil {
		return fmt.Errorf("backup interval: %w", err)
	}
	sc.Entrypoint = types.ShellCommand{"/bin/sh", "/etc/obcd/backup/backup.sh"}
	sc.Command = nil
	sc.Environment["PGHOST"] = strPtr(db.Name)
	sc.Environment["PGPORT"] = strPtr(itoa(db.Port))
	sc.Environment["PGDATABASE"] = strPtr(db.Postgres.Database)
	user, password := b.dumpUser(db)
	sc.Environment["PGUSER"] = strPtr(user)
	b.secretEnv(sc, "PGPASSWORD", password)
	sc.Environment["BACKUP_INTERVAL_SECONDS"] = strPtr(itoa(int(interval.Seconds())))
	sc.Environment["BACKUP_KEEP_DAYS"] = strPtr(itoa(svc.Backup.KeepDays))
	sc.Environment["BACKUP_DIR"] = strPtr(ContainerBackupDir)
	sc.Environment["TEXTFILE_DIR"] = strPtr(ContainerTextfileDir)
	b.mount(sc, PathBackupScript, "/etc/obcd/backup/backup.sh")
	b.volume(sc, "backups", ContainerBackupDir, false)
	b.volume(sc, "backup-metrics", ContainerTextfileDir, false)
	dependsOn(sc, db.Name)
	// Healthy while the newest verified dump is younger than two intervals.
	maxAge := int((2 * interval).Minutes())
	sc.HealthCheck = healthcheck([]string{"CMD-SHELL",
		fmt.Sprintf("test -n \"$$(find %s -name '*.dump' -mmin -%d)\"", ContainerBackupDir, maxAge)},
		"60s", "10s", 3, "10m")
	return nil
}

// dumpUser is the role the backup job dumps as: the pgbouncer admin user
// (granted pg_read_all_data), or the superuser when there is none.
func (b *composeBuilder) dumpUser(db *stackhcl.Service) (user, passwordSecret string) {
	for _, svc := range b.stack.ServicesOf(stackhcl.KindPgBouncer) {
		if svc.PgBouncer.Server != db.Name {
			continue
		}
		for _, u := range svc.PgBouncer.Users {
			if u.Admin {
				return u.Name, u.Password
			}
		}
	}
	return "postgres", db.Postgres.SuperuserPassword
}

func dirOf(p string) string {
	if i := strings.LastIndex(p, "/"); i > 0 {
		return p[:i]
	}
	return "/"
}
