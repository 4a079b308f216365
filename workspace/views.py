"""Signing in and choosing a store."""

import math

from axes.helpers import get_cool_off
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from workspace.access import memberships_of


class LoginView(auth_views.LoginView):
    template_name = "workspace/login.html"
    redirect_authenticated_user = True


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
