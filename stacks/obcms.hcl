# OBCMS: Django under gunicorn behind nginx, PostgreSQL behind PgBouncer with
# streaming replicas, Redis, Celery worker and beat, Prometheus, Alertmanager,
# Grafana and a backup job. One file renders every artifact for every
# environment:
#
#   obcd secrets init staging --stack stacks/obcms.hcl
#   obcd render staging --stack stacks/obcms.hcl
#
# Secret values never appear here: each `secret` block only names one, and
# `obcd secrets init` generates the values into .obcd/<env>.secrets (0600).

stack "obcms" {
  app_image = "obcms/app"
  version   = var.app_version
}

variable "app_version" {
  type        = string
  default     = "1.0.0"
  description = "Release version; Django reads it as APP_VERSION."

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+", var.app_version))
    error_message = "The app_version must be a semantic version such as 1.4.2."
  }
}

variable "admin_networks" {
  type        = list(string)
  default     = ["10.0.0.0/8", "192.168.0.0/16"]
  description = "Networks allowed to reach /admin/."
}

locals {
  ops_email = "ops@obcms.example.org"
}

secret "django_secret_key" {
  description = "Django SECRET_KEY."
  length      = 64
}

secret "field_encryption_key" {
  description = "Fernet key for encrypted model fields (real data mode)."
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

secret "grafana_admin_password" {
  description = "Grafana's admin login."
}

secret "sentry_dsn" {
  description = "Sentry DSN for error tracking (replace the generated value with the real DSN)."
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
  default_from_email = "noreply@${environment.domain}"
  api_prefix         = "/api/v1/"
  media_storage      = "s3"
  upload_max_size    = "100M"
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
    admin_allowed_ips = var.admin_networks
  }
}

service "web" "web" {
  replicas = 2
  workers  = 4
  cpus     = 1
  memory   = "1G"
}

service "nginx" "nginx" {
  upstream = service.web
  ports    = ["80:80", "443:443"]
  memory   = "256M"
}

service "postgres" "db" {
  image                = "postgres:15-bookworm"
  database             = "obcms"
  max_connections      = 200
  shared_buffers       = "512MB"
  superuser_password   = secret.postgres_password
  replication_password = secret.replication_password
  memory               = "2G"
}

service "pgbouncer" "pgbouncer" {
  server            = service.db
  pool_mode         = "transaction"
  max_client_conn   = 1000
  default_pool_size = 25

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
  maxmemory        = "512mb"
  maxmemory_policy = "allkeys-lru"
  memory           = "768M"
}

service "celery_worker" "celery-worker" {
  replicas    = 1
  concurrency = 4
  memory      = "1G"
}

service "celery_beat" "celery-beat" {
  memory = "256M"
}

service "prometheus" "prometheus" {
  memory = "1G"
}

service "alertmanager" "alertmanager" {}

service "grafana" "grafana" {
  admin_password = secret.grafana_admin_password
}

service "exporter" "node-exporter" {
  type = "node"
}

service "exporter" "postgres-exporter" {
  type   = "postgres"
  target = service.db
}

service "exporter" "pgbouncer-exporter" {
  type   = "pgbouncer"
  target = service.pgbouncer
}

service "exporter" "redis-exporter" {
  type   = "redis"
  target = service.redis
}

service "exporter" "nginx-exporter" {
  type   = "nginx"
  target = service.nginx
}

service "exporter" "celery-exporter" {
  type   = "celery"
  target = service.redis
}

service "backup" "backup" {
  database  = service.db
  interval  = "24h"
  keep_days = 14
}

monitoring {
  retention        = "30d"
  scrape_interval  = "15s"
  smtp_smarthost   = "smtp.obcms.example.org:587"
  smtp_from        = "alertmanager@obcms.example.org"
  default_receiver = "ops-email"
  critical_receiver = "ops-webhook"

  receiver "ops-email" {
    email = [local.ops_email]
  }

  receiver "ops-webhook" {
    webhook_url = "https://hooks.obcms.example.org/alertmanager"
  }
}

environment "staging" {
  domain      = "staging.obcms.example.org"
  docker_host = "unix:///var/run/docker.sock"
  # What the environment is decides the rules validate applies:
  # production-only rules for "production", DEBUG only in "development".
  tier = "staging"

  service "web" {
    replicas = 2
  }
  service "celery-worker" {
    replicas = 1
  }
  monitoring {
    retention = "7d"
  }
}

environment "production" {
  domain      = "obcms.example.org"
  docker_host = "ssh://deploy@obcms-prod-1"
  tier        = "production"

  service "web" {
    replicas = 4
  }
  service "celery-worker" {
    replicas = 2
  }
  service "db" {
    replicas = 2
  }
  monitoring {
    retention = "30d"
  }
}

# A warning or info check that a stack cannot satisfy is accepted, with a
# reason reviewers can judge, by a waive block; errors cannot be waived.
# OBCMS satisfies every check, so a waiver here would only be reported as
# stale (waiver.V003). The shape, for a stack without Grafana:
#
#   waive "audit.A007" {
#     reason = "Grafana is not packaged by Debian; this stack runs only Debian-built images."
#   }
