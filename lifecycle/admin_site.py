"""The operators' admin site: `/admin/` is for the platform's operators (active superusers) only.

A store's users (owners, marketers, viewers) work in the tenant-scoped workspace at `/app/`; none
of them is ever a superuser, and `is_staff` alone opens nothing here. The site refuses everybody
but operators before any admin view runs (a signed-in store user gets the login page, which says
the account is not authorised), so no store user ever reaches a changelist, a form or an action,
and TenantScopeMiddleware gives the all-stores scope to operators only (`tenancy.is_operator`).

Installed as the default admin site by `lifecycle.apps.OperatorAdminConfig` (INSTALLED_APPS), so
every `@admin.register` in the apps registers here.
"""

from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm

from .tenancy import is_operator


class OperatorAuthenticationForm(AdminAuthenticationForm):
    """Signs in operators only: a store user's right password gets the same answer as a wrong one."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": (
            "Please enter the correct %(username)s and password for an operator account. Note that both "
            "fields may be case-sensitive. Store owners and their teams sign in to the workspace at /app/login/."
        ),
    }

    def confirm_login_allowed(self, user) -> None:
        if not is_operator(user):  # instead of the stock form's is_staff check
            raise self.get_invalid_login_error()


class OperatorAdminSite(AdminSite):
    site_header = "Lifecycle operators"
    site_title = "Lifecycle operators"
    index_title = "Every store (operators only)"
    login_form = OperatorAuthenticationForm

    def has_permission(self, request) -> bool:
        return is_operator(request.user)
