"""The Celery app `celery -A obc_management` finds, configured from the
Django settings (CELERY_* names)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obc_management.settings.production")

app = Celery("obc_management")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
