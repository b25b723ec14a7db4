# OBCMS as the deployment-readiness audit (shared/seeds/000) found it:
# placeholder PgBouncer userlist (#1), no CACHES (#2), no Prometheus metrics
# (#3), no VERSION (#4), no staging compose file (#5), plus the high and
# medium priority gaps (#6-#24) that a stack file can show.
# `obcd audit production` on it must list exactly the five critical blockers.

stack "obcms" {
  app_image = "obcms/app"
}

secret "django_secret_key" {
  length = 64
}
secret "postgres_password" {}
secret "obcms_user_password" {}
secret "obcms_admin_password" {}
secret "obcms_stats_password" {}
secret "sentry_dsn" {}

django {
  settings_module = "obc_management.settings.production"
  wsgi            = "obc_management.wsgi:application"
  celery_app      = "obc_management"

  database     = service.pgbouncer
  db_user      = "obcms_user"
  migrate_user = "obcms_admin"
  broker       = service.redis

  secret_key = secret.django_secret_key

  allowed_hosts      = [environment.domain]
  site_url           = "/auth/dashboard/"
  portal_base_url    = "https://${environment.domain}"
  default_from_email = "noreply@${environment.domain}"
  api_prefix         = "/api/"
  media_storage      = "local"

  logging {
    output               = "file"
    rotation             = "time"
    scrub_filter         = "phi_scrubber"
    audit_retention_days = 2555
  }

  sentry {
    dsn = secret.sentry_dsn
  }

  security {
    csp_script_src = ["'self'", "'unsafe-inline'"]
    hsts_preload   = true
  }
}

service "web" "web" {
  replicas = 4
}

service "nginx" "nginx" {
  ports = ["80:80", "443:443"]
}

service "postgres" "db" {
  database           = "obcms"
  superuser_password = secret.postgres_password
  replicas           = 2
}

service "pgbouncer" "pgbouncer" {
  pool_mode = "transaction"

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

service "redis" "redis" {}

service "celery_worker" "celery-worker" {
  replicas = 2
}

service "celery_beat" "celery-beat" {}

service "prometheus" "prometheus" {}

service "exporter" "postgres-exporter" {
  type   = "postgres"
  target = service.db
}

service "exporter" "redis-exporter" {
  type   = "redis"
  target = service.redis
}

monitoring {
  retention = "30d"
}

environment "production" {
  domain = "obcms.example.org"
}
