"""URLconf of the Sentry test: the real project routes plus a view that fails while holding emotion data."""

import json

from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import urlpatterns as project_urlpatterns


def failing_view(request: HttpRequest) -> HttpResponse:
    """Fails with the request's probabilities in a local variable and its token in the message."""
    probabilities = json.loads(request.body)["probabilities"]
    token = request.headers["Authorization"].split()[-1]
    raise RuntimeError(f"analysis of {len(probabilities)} scores broke for Token {token}")


urlpatterns = [path("ops-test/fail/", failing_view), *project_urlpatterns]
