"""App config of the staff dashboard: it sits above the other apps, which never import it."""

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """Staff dashboard at ``/admin/dashboard/`` (aggregates only; no models)."""

    name = "dashboard"
    label = "dashboard"
    verbose_name = "FeedMood staff dashboard"

    def ready(self) -> None:
        from django.contrib import admin

        from dashboard import receivers

        receivers.connect()
        # The admin index links to the dashboard (an app template named admin/index.html would be
        # shadowed by django.contrib.admin's own, which comes first in INSTALLED_APPS).
        admin.site.index_template = "admin/dashboard_index.html"
