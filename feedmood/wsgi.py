"""WSGI entry point (gunicorn feedmood.wsgi:application)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedmood.settings")

application = get_wsgi_application()
