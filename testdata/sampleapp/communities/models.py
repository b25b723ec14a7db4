from django.db import models


class Community(models.Model):
    """An OBC community: the shape of OBCMS's core records."""

    name = models.CharField(max_length=200)
    region = models.CharField(max_length=100, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "communities"

    def __str__(self):
        return f"{self.name} ({self.region})"


class TaskRun(models.Model):
    """One Celery task a worker ran, written by the worker itself."""

    token = models.CharField(max_length=64, unique=True)
    worker = models.CharField(max_length=200)
    version = models.CharField(max_length=50)
    ran_at = models.DateTimeField(auto_now_add=True)
