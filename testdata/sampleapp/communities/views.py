import uuid

from django.conf import settings
from django.http import JsonResponse

from obc_management.metrics import TASKS_RUN

from .models import Community, TaskRun
from .tasks import ping


def home(request):
    return JsonResponse({"app": "obcms", "version": settings.VERSION})


def version(request):
    return JsonResponse({"version": settings.VERSION})


def communities(request):
    return JsonResponse({"count": Community.objects.count(), "version": settings.VERSION})


def task_ping(request):
    """Sends a task to the workers and waits for it: 200 with ran=true only
    when a worker ran it and its row is in the database."""
    token = uuid.uuid4().hex
    try:
        result = ping.delay(token).get(timeout=20)
    except Exception as exc:  # noqa: BLE001
        return JsonResponse({"ran": False, "error": type(exc).__name__}, status=503)
    stored = TaskRun.objects.filter(token=token).exists()
    if stored:
        TASKS_RUN.inc()
    return JsonResponse({"ran": stored, "worker": result.get("worker"), "version": settings.VERSION}, status=200 if stored else 503)
