"""The app's own metrics (django.metrics.custom_module), next to
django-prometheus's: which release is serving, and tasks run."""
from django.conf import settings
from prometheus_client import Counter, Gauge

BUILD_INFO = Gauge("obcms_build_info", "The release serving, by version.", ["version"])
TASKS_RUN = Counter("obcms_task_pings_total", "Task round trips answered by a worker.")


def register():
    BUILD_INFO.labels(version=settings.VERSION).set(1)
