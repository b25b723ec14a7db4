from django.contrib import admin

from .models import Community, TaskRun


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin):
    list_display = ("name", "region", "created_at")
    search_fields = ("name", "region")


@admin.register(TaskRun)
class TaskRunAdmin(admin.ModelAdmin):
    list_display = ("token", "worker", "version", "ran_at")
