"""Root URLconf: admin (and its staff dashboard), the API (social core + optional apps), schema and docs,
health probes, the staff-only metrics endpoint, and ``/`` leading to the API docs."""

from importlib.util import find_spec

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from feedmood import views
from feedmood.observability.apis import MetricsApi


def _optional_api_includes() -> list:
    """``emotion.urls`` / ``recommender.urls`` are mounted under api/ once they exist."""
    patterns = []
    for module in ("emotion.urls", "recommender.urls"):
        if find_spec(module) is not None:
            patterns.append(path("api/", include(module)))
    return patterns


urlpatterns = [
    path("", views.home, name="home"),
    # Probes answer with or without the trailing slash (Kubernetes and compose use the bare form).
    re_path(r"^api/health/live/?$", views.health_live, name="health-live"),
    re_path(r"^api/health/ready/?$", views.health_ready, name="health-ready"),
    path("metrics", MetricsApi.as_view(), name="metrics"),
    # Login/logout for the browsable API (its "Log in" link).
    path("api-auth/", include("rest_framework.urls")),
    # Staff-only: admin_view redirects anyone else to /admin/login/?next=/admin/dashboard/.
    path("admin/dashboard/", include("dashboard.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("feedmood.api_urls")),
    *_optional_api_includes(),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="feedmood/redoc.html"),
        name="redoc",
    ),
]

handler400 = "feedmood.views.bad_request"
handler404 = "feedmood.views.page_not_found"
handler500 = "feedmood.views.server_error"
