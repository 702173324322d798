"""Operations support: error reports (Sentry), Prometheus metrics, structured logs, request ids, health checks.

Each module is small and optional at run time: Sentry only starts with ``SENTRY_DSN``, metrics are
served to staff (or on a worker's own port), and logs are JSON unless ``LOG_FORMAT=human``.
"""
