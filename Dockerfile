# The production image: gunicorn for web, the same image runs the Celery worker and beat.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=tradeoptions.settings.production
WORKDIR /app
COPY requirements/base.txt requirements/base.txt
RUN pip install --no-cache-dir -r requirements/base.txt
COPY . .
RUN SECRET_KEY=collectstatic-only-$(head -c 48 /dev/urandom | base64 | tr -d '/+=') \
    ENCRYPTION_KEYS=$(python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())") \
    python manage.py collectstatic --noinput
RUN useradd --system --uid 10001 tradeoptions
USER tradeoptions
EXPOSE 8000
# No gunicorn access log: Django writes one JSON line per request, with its request id.
CMD ["gunicorn", "tradeoptions.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
