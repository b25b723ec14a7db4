"""WSGI entry point gunicorn serves: obc_management.wsgi:application."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obc_management.settings.production")
application = get_wsgi_application()
