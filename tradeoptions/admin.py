"""The ops admin: staff-only, and the one web surface that sees across tenants.

It does so only through the explicit system context, entered for each admin view after Django
has checked that the user is active staff. Anyone else gets the login page, with no rows.

The web role may not enter the system context (tradeoptions/tenancy.py), so in a web process a
staff member's admin view runs on a connection of its own, opened with the worker role's
credentials (DATABASE_WORKER_URL) and closed when the view is done. The admin views are therefore
non-atomic for Django and the tenant middleware: each runs in a transaction of its own, on that
connection. docs/security.md says what this costs.
"""

from contextlib import contextmanager
from functools import cache, wraps
from types import FunctionType

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.options import IncorrectLookupParameters
from django.db import connection, transaction
from django.urls import URLResolver

from . import tenancy
from .db import CREDENTIALS


@contextmanager
def _on_the_worker_role():
    """This thread's default connection, reopened as the worker role for the block.

    The connection gets a copy of its settings: the dict is shared by every thread's connection,
    and other threads' requests must stay on the web role.
    """
    worker = {key: settings.DATABASE_WORKER.get(key) for key in CREDENTIALS}
    if connection.settings_dict.get("USER") == worker["USER"]:
        yield  # a worker-role process already (ops shell, tests)
        return
    shared = connection.settings_dict
    connection.close()
    connection.settings_dict = {**shared, **worker}
    try:
        yield
    finally:
        try:
            connection.close()
        finally:  # whatever close() raises, this thread's next request is the web role's again
            connection.settings_dict = shared


class OpsAdminSite(admin.AdminSite):
    site_header = "tradeoptions operations"
    site_title = "tradeoptions ops"

    def register(self, model_or_iterable, admin_class=None, **options):
        """Every model admin, ours or a library's (django-celery-beat's, knox's...), lists with
        BoundedDates mixed into its change list."""
        super().register(model_or_iterable, admin_class, **options)
        for model_admin in self._registry.values():
            if "get_changelist" not in vars(model_admin):
                own = model_admin.get_changelist
                model_admin.get_changelist = lambda request, own=own, **kwargs: _bounded(own(request, **kwargs))

    def admin_view(self, view, cacheable=False):
        checked = super().admin_view(view, cacheable)

        @wraps(checked)
        def in_system_context(request, *args, **kwargs):
            if not self.has_permission(request):
                return checked(request, *args, **kwargs)  # redirects to the admin login
            # Staff see every tenant: that is the admin's job. Render inside the context too,
            # because admin templates evaluate their querysets lazily.
            with _on_the_worker_role(), transaction.atomic(), tenancy.system_context():
                response = checked(request, *args, **kwargs)
                if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                    response.render()
                return response

        return in_system_context

    def get_urls(self):
        return _non_atomic(super().get_urls())


def _non_atomic(patterns: list) -> list:
    """Mark the admin's views (the functions that call admin_view() when a request comes) so that
    neither ATOMIC_REQUESTS nor the tenant middleware opens a transaction on the web role's
    connection first. Views that are bound methods (login, the catch-all redirect) never enter
    the system context and keep their request transaction."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            _non_atomic(pattern.url_patterns)
        elif isinstance(pattern.callback, FunctionType):
            transaction.non_atomic_requests(pattern.callback)
    return patterns


class OpsAdminConfig(AdminConfig):
    default_site = "tradeoptions.admin.OpsAdminSite"

    def ready(self):
        super().ready()  # registers every installed app's admin, knox's among them
        from knox.models import AuthToken

        # knox's own admin lists token digests and lets staff mint a never-expiring token for any
        # user, shown in clear, that works on the API: a way round the user's password and the
        # login lockout. API tokens are the user's own business (the settings page lists and revokes
        # them); staff who must cut a user's tokens set a new password for the user here (that revokes
        # them all, tradeoptions/auth.py) or make the user inactive (knox refuses inactive users).
        if admin.site.is_registered(AuthToken):
            admin.site.unregister(AuthToken)


class BoundedDates:
    """For a change list: a date-hierarchy year at the end of the calendar (`?timestamp__year=9999`:
    the year after it is 10000, a ValueError, or an OverflowError for its last month or day) is
    answered like any other bad filter (the list again, "?e=1"), not with a 500."""

    def get_filters(self, request):
        try:
            return super().get_filters(request)
        except (ValueError, OverflowError) as error:
            raise IncorrectLookupParameters(error) from error


@cache
def _bounded(changelist: type) -> type:
    return changelist if issubclass(changelist, BoundedDates) else type(
        f"Bounded{changelist.__name__}", (BoundedDates, changelist), {})


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records nobody edits by hand (audit events, price history, webhook deliveries)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
