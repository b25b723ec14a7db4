from django.contrib import admin
from django.urls import include, path

from communities import views

urlpatterns = [
    path("", views.home, name="home"),
    path("version/", views.version, name="version"),
    path("communities/", views.communities, name="communities"),
    path("tasks/ping/", views.task_ping, name="task-ping"),
    path("admin/", admin.site.urls),
    path("", include("django_prometheus.urls")),
]
