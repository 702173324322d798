"""Project-level views: JSON errors under /api/ (Django's defaults elsewhere), health probes, ``/``."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from feedmood.observability.health import run_ready_checks


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Internal server error"}, status=500)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


# --- Operations: probes, metrics, the site root ---------------------------------------------


def home(request: HttpRequest) -> HttpResponse:
    """``/`` (and the admin's "View site") lead to the interactive API docs."""
    return redirect("swagger-ui")


@never_cache
@require_GET
def health_live(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers HTTP (no dependency is checked, so a restart cannot fix a red one)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def health_ready(request: HttpRequest) -> HttpResponse:
    """Readiness: database, cache, broker and a worker that loads the model; 503 naming what failed."""
    ok, checks = run_ready_checks()
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)
