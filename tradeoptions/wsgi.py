import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeoptions.settings.production")
os.environ.setdefault("TRADEOPTIONS_PROCESS", "web")  # DATABASE_URL's role, never the system context
application = get_wsgi_application()
