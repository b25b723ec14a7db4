import socket

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from .models import TaskRun


@shared_task
def ping(token):
    """Records that a worker ran it, and says which worker."""
    run = TaskRun.objects.create(token=token, worker=socket.gethostname(), version=settings.VERSION)
    return {"token": run.token, "worker": run.worker, "version": run.version}


@shared_task
def heartbeat():
    """Run by celery beat: the last time beat scheduled work."""
    cache.set("obcms:beat", socket.gethostname(), timeout=300)
