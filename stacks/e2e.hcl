# The OBCMS stack as it runs on one machine for obcd's end-to-end test: the
# same shape as obcms.hcl (Django under gunicorn behind nginx, PostgreSQL
# behind PgBouncer, Redis, Celery worker and beat, Prometheus, Alertmanager,
# the exporters and the backup job), on images built locally from Debian
# packages by testdata/e2e/images/build.sh, with every port obcd probes
# published on loopback only.
#
#   bash testdata/e2e/images/build.sh
#   obcd secrets init staging --stack stacks/e2e.hcl
#   obcd validate staging --strict --stack stacks/e2e.hcl
#   obcd deploy staging --yes --stack stacks/e2e.hcl
#   obcd verify staging --stack stacks/e2e.hcl
#
# Grafana is not packaged by Debian, so this stack leaves it out (obcms.hcl
# has it); the celery exporter is a small one of our own.

# Accepted risks: reviewed here, shown by validate and audit, never counted.
waive "audit.A007" {
  reason = "Grafana is not packaged by Debian and no registry is reachable here; obcms.hcl provisions it."
}

stack "obcms-e2e" {
  app_image = "obcms/app"
  version   = var.app_version
}

variable "app_version" {
  type        = string
  default     = "1.0.0"
  description = "Release version: the obcms/app tag, and Django's APP_VERSION."
}

locals {
  images    = "obcd-e2e"
  ops_email = "ops@obcms.example.org"
}

secret "django_secret_key" {
  description = "Django SECRET_KEY."
  length      = 64
}

secret "field_encryption_key" {
  description = "Fernet key for encrypted model fields."
  format      = "fernet"
}

secret "postgres_password" {
  description = "Password of the postgres superuser."
}

secret "replication_password" {
  description = "Password of the streaming-replication role."
}

secret "obcms_user_password" {
  description = "The application's database role."
}

secret "obcms_admin_password" {
  description = "The migrations and admin database role."
}

secret "obcms_stats_password" {
  description = "The read-only monitoring role."
}

secret "sentry_dsn" {
  description = "Sentry DSN (the generated value stands in for a real one)."
}

django {
  settings_module = "obc_management.settings.production"
  wsgi            = "obc_management.wsgi:application"
  celery_app      = "obc_management"

  database     = service.pgbouncer
  db_user      = "obcms_user"
  migrate_user = "obcms_admin"
  cache        = service.redis
  broker       = service.redis

  secret_key           = secret.django_secret_key
  field_encryption_key = secret.field_encryption_key
  real_data_mode       = true

  debug              = false
  allowed_hosts      = [environment.domain]
  cors_origins       = ["https://${environment.domain}"]
  site_url           = "https://${environment.domain}"
  portal_base_url    = "https://${environment.domain}"
  default_from_email = "noreply@obcms.example.org"
  api_prefix         = "/api/v1/"
  media_storage      = "s3"
  upload_max_size    = "10M"
  session_engine     = "cache"

  metrics {
    enabled       = true
    middleware    = true
    custom_module = "obc_management.metrics"
  }

  logging {
    output               = "stdout"
    level                = "INFO"
    scrub_filter         = "phi_scrubber"
    audit_retention_days = 2555
  }

  sentry {
    dsn = secret.sentry_dsn
  }

  security {
    csp_script_src    = ["'self'"]
    csp_style_src     = ["'self'"]
    hsts_seconds      = 31536000
    hsts_preload      = false
    # Loopback and Docker's address pools: a request to the published port
    # reaches nginx from the network's gateway, in 172.16/12 or, once
    # those pools are used up, 192.168/16 or 10/8.
    admin_allowed_ips = ["127.0.0.1/32", "172.16.0.0/12", "192.168.0.0/16", "10.0.0.0/8"]
  }
}

service "web" "web" {
  replicas = 2
  workers  = 2
  memory   = "512M"

  # Keep each worker's PgBouncer connection for ten minutes: the replicas
  # that run when obcms_user_password is rotated stay logged in until the
  # new ones, with the new password, replace them (scenario step 10). A
  # connection older than this is closed and opened again, and an old
  # replica's new login after the reload is refused: with 60 s, a deploy
  # that took 1m42s on a busy machine had 208 of 3,661 requests fail.
  env = {
    DB_CONN_MAX_AGE = "600"
  }

  # The rendered readiness check, every 3s instead of 10s (see below).
  healthcheck {
    test         = ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready/', timeout=4)"]
    interval     = "3s"
    timeout      = "5s"
    retries      = 3
    start_period = "30s"
  }
}

service "nginx" "nginx" {
  image    = "${local.images}/nginx:latest"
  upstream = service.web
  ports    = ["127.0.0.1:18080:80", "127.0.0.1:18443:443"]
  memory   = "128M"
  # The self-signed certificate the e2e nginx image makes for localhost.
  tls_cert = "/etc/nginx/selfsigned/fullchain.pem"
  tls_key  = "/etc/nginx/selfsigned/privkey.pem"
}

service "postgres" "db" {
  image                = "${local.images}/postgres:latest"
  database             = "obcms"
  max_connections      = 100
  shared_buffers       = "128MB"
  superuser_password   = secret.postgres_password
  replication_password = secret.replication_password
  ports                = ["127.0.0.1:15432:5432"]
  address              = "127.0.0.1:15432"
  memory               = "512M"
}

service "pgbouncer" "pgbouncer" {
  image             = "${local.images}/pgbouncer:latest"
  server            = service.db
  pool_mode         = "transaction"
  max_client_conn   = 200
  default_pool_size = 10
  ports             = ["127.0.0.1:16432:6432"]
  address           = "127.0.0.1:16432"

  user "obcms_user" {
    password = secret.obcms_user_password
  }
  user "obcms_admin" {
    password = secret.obcms_admin_password
    admin    = true
  }
  user "obcms_stats" {
    password = secret.obcms_stats_password
    stats    = true
  }
}

service "redis" "redis" {
  image            = "${local.images}/redis:latest"
  maxmemory        = "128mb"
  maxmemory_policy = "allkeys-lru"
  ports            = ["127.0.0.1:16379:6379"]
  address          = "127.0.0.1:16379"
  memory           = "256M"
}

# The healthchecks of web, celery and backup here are the rendered ones
# with shorter intervals: Docker (20.10 here) runs the first check only
# after one interval, and a deploy waits for healthy, so a 30s or 1m
# interval is a 30s or 1m deploy.
service "celery_worker" "celery-worker" {
  replicas    = 1
  concurrency = 2
  memory      = "512M"

  healthcheck {
    test         = ["CMD-SHELL", "celery -A obc_management inspect ping -d celery@$$HOSTNAME --timeout 5"]
    interval     = "5s"
    timeout      = "10s"
    retries      = 3
    start_period = "60s"
  }
}

service "celery_beat" "celery-beat" {
  memory = "256M"

  healthcheck {
    test     = ["CMD-SHELL", "kill -0 $$(cat /tmp/celerybeat.pid)"]
    interval = "3s"
    retries  = 3
  }
}

service "prometheus" "prometheus" {
  image   = "${local.images}/prometheus:latest"
  ports   = ["127.0.0.1:19090:9090"]
  address = "127.0.0.1:19090"
  memory  = "512M"
}

service "alertmanager" "alertmanager" {
  image   = "${local.images}/alertmanager:latest"
  ports   = ["127.0.0.1:19093:9093"]
  address = "127.0.0.1:19093"
}

service "exporter" "postgres-exporter" {
  image  = "${local.images}/postgres-exporter:latest"
  type   = "postgres"
  target = service.db
}

service "exporter" "redis-exporter" {
  image  = "${local.images}/redis-exporter:latest"
  type   = "redis"
  target = service.redis
}

service "exporter" "nginx-exporter" {
  image  = "${local.images}/nginx-exporter:latest"
  type   = "nginx"
  target = service.nginx
}

# Celery's events on the broker, as celery_* metrics (testdata/e2e/images/celery-exporter).
service "exporter" "celery-exporter" {
  image   = "${local.images}/celery-exporter:latest"
  type    = "celery"
  target  = service.redis
  ports   = ["127.0.0.1:19808:9808"]
  address = "127.0.0.1:19808"
}

service "backup" "backup" {
  image     = "${local.images}/postgres:latest"
  database  = service.db
  interval  = "24h"
  keep_days = 14

  healthcheck {
    test     = ["CMD-SHELL", "test -n \"$$(find /backups -name '*.dump' -mmin -2880)\""]
    interval = "3s"
    retries  = 3
  }
}

monitoring {
  retention         = "7d"
  scrape_interval   = "5s"
  smtp_smarthost    = "smtp.obcms.example.org:587"
  smtp_from         = "alertmanager@obcms.example.org"
  default_receiver  = "ops-email"
  critical_receiver = "ops-webhook"

  receiver "ops-email" {
    email = [local.ops_email]
  }

  receiver "ops-webhook" {
    webhook_url = "https://hooks.obcms.example.org/alertmanager"
  }
}

# The public site through nginx on loopback, with the self-signed
# certificate the nginx image makes for itself.
probe "site-https" {
  insecure = true
}

probe "site-bad-host" {
  insecure = true
}

probe "site-redirect" {
  type              = "http"
  url               = "http://localhost:18080/"
  redirect_to_https = true
  critical          = false
}

# CSRF on a form, through nginx: Django's admin login sets the csrftoken
# cookie and puts the token in the form.
probe "site-csrf" {
  type       = "http"
  url        = "https://localhost:18443/admin/login/"
  insecure   = true
  csrf_token = true
}

probe "site-ready" {
  type        = "http"
  url         = "https://localhost:18443/ready/"
  insecure    = true
  expect_json = { database = true, cache = true }
}

# A Celery round trip: the view sends a task, a worker runs it and writes
# its row, and the view answers 200 only once that row is there.
probe "celery-task" {
  type        = "http"
  url         = "https://localhost:18443/tasks/ping/"
  insecure    = true
  timeout     = "25s"
  expect_json = { ran = true }
}

environment "staging" {
  domain      = "localhost"
  public_url  = "https://localhost:18443"
  docker_host = "unix:///var/run/docker.sock"
  # The lab's window is short so the scenario stays quick; a real
  # environment keeps the 60s default or more.
  watch = "15s"
}
