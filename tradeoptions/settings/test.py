"""The test suite: real PostgreSQL (as the non-superuser worker role) and real Redis."""

import os

from .base import *  # noqa: F403

SECRET_KEY = "test-only-not-secret"
# Two fixed test keys: the first encrypts, the second proves rotation works.
ENCRYPTION_KEYS = [
    "dGVzdC1rZXktMDEtZm9yLXRyYWRlb3B0aW9ucy10ZXM=",
    "dGVzdC1rZXktMDItZm9yLXRyYWRlb3B0aW9ucy10ZXM=",
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# The suite connects as the worker role (DATABASE_WORKER_URL, or tradeoptions_worker on the web
# role's server), like the processes that run the monitor: many scenarios enter the system
# context. Row-level security applies to it just the same; tests that must prove what the web
# role cannot do connect as DATABASE_APP_ROLE themselves (tests/test_tenant_context.py).
# The database is always DATABASE_URL's: a test's subprocess workers are given that URL only.
DATABASES["default"].update(  # noqa: F405
    {key: DATABASE_WORKER.get(key) for key in ("USER", "PASSWORD", "HOST", "PORT")},  # noqa: F405
    NAME=DATABASE_APP["NAME"],  # noqa: F405
)
# One test database per run, so that two test runs on one server never collide.
DATABASES["default"]["TEST"] = {"NAME": f"test_tradeoptions_{os.getpid()}"}  # noqa: F405
CELERY_TASK_ALWAYS_EAGER = False
AXES_FAILURE_LIMIT = 3
LOGIN_FAILURE_LIMIT_PER_USERNAME = 8
# Each test counts login failures under a prefix of its own (conftest.py), in this run's namespace.
LOGIN_FAILURES_PREFIX = f"login-failures-{os.getpid()}"
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "1000/min", "user": "100000/min"}}  # noqa: F405

# Serve static files from the app folders; collectstatic is for production only.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Tests run their webhook receivers on 127.0.0.1; the SSRF tests switch this off.
WEBHOOK_ALLOW_PRIVATE_TARGETS = True
# Tests run their SMTP and HTTP receivers for notification channels on 127.0.0.1, explicitly.
NOTIFY_ALLOW_PRIVATE_TARGETS = True
# A VAPID key pair made for the tests (never used anywhere else); the push stand-in checks its signature.
VAPID_PRIVATE_KEY = "SurzQO1pLARp4NgKDDqLp5gSzKal_fq337sBJe6mfpc"
VAPID_PUBLIC_KEY = "BE0cpdXlPp-bJXIDPq3-XZOfgGglf-SBvMihgQpELzDF-rM5y-2x3vukFDctf7pD65W1VBL70HhlZIaBLAjB2vM"
VAPID_SUBJECT = "mailto:tests@tradeoptions.invalid"
# Tests trade at the fake Tradier against the simulated (or a hand-driven) market on purpose.
ALLOW_SIMULATED_QUOTES_WITH_REAL_BROKER = True
