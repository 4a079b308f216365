"""Customer-facing pages reached from email links: unsubscribe and the preference page. A GET never
changes anything: mail scanners fetch every link, so every change is a POST."""

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from .customers import customer_unsubscribe
from .links import LinkExpired, read_token
from .models import Customer
from .preference_words import language, words
from .preferences import (
    Category,
    categories_off,
    customer_preferences_set,
    customer_unsubscribe_all,
    is_subscribed,
)
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


# The preference page: /u/<token>/preferences, linked beside "Unsubscribe" in every marketing email's
# footer (templates/email/layout.html). The footer's unsubscribe token is its key: the page does less
# than that link already may (it subscribes again only on a person's POST with the page's CSRF token).
PREFERENCE_ACTIONS = {"save", "subscribe", "unsubscribe_all"}
NOTICES = {"saved", "subscribed", "unsubscribed"}


# csrf_exempt here so that the link is checked first (a tampered link is the same 404 for a GET and a
# POST, with or without a cookie); the page itself checks the CSRF token (csrf_protect, below).
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    try:
        customer = _customer_from(token, "unsubscribe")
    except LinkExpired:
        return render(request, "pages/link_expired.html", status=410)
    if customer.erased_at is not None:
        raise Http404("unknown link")
    return _preference_page(request, customer)


@csrf_protect
def _preference_page(request: HttpRequest, customer: Customer) -> HttpResponse:
    if request.method != "POST":  # GET, and HEAD from link checkers: show, never act
        notice = request.GET.get("done", "")
        return _render_preferences(request, customer, notice=notice if notice in NOTICES else "")
    action, chosen = request.POST.get("action", ""), request.POST.getlist("categories")
    if action not in PREFERENCE_ACTIONS:
        return _render_preferences(request, customer, error="bad_action", status=400)
    if not set(chosen) <= set(Category.values):
        return _render_preferences(request, customer, error="bad_choice", status=400)
    if action == "unsubscribe_all":
        customer_unsubscribe_all(customer=customer)
        done = "unsubscribed"
    else:
        subscribe = action == "subscribe"
        customer_preferences_set(customer=customer, on=set(chosen), subscribe=subscribe)
        done = "subscribed" if subscribe else "saved"
    # Post/redirect/get: reloading the page shows it again rather than sending the form twice.
    return HttpResponseRedirect(f"{request.path}?done={done}", status=303)


def _render_preferences(request: HttpRequest, customer: Customer, *, notice: str = "", error: str = "",
                        status: int = 200) -> HttpResponse:
    text = words(customer.locale, store=customer.tenant.name, email=customer.email)
    off = set(categories_off(customer))
    choices = [{"value": category, "label": text[f"category_{category}"], "help": text[f"category_{category}_help"],
                "on": category not in off} for category in Category.values]
    context = {"store": customer.tenant, "lang": language(customer.locale), "w": text, "choices": choices,
               "subscribed": is_subscribed(customer), "notice": text[notice] if notice else "",
               "error": text[error] if error else ""}
    return render(request, "pages/preferences.html", context, status=status)


SAMPLE_SHOPPER = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}


def preference_page_sample(tenant) -> str:
    """The preference page as a customer of `tenant` sees it, for a sample customer (nothing saved, no working
    form: the workspace's brand preview shows it in a sandboxed frame). `tenant` may carry unsaved brand values."""
    customer = Customer(pk=0, tenant=tenant, locale="", **SAMPLE_SHOPPER)
    text = words("", store=tenant.name, email=customer.email)
    choices = [{"value": category, "label": text[f"category_{category}"], "help": text[f"category_{category}_help"],
                "on": True} for category in Category.values]
    context = {"store": tenant, "lang": "en", "w": text, "choices": choices, "subscribed": True, "notice": "",
               "error": ""}
    return render_to_string("pages/preferences.html", context)
