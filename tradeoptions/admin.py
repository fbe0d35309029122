"""The ops admin: staff-only, and the one web surface that sees across tenants.

It does so only through the explicit system context, entered for each admin view after Django
has checked that the user is active staff. Anyone else gets the login page, with no rows.
"""

from functools import cache, wraps

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.options import IncorrectLookupParameters

from . import tenancy


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
            with tenancy.system_context():
                response = checked(request, *args, **kwargs)
                if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                    response.render()
                return response

        return in_system_context


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
