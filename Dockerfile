# FeedMood service image: web (gunicorn), Celery workers, beat and the one-shot migrate all run from it.
# Debian's Python 3.11 and a virtualenv in /opt/venv, built in a first stage so that its build tools stay out of
# the image. bench/image_size.sh replays these steps to measure the image.
FROM debian:bookworm-slim AS venv
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt docker/build-venv.sh /tmp/build/
RUN sh /tmp/build/build-venv.sh /tmp/build/requirements.txt

FROM debian:bookworm-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings

# libpq for psycopg is bundled by psycopg[binary]; OpenCV headless needs libgl-free libs only.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=venv /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
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
