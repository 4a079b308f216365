"""Signing in and choosing a store."""

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from .access import memberships_of


class LoginView(auth_views.LoginView):
    template_name = "workspace/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    next_page = "workspace:login"


def picker(request: HttpRequest) -> HttpResponse:
    """/app/: straight into the only store, or a choice between several."""
    if not request.user.is_authenticated:
        return redirect("workspace:login")
    stores = memberships_of(request.user)
    if len(stores) == 1:
        return redirect("workspace:home", tenant=stores[0][0].slug)
    return render(request, "workspace/picker.html", {"stores": stores})
