"""/health/ (the process is up) and /ready/ (it can serve: the database and
the cache answer). They answer before the host check and the HTTPS
redirect, since the container healthcheck and obcd's probes call them on
the container's own address over plain HTTP; /metrics is let through the
same way for Prometheus."""
import os

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

INTERNAL_PATHS = ("/metrics",)


class HealthMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/health/":
            return JsonResponse({"status": "ok", "version": settings.VERSION})
        if request.path == "/ready/":
            return ready()
        if request.path in INTERNAL_PATHS:
            # Skip the host check and the redirect for in-stack scrapes.
            request.META["HTTP_HOST"] = settings.ALLOWED_HOSTS[0] if settings.ALLOWED_HOSTS else "localhost"
            request.META["HTTP_X_FORWARDED_PROTO"] = "https"
        return self.get_response(request)


def ready():
    checks = {"database": check_database(), "cache": check_cache()}
    body = dict(checks, version=settings.VERSION)
    return JsonResponse(body, status=200 if all(checks.values()) else 503)


def check_database():
    # A release built with BROKEN_READY ships code that reads a table no
    # migration creates: the end-to-end test's broken release.
    table = "communities_unshipped" if os.environ.get("BROKEN_READY") else "communities_community"
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")
            cursor.fetchone()
        return True
    except Exception:  # noqa: BLE001 - any failure means not ready
        connection.close()
        return False


def check_cache():
    try:
        cache.set("obcms:ready", settings.VERSION, timeout=30)
        return cache.get("obcms:ready") == settings.VERSION
    except Exception:  # noqa: BLE001
        return False
