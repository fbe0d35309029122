"""The ops admin: staff-only, and the one web surface that sees across tenants.

It does so only through the explicit system context, entered for each admin view after Django
has checked that the user is active staff. Anyone else gets the login page, with no rows.
"""

from functools import wraps

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

from . import tenancy


class OpsAdminSite(admin.AdminSite):
    site_header = "tradeoptions operations"
    site_title = "tradeoptions ops"

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


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records nobody edits by hand (audit events, price history, webhook deliveries)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
