"""What emails and pages show for a survey: plain values only (strings, lists, dicts).

Journeys put `survey_email_context(...)` into a feedback step's email context; the trusted
email layout draws the buttons, so a marketer's template cannot lose them.
"""

from typing import Any

from django.urls import NoReverseMatch, reverse

from lifecycle.links import absolute, make_token
from lifecycle.models import StoreConnection

from .i18n import t
from .models import Survey, SurveyRequest, SurveyResponse
from .services import review_products


def request_token(req: SurveyRequest) -> str:
    return make_token("survey", tenant_id=req.tenant_id, customer_id=req.customer_id,
                      delivery_id=req.delivery_id, r=req.pk)


def answer_url(token: str, score: int | None = None) -> str:
    return absolute(f"/f/{token}" + (f"/{score}" if score is not None else ""))


def texts(survey: Survey, locale: str, *, store: str, product: str = "") -> dict[str, str]:
    """The survey's words in the customer's language: the store's own, else the standard ones."""
    own = {"question": survey.question, "follow_up_question": survey.follow_up_question,
           "thank_you_text": survey.thank_you_text}
    for candidate in (locale, (locale or "").split("-")[0]):
        if candidate and candidate in (survey.translations or {}):
            own.update({k: v for k, v in survey.translations[candidate].items() if k in own and v})
            break
    product = product or t(locale, "question.text")
    kind = survey.kind
    return {
        "question": own["question"].replace("{store}", store).replace("{product}", product) if own["question"]
        else t(locale, f"question.{kind}", store=store, product=product),
        "follow_up": own["follow_up_question"] or t(locale, "follow_up.text" if kind == "text" else "follow_up"),
        "thank_you": own["thank_you_text"] or t(locale, "thank_you"),
        "low": t(locale, f"low.{kind}") if kind in Survey.SCALES else "",
        "high": t(locale, f"high.{kind}") if kind in Survey.SCALES else "",
    }


def score_buttons(survey: Survey, token: str, locale: str = "") -> list[dict[str, Any]]:
    if survey.scale is None:
        return []
    low, high = survey.scale
    star = survey.kind == Survey.Kind.REVIEW
    return [{"score": n, "label": "★" * n if star else str(n), "url": answer_url(token, n),
             "title": t(locale, "stars", n=n) if star else str(n)} for n in range(low, high + 1)]


def survey_email_context(*, tenant_id: int, delivery_id: int, locale: str, store_name: str) -> dict[str, Any]:
    """The survey part of a feedback step's email: {"survey": {question, buttons: [{label, url}],
    low_label, high_label, url, intro}, "survey_url": …, "review_links": [{title, url, stars}]}.

    Reads the requests `services.survey_request_for_delivery` wrote for this delivery; with
    none (a preview), the same shape with links that go nowhere.
    """
    requests = list(SurveyRequest.objects.for_tenant(tenant_id).filter(delivery_id=delivery_id)
                    .select_related("survey", "product").order_by("pk"))
    return _survey_context(requests, locale=locale, store_name=store_name)


def survey_email_contexts(*, tenant_id: int, deliveries: dict[int, str], store_name: str) -> dict[int, dict[str, Any]]:
    """`survey_email_context` for many deliveries of one store ({delivery id: locale}), by delivery id:
    their survey requests come from one query."""
    by_delivery: dict[int, list[SurveyRequest]] = {pk: [] for pk in deliveries}
    for req in (SurveyRequest.objects.for_tenant(tenant_id).filter(delivery_id__in=deliveries)
                .select_related("survey", "product").order_by("pk")):
        by_delivery[req.delivery_id].append(req)
    return {pk: _survey_context(requests, locale=deliveries[pk], store_name=store_name)
            for pk, requests in by_delivery.items()}


def _survey_context(requests: list[SurveyRequest], *, locale: str, store_name: str) -> dict[str, Any]:
    if not requests:
        return {"survey": None, "survey_url": "", "review_links": []}
    survey = requests[0].survey
    if survey.kind == Survey.Kind.REVIEW:
        links = []
        for req in requests:
            token = request_token(req)
            title = (req.product.title or req.product.external_id) if req.product else ""
            links.append({"title": title, "url": answer_url(token),
                          "question": texts(survey, locale, store=store_name, product=title)["question"],
                          "stars": score_buttons(survey, token, locale)})
        return {"survey": {"kind": survey.kind, "question": "", "intro": t(locale, "email.review_intro"),
                           "buttons": [], "low_label": "", "high_label": "", "url": links[0]["url"],
                           "answer_label": t(locale, "email.answer")},
                "survey_url": links[0]["url"], "review_links": links}
    token = request_token(requests[0])
    words = texts(survey, locale, store=store_name)
    return {"survey": {"kind": survey.kind, "question": words["question"], "intro": t(locale, "email.intro"),
                       "buttons": score_buttons(survey, token, locale), "low_label": words["low"],
                       "high_label": words["high"], "url": answer_url(token),
                       "answer_label": t(locale, "email.answer")},
            "survey_url": answer_url(token), "review_links": []}


def _store_url(tenant_id: int) -> str:
    connection = (StoreConnection.objects.for_tenant(tenant_id).filter(disabled_at__isnull=True)
                  .order_by("pk").first())
    if connection is None:
        return ""
    return connection.site_url or (f"https://{connection.shop_domain}" if connection.shop_domain else "")


def _page_for(name: str, purpose: str, req: SurveyRequest) -> str:
    """A customer page another app serves (referrals, loyalty), once that app has its route."""
    token = make_token(purpose, tenant_id=req.tenant_id, customer_id=req.customer_id)
    try:
        return absolute(reverse(name, args=[token]))
    except NoReverseMatch:
        return ""


def next_steps(*, req: SurveyRequest, response: SurveyResponse | None, token: str, locale: str = "") -> dict[str, Any]:
    """What the thank-you page offers: a review of each product on the order — to every customer,
    whatever their score (no review gating) — and, after a positive answer, sharing and points."""
    reviews = []
    if req.order_id and req.survey.kind != Survey.Kind.REVIEW:
        reviews = [{"title": p.title or p.external_id, "url": absolute(f"/f/{token}/review/{p.pk}"),
                    "label": t(locale, "next.review_link", product=p.title or p.external_id)}
                   for p in review_products(req.order)]
    positive = response is not None and response.category == SurveyResponse.Category.POSITIVE
    share_url = loyalty_url = ""
    if positive:
        share_url = _page_for("referral", "referral", req)
        if not share_url:
            # Until referrals has its page: share the product they liked, or the store.
            product = req.product or (req.order and next(iter(review_products(req.order)), None))
            share_url = (product.url if product and product.url else "") or _store_url(req.tenant_id)
        loyalty_url = _page_for("loyalty", "loyalty", req)
    return {"reviews": reviews, "share_url": share_url, "loyalty_url": loyalty_url,
            "negative": response is not None and response.category == SurveyResponse.Category.NEGATIVE}
