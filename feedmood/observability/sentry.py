"""Sentry error reports (Django + Celery integrations), started only when ``SENTRY_DSN`` is set.

Events are scrubbed before they leave: no request bodies, cookies or credentials, no local
variables (they may hold images or probabilities), no emotion data in extras, tags or breadcrumbs.
"""

from __future__ import annotations

from typing import Any

from feedmood.observability.redaction import REDACTED, redact_text, scrub

# Parts of an event that may carry user content wholesale: dropped, not filtered.
_DROPPED_REQUEST_PARTS = ("data", "cookies", "env")


def _scrub_exception(exception: dict[str, Any]) -> None:
    for value in exception.get("values") or []:
        if isinstance(value.get("value"), str):
            value["value"] = redact_text(value["value"])
        for frame in (value.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)


def _scrub_request(request: dict[str, Any]) -> None:
    for part in _DROPPED_REQUEST_PARTS:
        if part in request:
            request[part] = REDACTED
    if "headers" in request:
        request["headers"] = scrub(request["headers"])
    for part in ("query_string", "url"):
        if isinstance(request.get(part), str):
            request[part] = redact_text(request[part])


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry ``before_send``: strip credentials, images and emotion data from ``event`` (in place)."""
    if isinstance(event.get("request"), dict):
        _scrub_request(event["request"])
    if isinstance(event.get("exception"), dict):
        _scrub_exception(event["exception"])
    for frame in (event.get("threads") or {}).get("values") or []:
        for f in (frame.get("stacktrace") or {}).get("frames") or []:
            f.pop("vars", None)
    for key in ("extra", "tags", "contexts"):
        if isinstance(event.get(key), dict):
            event[key] = scrub(event[key])
    if isinstance(event.get("logentry"), dict):
        event["logentry"] = scrub(event["logentry"])
    if isinstance(event.get("message"), str):
        event["message"] = redact_text(event["message"])
    breadcrumbs = event.get("breadcrumbs")
    if isinstance(breadcrumbs, dict) and isinstance(breadcrumbs.get("values"), list):
        breadcrumbs["values"] = [scrub(crumb) for crumb in breadcrumbs["values"]]
    if isinstance(event.get("user"), dict):  # keep the id only: no e-mail, username or IP
        event["user"] = {k: v for k, v in event["user"].items() if k == "id"}
    return event


def init_sentry(
    dsn: str | None, *, environment: str, release: str | None = None, traces_sample_rate: float = 0.0, **options: Any
) -> bool:
    """Start the SDK with the Django and Celery integrations; a no-op without ``dsn``. Returns whether it started."""
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        environment=environment,
        release=release,
        traces_sample_rate=traces_sample_rate,
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub_event,
        **options,
    )
    return True
