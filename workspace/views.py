"""Signing in (the password, then a two-factor code for those who set one up) and choosing a store.

Signing in with two-factor: /app/login/ checks the password (django-axes counts wrong ones); a person with
an authenticator is not signed in yet but sent to /app/login/code/, which holds who they are in the session
for SIGN_IN_WINDOW and signs them in once a code from the app or an unused recovery code is right. Wrong
codes are failed sign-ins for axes as well (lifecycle/two_factor.py), so guessing codes locks out like
guessing passwords, and the locked-out page is the same.
"""

import math
import time
from urllib.parse import urlencode

from axes.helpers import get_cool_off
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice

from lifecycle.two_factor import (
    TwoFactorLocked,
    authenticator,
    code_verify,
    confirm_throttled,
    has_two_factor,
    recovery_codes_left,
)
from workspace.access import memberships_of


class LoginView(auth_views.LoginView):
    template_name = "workspace/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form):
        user = form.get_user()
        if has_two_factor(user):
            return sign_in_pending(self.request, user, self.get_success_url())
        return super().form_valid(form)


class LogoutView(auth_views.LogoutView):
    next_page = "workspace:login"


def locked_out(request: HttpRequest, response: HttpResponse | None = None, credentials: dict | None = None
               ) -> HttpResponse:
    """django-axes' answer to a sign-in at /app/login/ or /admin/login/ once the username or the address is locked.

    The same sign-in page, with the form kept for after the cool-off, says when to retry: 429, Retry-After.
    """
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off else 0
    page = render(request, "workspace/login.html", {
        "locked": True, "retry_minutes": max(1, math.ceil(seconds / 60)),
        "username": (credentials or {}).get("username", "") or request.POST.get("username", ""),
        "next": request.POST.get("next", "") or request.GET.get("next", ""),
    }, status=429)
    if seconds:
        page["Retry-After"] = str(seconds)
    return page


def picker(request: HttpRequest) -> HttpResponse:
    """/app/: straight into the only store, or a choice between several."""
    if not request.user.is_authenticated:
        return redirect("workspace:login")
    stores = memberships_of(request.user)
    if len(stores) == 1:
        return redirect("workspace:home", tenant=stores[0][0].slug)
    return render(request, "workspace/picker.html", {"stores": stores})


# Between the right password and the code: long enough to find the phone, short enough that a
# forgotten tab does not hold a half sign-in.
SIGN_IN_WINDOW = 600
PENDING_USER, PENDING_BACKEND, PENDING_SINCE = "two_factor_user", "two_factor_backend", "two_factor_since"
WRONG_CODE = ("That code is not right. Type the 6 digits your authenticator app shows now, or one of your "
              "recovery codes.")
THROTTLED = "Too many wrong codes in a row: wait a few seconds, then type the code your app shows now."


class CodeForm(forms.Form):
    code = forms.CharField(label="Code", max_length=32, strip=True,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True,
                                                         "inputmode": "text", "spellcheck": "false"}))


def safe_next(request: HttpRequest) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted and url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return wanted
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def sign_in_pending(request: HttpRequest, user, next_url: str) -> HttpResponse:
    """The password was right and `user` has an authenticator: ask for the code before signing in."""
    request.session[PENDING_USER] = user.pk
    request.session[PENDING_BACKEND] = getattr(user, "backend", "django.contrib.auth.backends.ModelBackend")
    request.session[PENDING_SINCE] = time.time()
    return redirect(f"{reverse('workspace:login-code')}?{urlencode({'next': next_url})}")


def _forget_pending(request: HttpRequest) -> None:
    for key in (PENDING_USER, PENDING_BACKEND, PENDING_SINCE):
        request.session.pop(key, None)


def _code_user(request: HttpRequest):
    """Who the code step is for: a session half-way through signing in, or a signed-in one without its code."""
    if request.user.is_authenticated:
        return request.user
    since = request.session.get(PENDING_SINCE)
    if not since or time.time() - since > SIGN_IN_WINDOW:
        return None
    return get_user_model().objects.filter(pk=request.session.get(PENDING_USER), is_active=True).first()


def login_code(request: HttpRequest) -> HttpResponse:
    """/app/login/code/: the second step of signing in (see the module's docstring)."""
    user = _code_user(request)
    next_url = safe_next(request)
    if user is None:
        messages.info(request, "Sign in again: the code step waits at most 10 minutes after the password.")
        return redirect("workspace:login")
    if getattr(user, "is_verified", lambda: False)() or not has_two_factor(user):
        return redirect(next_url)
    form = CodeForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            totp = authenticator(user)
            throttled = totp is not None and confirm_throttled(totp)  # before this try, which restarts the wait
            try:
                device = code_verify(request, user, form.cleaned_data["code"])
            except TwoFactorLocked:
                return locked_out(request, credentials={"username": user.get_username()})
            if device is not None:
                return _signed_in(request, user, device, next_url)
            form.add_error("code", THROTTLED if throttled else WRONG_CODE)
    return render(request, "workspace/login_code.html", {"form": form, "next": next_url,
                                                         "username": user.get_username()}, status=status)


def _signed_in(request: HttpRequest, user, device, next_url: str) -> HttpResponse:
    backend = request.session.get(PENDING_BACKEND, "django.contrib.auth.backends.ModelBackend")
    if not request.user.is_authenticated:
        login(request, user, backend=backend)
    _forget_pending(request)
    otp_login(request, device)
    if isinstance(device, StaticDevice):
        left = recovery_codes_left(user)
        messages.warning(request, f"You signed in with a recovery code; it cannot be used again. {left} left: "
                                  "set up two-factor again for new ones when few are left.")
    return redirect(next_url)
