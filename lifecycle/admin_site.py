"""The operators' admin site: `/admin/` is for the platform's operators (active superusers) only.

A store's users (owners, marketers, viewers) work in the tenant-scoped workspace at `/app/`; none
of them is ever a superuser, and `is_staff` alone opens nothing here. The site refuses everybody
but operators before any admin view runs (a signed-in store user gets the login page, which says
the account is not authorised), so no store user ever reaches a changelist, a form or an action,
and TenantScopeMiddleware gives the all-stores scope to operators only (`tenancy.is_operator`).

Two-factor: an operator who has set up an authenticator (at /app/account/two-factor/, like anyone) gives its
code, or a recovery code, on the same sign-in form, and a session that did not give it (one signed in at
/app/ before the device existed) is refused here. An operator without a device still signs in with the
password: requiring a device of every operator would lock out the existing ones until each sets one up, and
is the next step once they have. A wrong code counts with wrong passwords in django-axes' lockout, and the
answer never says which of the three was wrong. Operators remove a store user's lost authenticator here
(django-otp's TOTP and static device admin pages).

Installed as the default admin site by `lifecycle.apps.OperatorAdminConfig` (INSTALLED_APPS), so
every `@admin.register` in the apps registers here.
"""

from django import forms
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm

from .tenancy import is_operator
from .two_factor import TwoFactorLocked, code_verify, has_two_factor


class OperatorAuthenticationForm(AdminAuthenticationForm):
    """Signs in operators only: a store user's right password gets the same answer as a wrong one."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": (
            "Please enter the correct %(username)s and password for an operator account, and your two-factor "
            "code if you set one up. Note that the fields may be case-sensitive. Store owners and their teams "
            "sign in to the workspace at /app/login/."
        ),
    }

    otp_token = forms.CharField(label="Two-factor code (if you set one up)", required=False, max_length=32,
                                widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}))

    def confirm_login_allowed(self, user) -> None:
        if not is_operator(user):  # instead of the stock form's is_staff check
            raise self.get_invalid_login_error()
        if has_two_factor(user):
            try:
                device = code_verify(self.request, user, self.data.get("otp_token", ""))
            except TwoFactorLocked:
                device = None
            if device is None:
                raise self.get_invalid_login_error()
            user.otp_device = device  # django-otp marks the session verified when the login signal fires


class OperatorAdminSite(AdminSite):
    site_header = "Lifecycle operators"
    site_title = "Lifecycle operators"
    index_title = "Every store (operators only)"
    login_form = OperatorAuthenticationForm
    login_template = "admin/operator_login.html"

    def has_permission(self, request) -> bool:
        user = request.user
        if not is_operator(user):
            return False
        return getattr(user, "is_verified", lambda: False)() or not has_two_factor(user)
