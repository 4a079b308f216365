"""The signed-in person's own account: two-factor setup and the password.

These pages belong to the person, not to a store: their URLs name no store, they read and change only the
person's own account, and each change lands in the audit log of every store the person is in
(lifecycle/two_factor.py, `member_event_append`).
"""

import base64

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from django_otp import login as otp_login

from lifecycle.models import Tenant
from lifecycle.tenancy import system_scope
from lifecycle.two_factor import (
    TwoFactorLocked,
    code_verify,
    confirm_throttled,
    has_two_factor,
    member_event_append,
    new_secret,
    pending_authenticator,
    recovery_codes_left,
    two_factor_disable,
    two_factor_enable,
)
from workspace.views import THROTTLED, WRONG_CODE, CodeForm, locked_out, safe_next

PENDING_SECRET = "two_factor_pending_secret"  # noqa: S105 - a session key's name


def _qr_svg(data: str) -> str:
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    return image.to_string(encoding="unicode")


def _requiring_stores(user) -> list[Tenant]:
    with system_scope():
        return list(Tenant.objects.filter(memberships__user=user, require_two_factor=True).order_by("name"))


@login_required
def two_factor(request: HttpRequest) -> HttpResponse:
    """/app/account/two-factor/: set up an authenticator (QR code, then a code to confirm), or see and remove it."""
    user = request.user
    requiring = _requiring_stores(user)
    context = {"requiring": requiring, "next": safe_next(request) if request.GET.get("next") or
               request.POST.get("next") else "", "form": CodeForm()}
    if has_two_factor(user):
        return render(request, "workspace/account/two_factor.html", {
            **context, "enabled": True, "codes_left": recovery_codes_left(user)})
    # The secret on the page waits in the session: a GET saves nothing, and a reload shows the same one.
    secret = request.session.get(PENDING_SECRET)
    if not secret:
        secret = request.session[PENDING_SECRET] = new_secret()
    device = pending_authenticator(user, secret, save=request.method == "POST")
    status = 200
    if request.method == "POST":
        form = CodeForm(request.POST)
        throttled = confirm_throttled(device)  # before this try, which restarts the wait
        codes = two_factor_enable(user=user, device=device, code=request.POST.get("code", "")) \
            if form.is_valid() else None
        if codes is not None:
            request.session.pop(PENDING_SECRET, None)
            otp_login(request, device)  # this session gave the code: it counts as signed in with two-factor
            return render(request, "workspace/account/two_factor.html", {
                **context, "enabled": True, "recovery_codes": codes, "codes_left": len(codes)}, status=201)
        form.add_error("code", THROTTLED if throttled else
                       "That code is not right: type the 6 digits the app shows now for this account.")
        context["form"], status = form, 400
    b32 = base64.b32encode(device.bin_key).decode().rstrip("=")
    return render(request, "workspace/account/two_factor.html", {
        **context, "enabled": False, "qr_svg": mark_safe(_qr_svg(device.config_url)),  # noqa: S308 - qrcode's own SVG
        "secret": b32, "secret_groups": " ".join(b32[i:i + 4] for i in range(0, len(b32), 4)),
    }, status=status)


@login_required
@require_POST
def two_factor_off(request: HttpRequest) -> HttpResponse:
    """Remove the authenticator and recovery codes: a current code confirms it is the person, not a left-open tab."""
    user = request.user
    requiring = _requiring_stores(user)
    form = CodeForm(request.POST)
    error = ""
    if requiring:
        error = (f"{', '.join(t.name for t in requiring)} require{'s' if len(requiring) == 1 else ''} two-factor "
                 "sign-in for every member: it stays on while you are in that team.")
    elif form.is_valid():
        try:
            device = code_verify(request, user, form.cleaned_data["code"])
        except TwoFactorLocked:
            return locked_out(request, credentials={"username": user.get_username()})
        if device is not None:
            two_factor_disable(user=user, by=user.get_username())
            messages.success(request, "Two-factor sign-in is off: your password alone signs you in.")
            return redirect("workspace:account-two-factor")
        error = WRONG_CODE
    else:
        error = "Type a current code to turn two-factor sign-in off."
    return render(request, "workspace/account/two_factor.html", {
        "enabled": True, "codes_left": recovery_codes_left(user), "requiring": requiring, "form": form,
        "off_error": error, "next": ""}, status=400)


@login_required
def password(request: HttpRequest) -> HttpResponse:
    """/app/account/password/: the current password, then the new one twice. This session stays signed in."""
    user = request.user
    form = PasswordChangeForm(user, request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            with transaction.atomic():
                form.save()
                member_event_append(user=user, type="store.password_changed", data={"by": user.get_username()})
            update_session_auth_hash(request, form.user)  # other sessions of this account end; this one stays
            messages.success(request, "Your password is changed. Other browsers signed in as you are signed out.")
            return redirect("workspace:account-password")
        status = 400
    return render(request, "workspace/account/password.html", {"form": form}, status=status)


urlpatterns = [
    path("account/two-factor/", two_factor, name="account-two-factor"),
    path("account/two-factor/off/", two_factor_off, name="account-two-factor-off"),
    path("account/password/", password, name="account-password"),
]
