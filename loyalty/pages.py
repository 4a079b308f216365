"""The customer's loyalty page behind a signed link: /l/<token>.

A GET never writes (mail scanners fetch every link): it shows the balance, tier, history and
rewards. Redeeming is a POST from the page's button, csrf_exempt like the other customer
pages — the signed token authorizes it — and carries a nonce drawn when the page was shown,
so a double click or a resubmitted form redeems once.
"""

import datetime as dt
import secrets

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from lifecycle.errors import ServiceError
from lifecycle.links import LinkExpired, read_token
from lifecycle.models import Customer
from lifecycle.money import money_str
from lifecycle.numbers import whole_number
from lifecycle.tenancy import activate

from .models import Reward
from .redemptions import redemption_create
from .selectors import loyalty_summary, plain
from .services import account_birthday_set

NONCE_MAX = 64


def _customer_from(token: str) -> Customer:
    payload = read_token("loyalty", token)
    if payload is None:
        raise Http404("unknown link")
    activate(payload["t"])  # the signed token names the tenant
    customer = Customer.objects.for_tenant(payload["t"]).select_related("tenant").filter(pk=payload["c"]).first()
    if customer is None or customer.erased_at:
        raise Http404("unknown link")
    return customer


def _ways_to_earn(program, currency: str) -> list[str]:
    if program is None:
        return []
    ways = [f"{plain(program.points_per_unit)} point(s) for every 1 {currency} you spend"
            + (f" — spendable {program.pending_days} days after payment" if program.pending_days else "")]
    for label, points in (("your first order", program.first_order_bonus), ("writing a review", program.review_bonus),
                          ("your birthday", program.birthday_bonus)):
        if points:
            ways.append(f"{points} points for {label}")
    return ways


def _page(request: HttpRequest, customer: Customer, token: str, *, redeemed=None, error: str = "",
          status: int = 200) -> HttpResponse:
    tenant = customer.tenant
    summary = loyalty_summary(tenant=tenant.pk, customer=customer)
    rewards = [{"id": r.pk, "name": r.name, "cost": r.cost, "affordable": r.cost <= summary.balance,
                "short": summary.balance < r.cost and r.cost - summary.balance,
                "value": money_str(r.value, r.currency) + f" {r.currency}" if r.currency and r.value else ""}
               for r in summary.rewards]
    context = {
        "store": tenant, "summary": summary, "progress": summary.progress, "rewards": rewards,
        "ways": _ways_to_earn(summary.program, tenant.currency), "post_url": f"/l/{token}",
        "nonce": secrets.token_urlsafe(16), "redeemed": redeemed, "error": error,
        "first_name": customer.first_name,
    }
    return render(request, "loyalty/page.html", context, status=status)


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def loyalty_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        customer = _customer_from(token)
    except LinkExpired:
        return render(request, "pages/link_expired.html", status=410)
    if request.method != "POST":
        return _page(request, customer, token)
    if "birthday" in request.POST:
        try:
            account_birthday_set(tenant=customer.tenant, customer=customer,
                                 birthday=dt.date.fromisoformat(request.POST["birthday"][:10]))
        except (ValueError, ServiceError):
            return _page(request, customer, token, error="Please enter your birthday as a date.", status=400)
        return _page(request, customer, token)
    raw_reward, nonce = request.POST.get("reward", ""), request.POST.get("nonce", "")[:NONCE_MAX]
    reward_id = whole_number(raw_reward, minimum=1)
    reward = (Reward.objects.for_tenant(customer.tenant_id).select_related("program")
              .filter(pk=reward_id, active=True).first() if reward_id is not None else None)
    if reward is None or not nonce:
        return _page(request, customer, token, error="That reward is not available.", status=400)
    try:
        redemption, _ = redemption_create(tenant=customer.tenant, customer=customer, reward=reward,
                                          source=f"page:{nonce}")
    except ServiceError as exc:
        return _page(request, customer, token, error=exc.message, status=409 if exc.status == 409 else 400)
    return _page(request, customer, token, redeemed=redemption)
