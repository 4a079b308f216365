"""Who may see and change what in the workspace.

Members read everything of their tenant; writes need a role. A tenant the user does not
belong to is a 404, never a 403, so the URL space tells nothing about other stores.
Superusers (the operators) may open every tenant, as owners.

A user's memberships span tenants, so reading them is a lookup across tenants
(`system_scope`); the page then runs in the scope of the tenant it opened.
"""

import functools
from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from lifecycle.models import Membership, Tenant
from lifecycle.tenancy import activate, system_scope
from lifecycle.two_factor import has_two_factor

ROLE_RANK = {Membership.Role.VIEWER: 0, Membership.Role.MARKETER: 1, Membership.Role.OWNER: 2}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def role_allows(role: str, needed: str) -> bool:
    return ROLE_RANK[Membership.Role(role)] >= ROLE_RANK[Membership.Role(needed)]


def memberships_of(user) -> list[tuple[Tenant, str]]:
    """The tenants a user may open, with their role, by name."""
    if not user.is_authenticated:
        return []
    if user.is_superuser:
        return [(t, Membership.Role.OWNER) for t in Tenant.objects.order_by("name")]
    with system_scope():
        rows = list(Membership.objects.filter(user=user).select_related("tenant").order_by("tenant__name"))
    return [(m.tenant, m.role) for m in rows]


def tenant_for(user, slug: str) -> tuple[Tenant, str]:
    """The tenant behind `slug` and the user's role in it, or 404."""
    if user.is_superuser:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is not None:
            return tenant, Membership.Role.OWNER
        raise Http404("No such store")
    with system_scope():
        membership = Membership.objects.filter(user=user, tenant__slug=slug).select_related("tenant").first()
    if membership is None:
        raise Http404("No such store")
    return membership.tenant, membership.role


def workspace_view(*, write_role: str = Membership.Role.MARKETER, read_role: str = Membership.Role.VIEWER):
    """Decorate a view taking `tenant` (the slug) as its first URL argument.

    The view receives the request with `request.tenant`, `request.role` and
    `request.can_write` set, and the Tenant in place of the slug. A POST (or any unsafe
    method) from a role below `write_role` gets a 403 page and changes nothing.
    """

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, tenant: str, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            tenant_obj, role = tenant_for(request.user, tenant)
            if (detour := two_factor_detour(request, tenant_obj)) is not None:
                return detour
            activate(tenant_obj)
            request.tenant, request.role = tenant_obj, role
            request.can_write = role_allows(role, write_role)
            if not role_allows(role, read_role):
                return forbidden(request, "Your role in this store cannot open this page.")
            if request.method not in SAFE_METHODS and not request.can_write:
                return forbidden(request, f"Your role in {tenant_obj.name} is {role}: you can look, "
                                          f"but changes need a {write_role} or an owner.")
            return view(request, tenant_obj, *args, **kwargs)

        wrapper.workspace_write_role = write_role
        return wrapper

    return decorate


def two_factor_detour(request: HttpRequest, tenant: Tenant) -> HttpResponse | None:
    """Where a signed-in member must go before this store's page, or None.

    - someone with an authenticator whose session never gave a code (it signed in before the device was set up,
      elsewhere): to the code step;
    - a store that requires two-factor, and a member without an authenticator: to the setup page. Only the
      account pages (password, two-factor) and signing out stay open to them.
    """
    user = request.user
    if getattr(user, "is_verified", lambda: False)():
        return None
    after = urlencode({"next": request.get_full_path()})
    if has_two_factor(user):
        return redirect(f"{reverse('workspace:login-code')}?{after}")
    if tenant.require_two_factor:
        return redirect(f"{reverse('workspace:account-two-factor')}?{after}")
    return None


def forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "workspace/forbidden.html", {"message": message}, status=403)
