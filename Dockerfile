# FeedMood service image: web (gunicorn), Celery workers, beat and the one-shot migrate all run from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings

# libpq for psycopg is bundled by psycopg[binary]; OpenCV headless needs libgl-free libs only.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --create-home --uid 10001 feedmood \
    && mkdir -p /data/media /app/staticfiles \
    && chown -R feedmood:feedmood /data /app/staticfiles
USER feedmood

ENV MEDIA_ROOT=/data/media \
    STATIC_ROOT=/app/staticfiles \
    LOG_FORMAT=json \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
# Static files are collected once, into the image (no database or secret is needed for it).
RUN env -u PROMETHEUS_MULTIPROC_DIR DEBUG=0 SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0
EXPOSE 8000

# 4 processes x 2 threads per 2 cores: keep-alive connections stick to a worker, and more workers than cores
# keep two busy connections from sharing one GIL (bench/results/feed_scale_4x2.md).
# The metrics directory is emptied at each start: its files are the live processes' counters.
CMD ["sh", "-c", "rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && exec gunicorn config.wsgi:application --bind 0.0.0.0:8000 --workers 4 --threads 2 --timeout 60 --access-logfile -"]
