"""Customer-facing pages reached from email links. A GET never changes anything:
mail scanners fetch every link, so every change is a POST."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .customers import customer_unsubscribe
from .links import LinkExpired, read_token
from .models import Customer
from .tenancy import activate


def _customer_from(token: str, purpose: str) -> Customer:
    payload = read_token(purpose, token)
    if payload is None:
        raise Http404("unknown link")
    activate(payload["t"])  # the signed token names the tenant
    customer = Customer.objects.for_tenant(payload["t"]).select_related("tenant").filter(pk=payload["c"]).first()
    if customer is None:
        raise Http404("unknown link")
    return customer


# csrf_exempt: RFC 8058 one-click unsubscribe is a cookie-less POST from the mailbox provider;
# the signed token in the URL is what authorizes it.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        customer = _customer_from(token, "unsubscribe")
    except LinkExpired:
        return render(request, "pages/link_expired.html", status=410)
    context = {"store": customer.tenant, "email": customer.email, "token": token}
    if request.method != "POST":  # GET, and HEAD from link checkers: show, never act
        context["already"] = customer.unsubscribed_at is not None
        return render(request, "pages/unsubscribe_confirm.html", context)
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"
    customer_unsubscribe(customer=customer, detail="one-click" if one_click else "unsubscribe page")
    return render(request, "pages/unsubscribed.html", context)
