# secrets.S005: clean.hcl with a replica in production, whose replication password
# in secrets.S005.secrets takes 600 bytes in primary_conninfo.

stack "clean" {
  app_image = "clean/app"
  version   = "1.0.0"
}

secret "django_secret_key" {
  length = 64
}

secret "postgres_password" {}

secret "app_db_password" {}

secret "sentry_dsn" {}

secret "replication_password" {}

django {
  celery_app = "clean"
  database   = service.pgbouncer
  db_user    = "app"
  cache      = service.redis
  broker     = service.redis
  secret_key = secret.django_secret_key

  cors_origins       = ["https://${environment.domain}"]
  portal_base_url    = "https://${environment.domain}"
  default_from_email = "noreply@${environment.domain}"
  api_prefix         = "/api/v1/"
  upload_max_size    = "100M"

  metrics {
    enabled       = true
    middleware    = true
    custom_module = "clean.metrics"
  }

  logging {
    scrub_filter         = "phi_scrubber"
    audit_retention_days = 2555
  }

  sentry {
    dsn = secret.sentry_dsn
  }

  security {
    admin_allowed_ips = ["10.0.0.0/8"]
  }
}

service "web" "web" {}

service "nginx" "nginx" {}

service "postgres" "db" {
  superuser_password   = secret.postgres_password
  replication_password = secret.replication_password
}

service "pgbouncer" "pgbouncer" {
  user "app" {
    password = secret.app_db_password
  }
}

service "redis" "redis" {}

service "celery_worker" "celery-worker" {}

service "celery_beat" "celery-beat" {}

service "prometheus" "prometheus" {}

service "alertmanager" "alertmanager" {}

service "grafana" "grafana" {}

service "exporter" "nginx-exporter" {
  type   = "nginx"
  target = service.nginx
}

service "exporter" "celery-exporter" {
  type   = "celery"
  target = service.redis
}

service "backup" "backup" {}

monitoring {
  receiver "ops" {
    webhook_url = "https://hooks.clean.example.org/alertmanager"
  }
}

environment "staging" {
  domain = "staging.clean.example.org"
}

environment "production" {
  domain = "clean.example.org"

  service "db" {
    replicas = 1
  }
}
