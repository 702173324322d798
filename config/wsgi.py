"""WSGI entry point (gunicorn config.wsgi:application)."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# Move everything loaded at start-up (Django, DRF, URLconf, apps) out of the garbage
# collector's reach: a feed request allocates a few thousand short-lived objects,
# and the collections they trigger would otherwise traverse these hundreds of
# thousands of long-lived ones too (measured: feed p95 in-process 20 -> 12 ms).
gc.collect()
gc.freeze()
