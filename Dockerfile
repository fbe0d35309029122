# The production image: gunicorn for web, the same image runs the Celery worker and beat.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=tradeoptions.settings.production
WORKDIR /app
# pg_dump for the nightly backup job (tradeoptions/backups.py runs scripts/backup.sh on the worker):
# as new as the postgres:16 service, from PostgreSQL's own apt repository (Debian's may be older).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && install -d /usr/share/postgresql-common/pgdg \
    && curl -fsSo /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc \
    && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt $(. /etc/os-release && echo "$VERSION_CODENAME")-pgdg main" \
       > /etc/apt/sources.list.d/pgdg.list \
    && apt-get update && apt-get install -y --no-install-recommends postgresql-client-16 \
    && apt-get purge -y curl && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
COPY requirements/base.txt requirements/base.txt
RUN pip install --no-cache-dir -r requirements/base.txt
COPY . .
RUN SECRET_KEY=collectstatic-only-$(head -c 48 /dev/urandom | base64 | tr -d '/+=') \
    ENCRYPTION_KEYS=$(python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())") \
    python manage.py collectstatic --noinput
RUN useradd --system --uid 10001 tradeoptions \
    && mkdir -p /app/backups /app/archives/snapshots && chown -R tradeoptions /app/backups /app/archives
USER tradeoptions
EXPOSE 8000
# No gunicorn access log: Django writes one JSON line per request, with its request id.
CMD ["gunicorn", "tradeoptions.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
