"""Reads that pages, the API, journeys and the admin share. Every query names its tenant."""

import datetime as dt
import zoneinfo
from typing import Any

from django.db.models import Avg, Count, Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import TruncWeek

from lifecycle.errors import NotFound
from lifecycle.models import Customer, Order, Product, Tenant

from .models import Review, Survey, SurveyRequest, SurveyResponse

# Journey step config names a survey by id ({"survey_id": 3}) or by key ({"survey": "nps"}).
# A key that is a kind ("nps", "csat", "ces", "review", "text") works before the store has
# made a survey of its own: the standard one is created on first send.
DEFAULT_THROTTLE_DAYS = 30


def survey_for_config(*, tenant: Tenant | int, config: dict[str, Any]) -> Survey | None:
    """The survey a feedback step names, or an unsaved standard one for a kind's key; None if neither."""
    surveys = Survey.objects.for_tenant(tenant)
    survey_id = config.get("survey_id")
    if survey_id is not None:
        try:
            return surveys.filter(pk=int(survey_id)).first()
        except (TypeError, ValueError):
            return None
    key = str(config.get("survey") or "")
    if not key:
        return None
    found = surveys.filter(key=key).first()
    if found is None and key in Survey.Kind.values:
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        return Survey(tenant_id=tenant_id, key=key, kind=key, name=Survey.Kind(key).label,
                      throttle_days=0 if key == Survey.Kind.REVIEW else DEFAULT_THROTTLE_DAYS)
    return found


def survey_throttle_until(*, customer: Customer, survey: Survey, now: dt.datetime,
                          exclude_delivery_id: int | None = None) -> dt.datetime | None:
    """When this customer may next be asked `survey`, if not now (the per-customer throttle).

    Counts every survey the customer was asked except review requests: reviews are never
    throttled and never throttle others, so every buyer of a delivered order is asked.
    """
    if survey.kind == Survey.Kind.REVIEW or not survey.throttle_days:
        return None
    window = dt.timedelta(days=survey.throttle_days)
    last = (SurveyRequest.objects.for_tenant(customer.tenant_id)
            .filter(customer=customer, asked_at__gt=now - window).exclude(survey__kind=Survey.Kind.REVIEW))
    if exclude_delivery_id is not None:
        last = last.exclude(delivery_id=exclude_delivery_id)
    asked_at = last.order_by("-asked_at").values_list("asked_at", flat=True).first()
    return asked_at + window if asked_at else None


def customer_latest_scores(*, tenant: Tenant | int, customer_id: int) -> dict[str, int | None]:
    """The newest final score per kind: {"nps": 9, "csat": None, "ces": 2, "review": 5}."""
    latest: dict[str, int | None] = {kind: None for kind in Survey.SCALES}
    rows = (SurveyResponse.objects.for_tenant(tenant)
            .filter(customer_id=customer_id, state=SurveyResponse.State.FINAL, score__isnull=False)
            .order_by("-finalized_at", "-pk").values_list("survey__kind", "score"))
    for kind, score in rows[:50]:
        if kind in latest and latest[kind] is None:
            latest[kind] = score
    return latest


def customer_context(*, customer: Customer, limit: int = 5) -> dict[str, Any]:
    """What the store needs to act on an alert: who, what they bought, what they said before."""
    orders = (Order.objects.for_tenant(customer.tenant_id).filter(customer=customer)
              .order_by("-placed_at", "-pk")[:limit])
    history = (SurveyResponse.objects.for_tenant(customer.tenant_id)
               .filter(customer=customer, state=SurveyResponse.State.FINAL)
               .select_related("survey").order_by("-answered_at")[:limit])
    return {
        "customer": {"external_id": customer.external_id, "email": customer.email, "name": customer.full_name,
                     "order_count": customer.order_count, "total_spent": f"{customer.total_spent:.2f}",
                     "currency": customer.tenant.currency,
                     "first_order_at": customer.first_order_at.isoformat() if customer.first_order_at else None,
                     "last_order_at": customer.last_order_at.isoformat() if customer.last_order_at else None},
        "orders": [{"external_id": o.external_id, "number": o.number, "status": o.status,
                    "total": f"{o.total:.2f}", "currency": o.currency,
                    "placed_at": o.placed_at.isoformat() if o.placed_at else None} for o in orders],
        "history": [{"survey": r.survey.key, "kind": r.survey.kind, "score": r.score, "comment": r.comment,
                     "answered_at": r.answered_at.isoformat()} for r in history],
    }


# --- reviews --------------------------------------------------------------------


def product_by_external_id(*, tenant: Tenant, external_id: str) -> Product:
    product = Product.objects.for_tenant(tenant).filter(external_id=external_id).first()
    if product is None:
        raise NotFound("products.not_found", f"no product with external_id {external_id!r}")
    return product

REVIEW_ORDERINGS = {"newest": ("-created_at", "-pk"), "best": ("-rating", "-created_at", "-pk")}


def product_reviews(*, tenant: Tenant, product: Product, sort: str = "newest") -> QuerySet[Review]:
    return (Review.objects.for_tenant(tenant).filter(product=product, status=Review.Status.APPROVED)
            .order_by(*REVIEW_ORDERINGS[sort]))


def product_review_summary(*, tenant: Tenant, product: Product) -> dict[str, Any]:
    row = Review.objects.for_tenant(tenant).filter(product=product, status=Review.Status.APPROVED).aggregate(
        count=Count("pk"), average=Avg("rating"))
    return {"count": row["count"], "average": round(row["average"], 2) if row["average"] is not None else None}


def review_gating_audit(*, tenant: Tenant, since: dt.datetime | None = None) -> dict[str, Any]:
    """Evidence that no review request was suppressed: review requests split by the customer's
    NPS category at the time they were asked. Read for audits only; never used to decide."""
    requests = SurveyRequest.objects.for_tenant(tenant).filter(survey__kind=Survey.Kind.REVIEW)
    if since:
        requests = requests.filter(asked_at__gte=since)
    last_nps = (SurveyResponse.objects.for_tenant(tenant)
                .filter(customer_id=OuterRef("customer_id"), survey__kind=Survey.Kind.NPS,
                        state=SurveyResponse.State.FINAL, answered_at__lt=OuterRef("asked_at"))
                .order_by("-answered_at").values("score")[:1])
    counts = {"detractor": 0, "passive": 0, "promoter": 0, "no_nps": 0}
    for score in requests.annotate(nps=last_nps).values_list("nps", flat=True):
        key = "no_nps" if score is None else "detractor" if score <= 6 else "promoter" if score >= 9 else "passive"
        counts[key] += 1
    return {"review_requests": sum(counts.values()), "by_nps_at_ask": counts}


# --- metrics --------------------------------------------------------------------


def _score_aggregates() -> dict[str, Any]:
    nps, csat, ces, review = (Q(survey__kind=k, score__isnull=False) for k in ("nps", "csat", "ces", "review"))
    return {
        "nps_n": Count("pk", filter=nps), "promoters": Count("pk", filter=nps & Q(score__gte=9)),
        "detractors": Count("pk", filter=nps & Q(score__lte=6)),
        "csat_n": Count("pk", filter=csat), "csat_ok": Count("pk", filter=csat & Q(score__gte=4)),
        "ces_n": Count("pk", filter=ces), "ces_avg": Avg("score", filter=ces),
        "review_n": Count("pk", filter=review), "review_avg": Avg("score", filter=review),
    }


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _summary(scores: dict[str, Any] | None, requests: int, answered: int) -> dict[str, Any]:
    s = scores or {}
    nps_n, promoters, detractors = s.get("nps_n", 0), s.get("promoters", 0), s.get("detractors", 0)
    nps = round(100.0 * (promoters - detractors) / nps_n, 1) if nps_n else None
    return {
        "requests": requests, "responses": answered, "response_rate": _pct(answered, requests),
        "nps": nps, "nps_responses": nps_n, "promoters": promoters, "passives": nps_n - promoters - detractors,
        "detractors": detractors,
        "csat_percent": _pct(s.get("csat_ok", 0), s.get("csat_n", 0)), "csat_responses": s.get("csat_n", 0),
        "ces_average": round(s["ces_avg"], 2) if s.get("ces_avg") is not None else None,
        "ces_responses": s.get("ces_n", 0),
        "review_average": round(s["review_avg"], 2) if s.get("review_avg") is not None else None,
        "review_responses": s.get("review_n", 0),
    }


def feedback_metrics(*, tenant: Tenant, since: dt.datetime | None = None, until: dt.datetime | None = None,
                     survey_key: str | None = None) -> dict[str, Any]:
    """NPS, CSAT %, CES average and response rate: overall, per journey, per product, by week.

    Scores count final answers by when they were answered; the response rate counts requests
    by when they were asked, and whether they have a final answer.
    """
    responses = SurveyResponse.objects.for_tenant(tenant).filter(state=SurveyResponse.State.FINAL)
    requests = SurveyRequest.objects.for_tenant(tenant)
    if since:
        responses, requests = responses.filter(answered_at__gte=since), requests.filter(asked_at__gte=since)
    if until:
        responses, requests = responses.filter(answered_at__lt=until), requests.filter(asked_at__lt=until)
    if survey_key:
        responses, requests = responses.filter(survey__key=survey_key), requests.filter(survey__key=survey_key)
    answered = Exists(SurveyResponse.objects.for_tenant(tenant).filter(request_id=OuterRef("pk"),
                                                                        state=SurveyResponse.State.FINAL))
    request_counts = {"n": Count("pk"), "answered": Count("pk", filter=Q(answered))}

    zone = zoneinfo.ZoneInfo(tenant.time_zone or "UTC")  # weeks start on the store's Monday
    overall_scores = responses.aggregate(**_score_aggregates())
    overall_requests = requests.aggregate(**request_counts)

    def grouped(response_key, request_key, out_key, convert=lambda v: v) -> list[dict[str, Any]]:
        scores = {row.pop("g"): row for row in responses.annotate(g=response_key).values("g")
                  .annotate(**_score_aggregates()).order_by()}
        asked = {row["g"]: row for row in requests.annotate(g=request_key).values("g")
                 .annotate(**request_counts).order_by()}
        keys = sorted({*scores, *asked} - {None}, key=str)
        return [{out_key: convert(key), **_summary(scores.get(key), asked.get(key, {}).get("n", 0),
                                                   asked.get(key, {}).get("answered", 0))} for key in keys]

    return {
        "overall": _summary(overall_scores, overall_requests["n"], overall_requests["answered"]),
        "by_journey": grouped(F("request__journey_id"), F("journey_id"), "journey_id"),
        "by_product": grouped(F("request__product__external_id"), F("product__external_id"), "product_external_id"),
        "by_week": grouped(TruncWeek("answered_at", tzinfo=zone), TruncWeek("asked_at", tzinfo=zone), "week",
                           lambda v: v.date().isoformat()),
    }
