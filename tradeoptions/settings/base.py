"""Settings shared by every environment; each value comes from the environment via one reader.

See `.env.example` for every variable and what it means.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A developer's or a server's .env fills in what the environment leaves unset; the test settings
# set DJANGO_READ_DOT_ENV=false (in pytest's config) so that no local .env can change a test.
if env.bool("DJANGO_READ_DOT_ENV", default=True):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # Our project package comes first so that its `migrate` command wraps Django's.
    "tradeoptions",
    "tradeoptions.admin.OpsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, vendored and pinned: /api/docs/ needs no CDN
    "drf_standardized_errors",
    "django_celery_beat",
    "brokers",
    "trades",
    "monitoring",
    "analytics",
]

MIDDLEWARE = [
    "tradeoptions.logs.RequestIdMiddleware",  # takes or makes X-Request-ID, for every line of the request
    "tradeoptions.health.HealthCheckMiddleware",  # first: answers even when the database is down
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tradeoptions.csp.ContentSecurityPolicyMiddleware",  # no inline script on any page
    # Opens the request transaction and sets the tenant for row-level security.
    "tradeoptions.tenancy.TenantContextMiddleware",
    # Last, as django-axes asks.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "tradeoptions.urls"
WSGI_APPLICATION = "tradeoptions.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# Three roles (deploy/postgres/roles.sql), none a superuser or BYPASSRLS, so PostgreSQL row-level
# security applies to every query:
# * DATABASE_URL: the web application's role. Owns no tables, and is never in the system group:
#   it sees one tenant's rows, and only through the signed tenant context (tradeoptions/tenancy.py).
# * DATABASE_WORKER_URL: Celery workers, beat and management commands (ops). Like the web role,
#   plus membership of tradeoptions_system, the group whose system context the policies heed.
# * DATABASE_OWNER_URL: owns the schema; only `migrate` (and test database set-up) connect with it.
# Which of the first two a process uses: TRADEOPTIONS_PROCESS, "web" unless the entry point says
# "worker" (manage.py for every command but runserver and mcp_server, the celery command line).
_LOCAL_APP_DB = "postgres://tradeoptions_app@127.0.0.1:5432/tradeoptions"
# An empty variable counts as unset (docker-compose passes empty ones through from .env).
_APP_DB_URL = env.str("DATABASE_URL", default="") or _LOCAL_APP_DB
_APP_DB = env.db_url_config(_APP_DB_URL)
DATABASE_WORKER_URL_SET = bool(env.str("DATABASE_WORKER_URL", default=""))
# Unset: the web role's server and database as tradeoptions_worker, without a password (a local,
# trust-authenticated server). `check --deploy` requires it set (tradeoptions/checks.py).
DATABASE_WORKER = (
    env.db_url_config(env.str("DATABASE_WORKER_URL")) if DATABASE_WORKER_URL_SET
    else {**_APP_DB, "USER": "tradeoptions_worker", "PASSWORD": ""}
)
TRADEOPTIONS_PROCESS = env.str("TRADEOPTIONS_PROCESS", default="") or "web"
if TRADEOPTIONS_PROCESS not in ("web", "worker"):
    raise ImproperlyConfigured(f"TRADEOPTIONS_PROCESS must be web or worker, not {TRADEOPTIONS_PROCESS!r}.")
DATABASES = {"default": dict(DATABASE_WORKER if TRADEOPTIONS_PROCESS == "worker" else _APP_DB)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Page views run in a savepoint inside the tenant middleware's transaction, so a failing view
# leaves nothing half-written behind. API views own their transaction instead (one policy, in
# tradeoptions.api.OwnedViewSetMixin).
DATABASES["default"]["ATOMIC_REQUESTS"] = True
# Remembered apart from DATABASES, whose credentials are swapped while migrations run.
DATABASE_APP = _APP_DB
DATABASE_APP_ROLE = _APP_DB["USER"]
DATABASE_WORKER_ROLE = DATABASE_WORKER["USER"]
DATABASE_OWNER = env.db_url_config(env.str("DATABASE_OWNER_URL", default="") or _APP_DB_URL)
# The key that signs the tenant context (tradeoptions/tenancy.py); `migrate` gives the database
# what it needs to check it. Unset: derived from SECRET_KEY. Changing it needs a `migrate`.
TENANT_CONTEXT_KEY = env.str("TENANT_CONTEXT_KEY", default="")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# TLS to a hosted server (Neon requires it): `?sslmode=require` in DATABASE_URL, or DATABASE_SSLMODE
# (which wins, and also covers migrations: the owner's connection shares these OPTIONS).
DATABASE_SSLMODE = env.str("DATABASE_SSLMODE", default="")
if DATABASE_SSLMODE:
    DATABASES["default"].setdefault("OPTIONS", {})["sslmode"] = DATABASE_SSLMODE
# Behind a transaction-mode pooler (PgBouncer `pool_mode = transaction`, Neon's "-pooler" host) a
# server session serves other clients between our transactions: no server-side cursor may outlive
# one, and no statement is prepared on a session we may not get back. See docs/operations.md.
DATABASE_TRANSACTION_POOLER = env.bool("DATABASE_TRANSACTION_POOLER", default=False)
if DATABASE_TRANSACTION_POOLER:
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None

# --- Redis, cache, Celery -------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
    }
}
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Longer than any task's hard time limit, so a slow task is never redelivered while it runs.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# django-celery-beat's scheduler, sending only while it holds a leader lease in Redis (exactly one
# beat sends, however many run) and touching BEAT_HEARTBEAT_FILE each tick (its health check).
CELERY_BEAT_SCHEDULER = "tradeoptions.beat:SingleBeatScheduler"
BEAT_HEARTBEAT_FILE = env.str("BEAT_HEARTBEAT_FILE", default="")
CELERY_TIMEZONE = "UTC"
# Queues, each served by its own worker (Procfile, docker-compose.yml), so nothing slow or
# plentiful ever stands between beat and the monitor:
#   monitor     every job on the beat schedule, and the order reconcile: short, periodic, and
#               expiring after one period, so a job that waits behind others is lost;
#   enrichment  work that can come later: a new trade's entry context (which defers itself when
#               the rate budget is spent) and the nightly forensic targets;
#   webhooks    deliveries, which wait on other people's servers;
#   celery      Celery's default, for anything not routed here.
# A worker started without -Q serves them all (tests, a one-process setup). Within the monitor
# queue a backlog is served by priority (Redis: 0 first): the cycles (order sync, paper matching,
# snapshots, bookends, reconcile) before the sweeps, which can wait minutes without harm.
CELERY_TASK_QUEUES = [Queue(name) for name in ("monitor", "enrichment", "webhooks", "celery")]
CELERY_TASK_DEFAULT_QUEUE = "celery"
_CYCLE, _SWEEP = 0, 6
CELERY_TASK_ROUTES = {
    "monitoring.sync_orders": {"queue": "monitor", "priority": _CYCLE},
    "monitoring.reconcile_orders": {"queue": "monitor", "priority": _CYCLE},
    "monitoring.match_paper_orders": {"queue": "monitor", "priority": _CYCLE},
    "monitoring.snapshot_prices": {"queue": "monitor", "priority": _CYCLE},
    "monitoring.snapshot_shard": {"queue": "monitor", "priority": _CYCLE},
    "monitoring.orders_shard": {"queue": "monitor", "priority": _CYCLE},
    "monitoring.match_paper_orders_shard": {"queue": "monitor", "priority": _CYCLE},
    "monitoring.take_bookends": {"queue": "monitor", "priority": _CYCLE},
    "monitoring.resend_webhooks": {"queue": "monitor", "priority": _SWEEP},
    "monitoring.request_forensics": {"queue": "monitor", "priority": _SWEEP},
    "monitoring.purge_idempotency_keys": {"queue": "monitor", "priority": _SWEEP},
    "monitoring.request_reports": {"queue": "monitor", "priority": _SWEEP},
    # Long and nightly: on the general workers, never holding a slot of the monitor's.
    "monitoring.maintain_snapshot_partitions": {"queue": "celery", "priority": _SWEEP},
    "monitoring.back_up_database": {"queue": "celery", "priority": _SWEEP},
    "monitoring.collect_entry_context": {"queue": "enrichment"},
    "analytics.compute_targets": {"queue": "enrichment"},
    "analytics.send_reports": {"queue": "enrichment"},
    "trades.deliver_webhook": {"queue": "webhooks"},
    "trades.deliver_channel_message": {"queue": "webhooks"},
}
# Share of every Tradier rate budget (per token and group) that background work, the entry
# context, may never spend: kept for the monitor, the order sync and placements (brokers/ratelimit.py).
TRADIER_RATE_RESERVED_SHARE = env.float("TRADIER_RATE_RESERVED_SHARE", default=0.3)
# Percent kept unspent below each of Tradier's published per-minute limits (60 → 48 at 20 %).
TRADIER_RATE_SAFETY_MARGIN_PCT = env.float("TRADIER_RATE_SAFETY_MARGIN_PCT", default=20.0)
# Stop modifications (trailing stops) per Tradier account a minute, inside the trading budget.
TRADIER_MODIFY_BUDGET_PER_MINUTE = env.int("TRADIER_MODIFY_BUDGET_PER_MINUTE", default=10)
# The worker keeps the LOGGING below (JSON in production, with the task id) instead of its own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Auth -----------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Not a rule for passwords: its hook revokes the user's API tokens whenever a password changes.
    {"NAME": "tradeoptions.auth.TokensEndWithThePassword"},
]
# Brute-force protection on every password door (/login/, /admin/login/, POST /api/auth/token):
# failures are counted in Redis, outside the request's transaction (tradeoptions/lockout.py).
# A username+address is locked after AXES_FAILURE_LIMIT failures, a username from any addresses
# after LOGIN_FAILURE_LIMIT_PER_USERNAME; for AXES_COOLOFF_HOURS after the last counted failure.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
LOGIN_FAILURE_LIMIT_PER_USERNAME = env.int("LOGIN_FAILURE_LIMIT_PER_USERNAME", default=20)
# ...except from an address the user signed in from (with her password) within this many days: so
# that failing 20 times an hour from anywhere cannot keep her locked out at home or at work.
LOGIN_KNOWN_ADDRESS_DAYS = env.float("LOGIN_KNOWN_ADDRESS_DAYS", default=30.0)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "tradeoptions.lockout.LoginFailures"
AXES_CACHE = "default"
LOGIN_FAILURES_PREFIX = "login-failures"
# A refused guess was never checked: it does not extend the lock (see tradeoptions/lockout.py).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "tradeoptions.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "tradeoptions.lockout.client_address"
# axes' admin pages read its database tables, which the Redis counters leave empty.
AXES_ENABLE_ADMIN = False
# How many reverse proxies stand in front of the app, each appending to X-Forwarded-For. 0: the app
# is reached directly and X-Forwarded-For is never believed. See docs/operations.md.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "tradeoptions.pagination.PageNumbers",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", default="30/min"),
        "user": env.str("THROTTLE_USER", default="600/min"),
    },
    # The anonymous throttle keys on the client address: the same trusted chain as the login lockout
    # (DRF's default, None, would believe any X-Forwarded-For a client sends).
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    # drf-standardized-errors' AutoSchema documents the error responses (400 ... 429) each operation
    # can give, in the one error shape, so that the schema fuzzer (tests/test_api_fuzzing.py) can
    # hold every answer to the schema.
    "DEFAULT_SCHEMA_CLASS": "drf_standardized_errors.openapi.AutoSchema",
    # The API speaks JSON only: form and multipart bodies (strings for every value, "0" for false)
    # are not what any client of it sends, and a narrower door is easier to keep shut. Nesting is
    # bounded (tradeoptions/parsers.py): a deep body is a 400, not a RecursionError.
    "DEFAULT_PARSER_CLASSES": ["tradeoptions.parsers.NestingLimitedJSONParser"],
    # `?format=` the view does not offer is a 400 naming those it does (DRF: 404).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "tradeoptions.parsers.StrictContentNegotiation",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # One error shape everywhere: {"type", "errors": [{"code", "detail", "attr"}]} (and no 500 for bad input).
    "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
}
REST_KNOX = {
    # Tokens are stored hashed by knox; a token lives 30 days unless revoked earlier.
    "TOKEN_TTL": timedelta(days=env.int("API_TOKEN_TTL_DAYS", default=30)),
    "AUTO_REFRESH": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "tradeoptions API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/schema/ and /api/docs/ (tradeoptions.api_docs) need a login unless API_DOCS_PUBLIC; any
    # other spectacular view that might be mounted needs one, full stop.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI from our own static files (drf-spectacular-sidecar), under the page policy.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # One name for one choice set, wherever it appears (trade status, event old/new status), and
    # the error enums of drf-standardized-errors under their own names.
    "ENUM_NAME_OVERRIDES": {
        "TradeStatusEnum": "trades.models.TradeStatus",
        "OptionTypeEnum": "trades.models.OptionType",  # a trade's option_type and a leg's right
        "StrategyTypeEnum": "trades.models.StrategyType",  # what a trade's legs make, `single` included
        "SpreadStrategyTypeEnum": "trades.api.SPREAD_STRATEGY_CHOICES",  # what a multi-leg open may name
        "LegSideEnum": "trades.models.LegSide",  # a leg held LONG or SHORT
        "OpeningLegSideEnum": "trades.api.SPREAD_SIDE_CHOICES",  # the same, as an opening may say it
        "ProblemTypeEnum": "tradeoptions.api.ProblemType",
        **{f"{name}Enum": f"drf_standardized_errors.openapi_serializers.{name}Enum.choices"
           for name in ("ValidationError", "ClientError", "ServerError", "ParseErrorCode", "ErrorCode401",
                        "ErrorCode403", "ErrorCode404", "ErrorCode405", "ErrorCode406", "ErrorCode415",
                        "ErrorCode429", "ErrorCode500")},
    },
    "POSTPROCESSING_HOOKS": ["drf_standardized_errors.openapi_hooks.postprocess_schema_enums",
                             "tradeoptions.openapi.strict_decimal_patterns", "tradeoptions.openapi.trade_links"],
}
# `manage.py mcp_server` over stdio answers as the owner of this API token (one trader per process).
MCP_API_TOKEN = env.str("MCP_API_TOKEN", default="")

# --- Time -----------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"  # stored and transported in UTC
MARKET_TIME_ZONE = "America/New_York"  # reasoned about in New York time
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Trading --------------------------------------------------------------------------------
# Comma-separated Fernet keys; the first encrypts, all decrypt (so keys can be rotated).
ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS", default=[]) or (
    [env.str("ENCRYPTION_KEY")] if env.str("ENCRYPTION_KEY", default="") else []
)
TRADIER_SANDBOX_URL = env.str("TRADIER_SANDBOX_URL", default="https://sandbox.tradier.com/v1")
TRADIER_LIVE_URL = env.str("TRADIER_LIVE_URL", default="https://api.tradier.com/v1")
ORATS_URL = env.str("ORATS_URL", default="https://api.orats.io/datav2")
ORATS_TOKEN = env.str("ORATS_TOKEN", default="")
ORATS_LIVE = env.bool("ORATS_LIVE", default=False)
ORATS_MAX_WORKERS = env.int("ORATS_MAX_WORKERS", default=4)
MARKET_DATA_SOURCE = env.str("MARKET_DATA_SOURCE", default="simulated")
MARKET_DATA_SEED = env.str("MARKET_DATA_SEED", default="tradeoptions")
MARKET_DATA_REPLAY_FILE = env.str("MARKET_DATA_REPLAY_FILE", default="")
# The local paper broker's costs in dollars: commission per contract (the default of each account's own
# `commission_per_contract`, which the broker charges) and slippage per share.
PAPER_COMMISSION_PER_CONTRACT = env.str("PAPER_COMMISSION_PER_CONTRACT", default="0.65")
PAPER_SLIPPAGE_PER_SHARE = env.str("PAPER_SLIPPAGE_PER_SHARE", default="0")
# Spread legs fill at their natural side (buy at the ask, sell at the bid) improved toward the mid
# by this percent of the half-spread (0: natural, 100: the mid).
PAPER_SPREAD_IMPROVEMENT_PCT = env.str("PAPER_SPREAD_IMPROVEMENT_PCT", default="0")
# Off (the default): the local paper broker refuses any order that leaves a short option without a
# long one of its type expiring no earlier (docs/paper-spreads.md). On: naked shorts are accepted.
PAPER_ALLOW_NAKED_SHORTS = env.bool("PAPER_ALLOW_NAKED_SHORTS", default=False)
# Pin risk: in the last hour before a short option leg's expiry cutoff, an underlying within this
# percent of the leg's strike (0.5: SPY at 600 within $3, SPX at 6000 within $30) is told to the
# trader, once per leg and expiry (docs/spreads.md, "Expiry"). 0 turns the alert off.
PIN_RISK_DISTANCE = env.str("PIN_RISK_DISTANCE", default="0.5")
FORCE_MARKET_OPEN = env.bool("FORCE_MARKET_OPEN", default=False)
# The snapshot and order cycles split by account into this many Celery tasks a cycle
# (monitoring/sharding.py; docs/operations.md, "Running N monitor workers"). 0: one task does the
# whole cycle, as before. A number: the monitor workers' total concurrency. `auto`: the pool
# processes of the live workers on the `monitor` queue, counted every 30 s (1 if none answers).
# Changing it takes effect on the next cycle.
_MONITOR_SHARDS = env.str("MONITOR_SHARDS", default="0").strip().lower()
MONITOR_SHARDS: int | str = "auto" if _MONITOR_SHARDS == "auto" else int(_MONITOR_SHARDS)
# Sharded paper matching: a shard that starts more than this many seconds after its coordinator
# quoted the market skips its slot rather than fill at old prices stamped now; the next slot (20 s
# on) fills at fresh quotes.
MATCH_QUOTES_MAX_AGE = env.float("MATCH_QUOTES_MAX_AGE", default=10.0)
# The order sync's pre-filter for local-paper accounts (monitoring/sync.py, `paper_look`): only the
# accounts of which something could have changed since the sync last looked are read. Off: every
# account, every cycle. Every trade is looked at again at least every ORDER_SYNC_FULL_LOOK_SECONDS
# whatever changed (the safety net).
ORDER_SYNC_PREFILTER = env.bool("ORDER_SYNC_PREFILTER", default=True)
ORDER_SYNC_FULL_LOOK_SECONDS = env.int("ORDER_SYNC_FULL_LOOK_SECONDS", default=900)
# The market API (/api/market/...): how long a quote or chain (expirations) is shared by everyone.
MARKET_QUOTE_CACHE_SECONDS = env.int("MARKET_QUOTE_CACHE_SECONDS", default=5)
MARKET_EXPIRATIONS_CACHE_SECONDS = env.int("MARKET_EXPIRATIONS_CACHE_SECONDS", default=300)
# Simulated quotes while Tradier trades can be placed: refused by a system check unless this is on.
ALLOW_SIMULATED_QUOTES_WITH_REAL_BROKER = env.bool("ALLOW_SIMULATED_QUOTES_WITH_REAL_BROKER", default=False)
# Tradier market data (MARKET_DATA_SOURCE=tradier): one read-only token for the whole system.
TRADIER_MARKET_DATA_TOKEN = env.str("TRADIER_MARKET_DATA_TOKEN", default="")
TRADIER_MARKET_DATA_URL = env.str("TRADIER_MARKET_DATA_URL", default="") or TRADIER_LIVE_URL
# Each periodic job (monitoring/schedules.py) can be switched off: SCHEDULE_<NAME>=false.
SCHEDULE_SNAPSHOT_PRICES = env.bool("SCHEDULE_SNAPSHOT_PRICES", default=True)
SCHEDULE_MATCH_PAPER_ORDERS = env.bool("SCHEDULE_MATCH_PAPER_ORDERS", default=True)
SCHEDULE_TAKE_BOOKENDS = env.bool("SCHEDULE_TAKE_BOOKENDS", default=True)
SCHEDULE_SYNC_ORDERS = env.bool("SCHEDULE_SYNC_ORDERS", default=True)
SCHEDULE_PURGE_IDEMPOTENCY_KEYS = env.bool("SCHEDULE_PURGE_IDEMPOTENCY_KEYS", default=True)
SCHEDULE_REQUEST_FORENSICS = env.bool("SCHEDULE_REQUEST_FORENSICS", default=True)
SCHEDULE_REQUEST_REPORTS = env.bool("SCHEDULE_REQUEST_REPORTS", default=True)
SCHEDULE_RESEND_WEBHOOKS = env.bool("SCHEDULE_RESEND_WEBHOOKS", default=True)
SCHEDULE_MAINTAIN_SNAPSHOT_PARTITIONS = env.bool("SCHEDULE_MAINTAIN_SNAPSHOT_PARTITIONS", default=True)
SCHEDULE_BACK_UP_DATABASE = env.bool("SCHEDULE_BACK_UP_DATABASE", default=True)
# The price history's monthly partitions (monitoring/partitions.py): how many months ahead of this
# one exist; how many whole months before this one stay in the database (0: all, forever), older
# ones being archived as Parquet files into SNAPSHOT_ARCHIVE_DIR, then dropped.
SNAPSHOT_PARTITIONS_AHEAD = env.int("SNAPSHOT_PARTITIONS_AHEAD", default=3)
SNAPSHOT_RETENTION_MONTHS = env.int("SNAPSHOT_RETENTION_MONTHS", default=0)
SNAPSHOT_ARCHIVE_DIR = Path(env.str("SNAPSHOT_ARCHIVE_DIR", default=str(BASE_DIR / "archives" / "snapshots")))
# The nightly backup (tradeoptions/backups.py runs scripts/backup.sh as the backup role): where the
# dumps go, how many are kept, and the New York hour after which each night's is due. Without
# BACKUP_DATABASE_URL the job logs an error instead of backing up.
BACKUP_DATABASE_URL = env.str("BACKUP_DATABASE_URL", default="")
BACKUP_DIR = Path(env.str("BACKUP_DIR", default=str(BASE_DIR / "backups")))
BACKUP_KEEP = env.int("BACKUP_KEEP", default=14)
BACKUP_HOUR = env.int("BACKUP_HOUR", default=1)
ALLOW_LIVE_TRADING = env.bool("ALLOW_LIVE_TRADING", default=False)
# Tradier sandbox (paper at Tradier) for traders who bring a token; off: this server trades locally only.
ALLOW_TRADIER_SANDBOX = env.bool("ALLOW_TRADIER_SANDBOX", default=True)
# The API's schema (/api/schema/) and Swagger page (/api/docs/) for anyone, without a login.
API_DOCS_PUBLIC = env.bool("API_DOCS_PUBLIC", default=False)
# The largest AI reasoning log a trade may carry, in bytes of JSON (a bigger one is refused, 400).
ENTRY_AI_LOG_MAX_BYTES = env.int("ENTRY_AI_LOG_MAX_BYTES", default=64 * 1024)
# Seconds a scanner's `as_of` may be after the entry and still count as clock skew (not the future).
ENTRY_CONTEXT_CLOCK_SKEW_SECONDS = env.float("ENTRY_CONTEXT_CLOCK_SKEW_SECONDS", default=5.0)
# Outgoing webhooks (trades.services.notifications): attempts before giving up, seconds the
# receiver has to answer, and whether loopback/private targets are allowed (local and tests only).
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=6)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# Seconds the webhook host's DNS lookup may take (saving the URL, and each send) before it is refused.
WEBHOOK_DNS_TIMEOUT_SECONDS = env.float("WEBHOOK_DNS_TIMEOUT_SECONDS", default=2.0)
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=False)
# Notification channels (trades.services.channels, sent through Apprise on the webhooks queue):
# attempts before a message is given up, and whether a channel may reach loopback/private hosts
# (json://, ntfy:// with a host, mailto:// with an SMTP host, …). Off by default everywhere,
# local included: only the test settings turn it on, for their local receivers.
NOTIFY_MAX_ATTEMPTS = env.int("NOTIFY_MAX_ATTEMPTS", default=6)
NOTIFY_ALLOW_PRIVATE_TARGETS = env.bool("NOTIFY_ALLOW_PRIVATE_TARGETS", default=False)
# Web Push (trades.services.push): the server's VAPID key pair, P-256, base64url (the private key
# raw, 32 bytes, or DER; the public one the uncompressed point the browsers take as
# applicationServerKey; left empty it is derived from the private key). No private key: push is
# off and the settings page says so. `make run` makes a pair once and keeps it in .data/secrets.env.
# The subject (mailto: or https:) is who the push services may contact about our sends.
VAPID_PRIVATE_KEY = env.str("VAPID_PRIVATE_KEY", default="")
VAPID_PUBLIC_KEY = env.str("VAPID_PUBLIC_KEY", default="")
VAPID_SUBJECT = env.str("VAPID_SUBJECT", default="mailto:ops@tradeoptions.invalid")
# Seconds a push service keeps a message for a phone that is off or out of reach.
PUSH_TTL_SECONDS = env.int("PUSH_TTL_SECONDS", default=24 * 3600)

# Readable lines locally, one JSON object per line in production (LOG_FORMAT=text|json); each
# record names its request, task and trade (tradeoptions/logs.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "tradeoptions.logs.LogContextFilter"}},
    "formatters": {
        "text": {"()": "tradeoptions.logs.ContextTextFormatter",
                 "format": "%(asctime)s %(levelname)s %(name)s %(context)s%(message)s"},
        "json": {"()": "pythonjsonlogger.json.JsonFormatter",
                 "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(task_id)s %(trade_id)s",
                 "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # ORATS takes its token in the URL; urllib3 logs URLs at DEBUG. Never let that through.
    # Apprise's own lines below WARNING describe the request it makes (hosts, paths, at DEBUG the
    # payload): a channel URL's credentials can sit in them, so only its warnings pass.
    "loggers": {"urllib3": {"level": "INFO"}, "apprise": {"level": "WARNING"}},
}

# --- Outages --------------------------------------------------------------------------------
# PostgreSQL or Redis unreachable: the API answers 503 with what is down, not 500 (tradeoptions/outages.py).
DRF_STANDARDIZED_ERRORS = {
    "EXCEPTION_HANDLER_CLASS": "tradeoptions.outages.OutageAwareExceptionHandler",
    # A 500 is a bug to fix, not a documented answer: the fuzzer must see it as undocumented.
    "ALLOWED_ERROR_STATUS_CODES": ["400", "401", "403", "404", "405", "406", "415", "429"],
}

# Exit policies (trades.services.exit_policy_runs): a trade's stop is moved at most once per this
# many seconds, so a volatile minute never becomes a storm of cancel/replace at the broker.
EXIT_POLICY_MIN_INTERVAL_SECONDS = env.int("EXIT_POLICY_MIN_INTERVAL_SECONDS", default=60)
