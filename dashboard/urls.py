"""Routes of the staff dashboard (mounted at ``admin/dashboard/`` by ``config.urls``).

``admin_view`` redirects anyone who is not staff to ``/admin/login/?next=/admin/dashboard/``.
"""

from django.contrib import admin
from django.urls import path

from dashboard.views import dashboard_view

urlpatterns = [
    path("", admin.site.admin_view(dashboard_view), name="admin-dashboard"),
]
