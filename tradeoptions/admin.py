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


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records nobody edits by hand (audit events, price history, webhook deliveries)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
