"""/r/<store>/<code>, /r/<code> and /r/<signed token>.

A referral link is a click-tracking redirect: a GET records one click row — bots (by user
agent) and HEAD requests are not recorded, an IP flooding us stops being recorded — and
never attributes an order or moves a reward. Attribution happens only when a paid order
carries the code. The signed token (from the advocate's own emails and the feedback
thank-you page) shows the advocate their link and share buttons, and records that visit as
the advocate's own (a fraud signal: a "friend" clicking from the same device).
"""

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from lifecycle.links import LinkExpired, read_token
from lifecycle.models import Customer, StoreConnection, Tenant
from lifecycle.tenancy import activate, system_scope

from .models import Program, ReferralCode
from .rendering import offer_text, share_buttons, share_url, store_redirect
from .services import click_record, normalize_code, referral_code_ensure


def _not_found(request: HttpRequest) -> HttpResponse:
    return render(request, "referrals/not_found.html", status=404)


def _client(request: HttpRequest) -> tuple[str, str]:
    # REMOTE_ADDR: behind a proxy, configure it to set REMOTE_ADDR (X-Forwarded-For is spoofable).
    return request.META.get("REMOTE_ADDR", ""), request.headers.get("User-Agent", "")


def _storefront(tenant_id: int) -> str:
    connection = (StoreConnection.objects.for_tenant(tenant_id).filter(disabled_at__isnull=True)
                  .order_by("pk").first())
    if connection is None:
        return ""
    return connection.site_url or (f"https://{connection.shop_domain}" if connection.shop_domain else "")


def _follow(request: HttpRequest, code: ReferralCode) -> HttpResponse:
    program = Program.objects.for_tenant(code.tenant_id).filter(active=True).first()
    if program is None or code.disabled_at is not None:
        return _not_found(request)
    if request.method == "GET":
        ip, user_agent = _client(request)
        click_record(code=code, ip=ip, user_agent=user_agent)
    response = HttpResponseRedirect(store_redirect(program, code.code))
    response["Cache-Control"] = "no-store"  # every visit reaches us, so every click counts once
    response["X-Robots-Tag"] = "noindex"
    return response


@require_http_methods(["GET", "HEAD"])
def referral_code(request: HttpRequest, store: str, code: str) -> HttpResponse:
    tenant = Tenant.objects.filter(slug=store).first()
    if tenant is not None:
        activate(tenant)  # the store's slug names the tenant
    found = tenant and ReferralCode.objects.for_tenant(tenant).filter(code=normalize_code(code)).first()
    return _follow(request, found) if found else _not_found(request)


def _advocate_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        payload = read_token("referral", token)
    except LinkExpired:
        return render(request, "pages/link_expired.html", status=410)
    if payload is None:
        return _not_found(request)
    activate(payload["t"])  # the signed token names the tenant
    customer = Customer.objects.for_tenant(payload["t"]).select_related("tenant").filter(pk=payload["c"]).first()
    if customer is None or customer.erased_at:
        return _not_found(request)
    program = Program.objects.for_tenant(payload["t"]).filter(active=True).first()
    if program is None:
        # feedback's thank-you page links here whatever the store runs: without a program, the storefront.
        store = _storefront(payload["t"])
        return HttpResponseRedirect(store) if store else _not_found(request)
    # Issuing the advocate's code is idempotent and moves no money: the page needs it.
    code = referral_code_ensure(tenant=customer.tenant, customer=customer)
    if request.method == "GET":
        ip, user_agent = _client(request)
        click_record(code=code, ip=ip, user_agent=user_agent, by_advocate=True)
    url = share_url(code, customer.tenant)
    offer = offer_text(program)
    return render(request, "referrals/share.html", {
        "store": customer.tenant, "code": code.code, "offer": offer,
        "share": share_buttons(url, store_name=customer.tenant.name, offer=offer)})


@require_http_methods(["GET", "HEAD"])
def referral(request: HttpRequest, code: str) -> HttpResponse:
    """One path segment: a signed token (it contains ':'), else a code that names one store."""
    if ":" in code:
        return _advocate_page(request, code)
    # A bare code may belong to any store, so this lookup spans tenants; the code found names one.
    with system_scope():
        matches = list(ReferralCode.all_tenants.filter(code=normalize_code(code))[:2])
    if len(matches) != 1:
        return _not_found(request)  # unknown, or the same code at two stores: /r/<store>/<code> decides
    activate(matches[0].tenant_id)
    return _follow(request, matches[0])
