from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TradeoptionsConfig(AppConfig):
    """The project package as an app: database roles, tenancy and ops commands live here."""

    name = "tradeoptions"
    verbose_name = "tradeoptions platform"

    def ready(self):
        from . import checks  # noqa: F401  (registers system checks)
        from .db import grant_app_role_privileges, store_tenant_context_key
        from .logs import stamp_every_record

        stamp_every_record()
        post_migrate.connect(grant_app_role_privileges, sender=self)
        post_migrate.connect(store_tenant_context_key, sender=self)
