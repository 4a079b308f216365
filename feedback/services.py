"""Every write of the feedback app: ask, answer, settle, follow up, alert, moderate.

The answer rule (mail scanners fetch every link in an email, and some run the page too):
- a GET never writes; the answer page's script POSTs the clicked score (mode "auto");
- an auto answer is *provisional*: it settles into the final answer after BURST_WINDOW,
  unless a different score for the same request arrives within that window — then every
  attempt in the window is marked automated and none is kept (a person clicks one button);
- a person's confirm (the page's button, mode "confirm") is always taken as the answer, and
  edits it for EDIT_WINDOW after the first answer;
- follow-ups (events, the store's alert, the review) run once, when an answer becomes final.

Feedback never imports journeys. It emits `feedback.answered`, `feedback.negative`,
`feedback.positive`, `review.submitted` and `review.approved` through lifecycle's
`event_append`, and journeys react to them.
"""

import dataclasses
import datetime as dt
import json
import logging
import urllib.error
import urllib.request
from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F

from lifecycle import citus, clock
from lifecycle.errors import ServiceError
from lifecycle.models import Customer, Event, Order, OrderLine, Product, Tenant
from lifecycle.timeline import event_append

from .models import (
    BURST_WINDOW,
    AnswerAttempt,
    FeedbackAlert,
    Review,
    Survey,
    SurveyRequest,
    SurveyResponse,
)
from .moderation import AUTO_PUBLISHER, review_settings_for, review_verdict
from .selectors import customer_context, survey_for_config

logger = logging.getLogger(__name__)

# An alert that keeps failing transiently is given up after this many attempts (about an
# hour of backoff in total), then shown as failed in the admin.
ALERT_MAX_ATTEMPTS = 6
# Every outbound webhook call gives up after this long.
WEBHOOK_TIMEOUT_SECONDS = 5
# Provisional answers settled per sweep transaction: a sweep every few seconds keeps up.
SETTLE_BATCH = 200
# A pending alert whose task was lost (broker restart) is handed out again after this long.
ALERT_REQUEUE_AFTER = dt.timedelta(minutes=5)


# --- asking ---------------------------------------------------------------------


def survey_ensure(*, survey: Survey) -> Survey:
    """Save a standard survey that `selectors.survey_for_config` offered unsaved. Idempotent."""
    if survey.pk:
        return survey
    found, _ = Survey.objects.for_tenant(survey.tenant_id).get_or_create(
        tenant_id=survey.tenant_id, key=survey.key,
        defaults={"name": survey.name, "kind": survey.kind, "throttle_days": survey.throttle_days})
    return found


def _order_label(order: Order) -> str:
    return f"#{order.number.lstrip('#')}" if order.number else order.external_id


def review_products(order: Order) -> list[Product]:
    """Every product on the order, once each, in line order."""
    seen: dict[int, Product] = {}
    lines = OrderLine.objects.for_tenant(order.tenant_id).filter(order=order, product__isnull=False)
    for line in lines.select_related("product").order_by("position", "pk"):
        seen.setdefault(line.product_id, line.product)
    return list(seen.values())


def survey_request_for_delivery(*, delivery_id: int, tenant: Tenant, customer: Customer, order: Order | None,
                                survey: Survey, journey_id: int | None = None) -> list[SurveyRequest]:
    """The requests a journey's feedback step links to: one, or for a review one per product.

    Idempotent per delivery (unique constraints on delivery id, and delivery id + product):
    calling again returns the same rows. Review requests go to every customer of a
    delivered order, for every product on it; no answer to any survey is consulted here
    (no review gating), and `asked_because` records why each was asked.
    """
    survey = survey_ensure(survey=survey)
    requests = SurveyRequest.objects.for_tenant(tenant)
    existing = list(requests.filter(delivery_id=delivery_id).order_by("pk"))
    if existing:
        return existing
    now = clock.now()
    base = {"tenant": tenant, "survey": survey, "customer": customer, "order": order, "delivery_id": delivery_id,
            "journey_id": journey_id, "asked_at": now}
    if survey.kind == Survey.Kind.REVIEW:
        if order is None or order.delivered_at is None:
            raise ServiceError("feedback.order_not_delivered", "a review request needs a delivered order")
        products = review_products(order)
        if not products:
            raise ServiceError("feedback.nothing_to_review", "the order has no products to review")
        rows = [SurveyRequest(**base, product=product, asked_because=f"delivered order {_order_label(order)}")
                for product in products]
    else:
        because = f"journey {journey_id}" if journey_id else "feedback step"
        if order is not None:
            because += f", order {_order_label(order)}"
        rows = [SurveyRequest(**base, asked_because=because)]
    try:
        with transaction.atomic():
            return requests.bulk_create(rows)
    except IntegrityError:
        # The same delivery asked concurrently: its rows are the answer.
        return list(requests.filter(delivery_id=delivery_id).order_by("pk"))


def review_request_for_product(*, tenant: Tenant, customer: Customer, order: Order, product: Product,
                               because: str) -> SurveyRequest:
    """A review request for one product of the customer's order, outside a journey (the
    thank-you page's "review what you bought"). Reuses an open one for the same product."""

    survey = survey_ensure(survey=survey_for_config(tenant=tenant, config={"survey": "review"}))
    found = (SurveyRequest.objects.for_tenant(tenant)
             .filter(customer=customer, order=order, product=product, survey__kind=Survey.Kind.REVIEW)
             .order_by("pk").first())
    if found:
        return found
    return SurveyRequest.objects.for_tenant(tenant).create(
        tenant=tenant, survey=survey, customer=customer, order=order, product=product,
        asked_because=f"{because} (order {_order_label(order)})", asked_at=clock.now())


# --- answering ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AnswerOutcome:
    # recorded: kept (provisional or final) | held: automated burst, nothing kept |
    # answered: already final, an auto click changes nothing | updated: an edit | closed: too late
    state: str
    response: SurveyResponse | None
    message: str = ""


def _check_score(survey: Survey, score: int | None) -> None:
    if survey.scale is None:
        return
    low, high = survey.scale
    if score is None or not low <= score <= high:
        raise ServiceError("feedback.bad_score", f"score must be a whole number from {low} to {high}",
                           {"score": [f"must be from {low} to {high}"]})


def answer_submit(*, survey_request: SurveyRequest, score: int | None, mode: str, comment: str = "",
                  title: str = "", user_agent: str = "") -> AnswerOutcome:
    """Record one POST from the answer page. Locks the request row, so concurrent clicks on
    one email's buttons are decided one after another. See the module docstring for the rule."""
    now = clock.now()
    tenant_id = survey_request.tenant_id
    with transaction.atomic():
        req = (SurveyRequest.objects.for_tenant(tenant_id).select_for_update(of=("self",))
               .select_related("survey", "customer__tenant", "order", "product").get(pk=survey_request.pk))
        survey = req.survey
        response = SurveyResponse.objects.for_tenant(tenant_id).filter(request=req).first()
        if response and response.state == SurveyResponse.State.PROVISIONAL and response.settles_at <= now:
            _finalize(response, now)
        if survey.scale is None:
            score = None  # free text: only the comment counts
        elif mode == AnswerAttempt.Mode.CONFIRM and score is None and response is not None:
            score = response.score  # a comment sent without touching the score
        _check_score(survey, score)
        attempt = AnswerAttempt.objects.for_tenant(tenant_id).create(
            tenant_id=tenant_id, request=req, score=score, mode=mode, at=now, user_agent=user_agent[:300])

        def outcome(state: str, note: str, kept: SurveyResponse | None, message: str = "") -> AnswerOutcome:
            AnswerAttempt.objects.for_tenant(tenant_id).filter(pk=attempt.pk).update(outcome=note[:200])
            return AnswerOutcome(state, kept, message)

        final = response is not None and response.state == SurveyResponse.State.FINAL
        if final and now > response.editable_until:
            return outcome("closed", "closed: the edit window is over", response)
        if mode == AnswerAttempt.Mode.AUTO:
            if final:
                return outcome("answered", "already answered: a change needs a confirm", response)
            recent = AnswerAttempt.objects.for_tenant(tenant_id).filter(
                request=req, mode=AnswerAttempt.Mode.AUTO, at__gte=now - BURST_WINDOW)
            scores = set(recent.values_list("score", flat=True))
            if len(scores) > 1:
                recent.update(automated=True)
                if response is not None:
                    response.delete()
                return outcome("held", f"held: {len(scores)} different scores within "
                                       f"{int(BURST_WINDOW.total_seconds())} s, not a person", None)
            if response is None:
                response = _response_create(req, score, comment, now, SurveyResponse.State.PROVISIONAL)
            return outcome("recorded", "recorded: provisional", response)
        # A person pressed the page's button.
        if response is None:
            response = _response_create(req, score, comment, now, SurveyResponse.State.FINAL)
            _follow_up(response, now, title=title)
            return outcome("recorded", "recorded: confirmed", response)
        was_final = final
        changed = (response.score, response.comment) != (score, comment)
        response.score, response.comment = score, comment
        response.category = survey.category(score)
        if was_final:
            response.edits = F("edits") + 1 if changed else response.edits
            response.save(update_fields=["score", "comment", "category", "edits", "updated_at"])
            response.refresh_from_db(fields=["edits"])
            _follow_up(response, now, title=title, edited=changed)
            return outcome("updated" if changed else "recorded", "edited" if changed else "confirmed again",
                           response)
        response.save(update_fields=["score", "comment", "category", "updated_at"])
        _finalize(response, now, title=title)
        return outcome("recorded", "recorded: confirmed", response)


def _response_create(req: SurveyRequest, score: int | None, comment: str, now: dt.datetime,
                     state: str) -> SurveyResponse:
    provisional = state == SurveyResponse.State.PROVISIONAL
    return SurveyResponse.objects.for_tenant(req.tenant_id).create(
        tenant_id=req.tenant_id, request=req, survey=req.survey, customer=req.customer, order=req.order,
        product=req.product, journey_id=req.journey_id, score=score, comment=comment,
        category=req.survey.category(score), state=state, answered_at=now,
        settles_at=now + BURST_WINDOW if provisional else None, finalized_at=None if provisional else now)


def _finalize(response: SurveyResponse, now: dt.datetime, title: str = "") -> None:
    updated = SurveyResponse.objects.for_tenant(response.tenant_id).filter(
        pk=response.pk, state=SurveyResponse.State.PROVISIONAL).update(
        state=SurveyResponse.State.FINAL, finalized_at=now, settles_at=None)
    if updated:
        response.state, response.finalized_at, response.settles_at = SurveyResponse.State.FINAL, now, None
        _follow_up(response, now, title=title)


def responses_settle_due(*, now: dt.datetime | None = None, limit: int = SETTLE_BATCH) -> int:
    """Provisional answers whose burst window passed quietly become final (beat, every few
    seconds). Skips rows another worker holds; returns how many it settled."""
    now = now or clock.now()
    with transaction.atomic():
        # On Citus store by store (lifecycle/citus.py): a FOR UPDATE stays in one shard group.
        due = [request.pk for request in citus.locked_batch(
            SurveyRequest.all_tenants.filter(responses__state=SurveyResponse.State.PROVISIONAL,
                                             responses__settles_at__lte=now).only("pk", "tenant_id").order_by("pk"),
            limit, of=("self",))]
        settled = 0
        for response in (SurveyResponse.all_tenants.select_related("survey", "customer__tenant", "order", "product")
                         .filter(request_id__in=due, state=SurveyResponse.State.PROVISIONAL)):
            _finalize(response, now)
            settled += 1
    return settled


# --- following up ---------------------------------------------------------------


def _emit_once(response: SurveyResponse, event_type: str, data: dict[str, Any], now: dt.datetime) -> None:
    key = f"{event_type}:{response.pk}"
    if Event.objects.for_tenant(response.tenant_id).filter(dedupe_key=key).exists():
        return
    event_append(tenant=response.customer.tenant, type=event_type, occurred_at=now, customer=response.customer,
                 order=response.order, data=data, dedupe_key=key)


def _follow_up(response: SurveyResponse, now: dt.datetime, *, title: str = "", edited: bool = False) -> None:
    """Runs in the answering transaction, under the request's lock: each event and the alert
    happen at most once per response (dedupe keys, a unique constraint); an edit that turns
    an answer negative still alerts once."""
    survey = response.survey
    data = {"survey": survey.key, "kind": survey.kind, "score": response.score, "category": response.category,
            "comment": response.comment[:500], "response_id": response.pk, "request_id": response.request_id,
            "product_external_id": response.product.external_id if response.product else None}
    _emit_once(response, "feedback.answered", data, now)
    if edited:
        event_append(tenant=response.customer.tenant, type="feedback.updated", occurred_at=now,
                     customer=response.customer, order=response.order, data=data)
    if response.category == SurveyResponse.Category.NEGATIVE:
        _emit_once(response, "feedback.negative", data, now)
        _alert_create(response, now)
    elif response.category == SurveyResponse.Category.POSITIVE:
        _emit_once(response, "feedback.positive", data, now)
    if survey.kind == Survey.Kind.REVIEW and response.product_id and response.score:
        _review_upsert(response, title, now)


def _review_upsert(response: SurveyResponse, title: str, now: dt.datetime) -> Review:
    customer = response.customer
    verified = OrderLine.objects.for_tenant(response.tenant_id).filter(
        product_id=response.product_id, order__customer=customer, order__paid_at__isnull=False).exists()
    author = f"{customer.first_name} {customer.last_name[:1]}.".strip() if customer.last_name else customer.first_name
    fields = {"rating": response.score, "title": title[:200], "body": response.comment}
    review = Review.objects.for_tenant(response.tenant_id).filter(response=response).first()
    if review is None:
        review = Review.objects.for_tenant(response.tenant_id).create(
            tenant_id=response.tenant_id, response=response, product_id=response.product_id, customer=customer,
            order=response.order, verified_purchase=verified, author_name=author, created_at=now, **fields)
        event_append(tenant=customer.tenant, type="review.submitted", occurred_at=now, customer=customer,
                     order=response.order, dedupe_key=f"review.submitted:{review.pk}",
                     data={"review_id": review.pk, "rating": review.rating,
                           "product_external_id": response.product.external_id})
        _auto_moderate(review, now)
        return review
    if any(getattr(review, name) != value for name, value in fields.items()):
        # Changed words need another look before the storefront shows them (or the store's rules again).
        for name, value in fields.items():
            setattr(review, name, value)
        review.status, review.moderated_at, review.moderated_by = Review.Status.PENDING, None, ""
        review.save()
        _auto_moderate(review, now)
    return review


def _auto_moderate(review: Review, now: dt.datetime) -> None:
    """Publish a pending review the store's rules publish (feedback/moderation.py); else it waits."""
    verdict = review_verdict(review_settings_for(review.tenant_id), rating=review.rating, title=review.title,
                             body=review.body)
    if not verdict.publish:
        return
    review.status, review.rejection_reason = Review.Status.APPROVED, ""
    review.moderated_at, review.moderated_by = now, AUTO_PUBLISHER
    review.save(update_fields=["status", "rejection_reason", "moderated_at", "moderated_by", "updated_at"])
    _approved_once(review, now)


def _approved_once(review: Review, now: dt.datetime) -> None:
    """review.approved, once per review (loyalty's review bonus), whoever or whatever published it."""
    if review.customer is None:
        return
    key = f"review.approved:{review.pk}"
    if not Event.objects.for_tenant(review.tenant_id).filter(dedupe_key=key).exists():
        event_append(tenant=review.customer.tenant, type="review.approved", occurred_at=now,
                     customer=review.customer, order=review.order, dedupe_key=key,
                     data={"review_id": review.pk, "rating": review.rating,
                           "product_external_id": review.product.external_id,
                           "verified_purchase": review.verified_purchase})


def _alert_create(response: SurveyResponse, now: dt.datetime) -> None:
    if FeedbackAlert.objects.for_tenant(response.tenant_id).filter(response=response).exists():
        return
    survey, customer, tenant = response.survey, response.customer, response.customer.tenant
    email_to = survey.alert_email or tenant.reply_to or tenant.sender_email
    payload = {
        "type": "feedback.negative", "store": tenant.slug,
        "survey": {"key": survey.key, "kind": survey.kind, "name": survey.name},
        "response": {"id": response.pk, "score": response.score, "comment": response.comment,
                     "answered_at": response.answered_at.isoformat(),
                     "order_external_id": response.order.external_id if response.order else None,
                     "product_external_id": response.product.external_id if response.product else None},
        **customer_context(customer=customer),
    }
    state = FeedbackAlert.State.PENDING if (email_to or survey.alert_webhook_url) else FeedbackAlert.State.SKIPPED
    alert = FeedbackAlert.objects.for_tenant(tenant).create(
        tenant=tenant, response=response, email_to=email_to, webhook_url=survey.alert_webhook_url, payload=payload,
        state=state, created_at=now,
        last_error="" if state == FeedbackAlert.State.PENDING else "no support address or webhook URL set")
    if state == FeedbackAlert.State.PENDING:
        # A genuine cycle: feedback.tasks calls these services, and this one queues that task.
        from .tasks import alert_send  # noqa: PLC0415

        transaction.on_commit(lambda: alert_send.delay(tenant.pk, alert.pk))


class _Transient(Exception):
    pass


def _alert_email(alert: FeedbackAlert) -> None:
    p = alert.payload
    who = p["customer"]["name"] or p["customer"]["email"] or "A customer"
    scale = {"nps": "/10", "csat": "/5", "ces": "/7", "review": "/5"}.get(p["survey"]["kind"], "")
    lines = [f"{who} answered {p['survey']['name']} with {p['response']['score']}{scale}.", ""]
    if p["response"]["comment"]:
        lines += ["Their words:", p["response"]["comment"], ""]
    c = p["customer"]
    lines += [f"Email: {c['email']}", f"Orders: {c['order_count']}, spent {c['total_spent']} {c['currency']}"]
    lines += [f"- order {o['number'] or o['external_id']} ({o['status']}): {o['total']} {o['currency']}"
              for o in p["orders"]]
    if p["history"][1:]:
        lines += ["", "Earlier answers:"] + [f"- {h['kind']} {h['score']} ({h['answered_at'][:10]})"
                                             for h in p["history"][1:]]
    message = EmailMultiAlternatives(
        subject=f"Negative feedback: {who} gave {p['response']['score']}{scale} ({p['survey']['name']})",
        body="\n".join(lines), to=[alert.email_to],
        reply_to=[c["email"]] if c["email"] else None,
        headers={"Message-ID": f"<feedback-alert.{alert.tenant_id}.{alert.pk}@lifecycle>"},
    )
    message.metadata = {"tenant_id": alert.tenant_id, "feedback_alert_id": alert.pk}
    try:
        message.send()
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise _Transient(f"{type(exc).__name__}: {exc}") from exc


def _alert_webhook(alert: FeedbackAlert) -> None:
    body = json.dumps(alert.payload).encode()
    request = urllib.request.Request(  # noqa: S310 - a URL the store configured, http(s) only (URLField)
        alert.webhook_url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "lifecycle-feedback/1",
                 "Idempotency-Key": f"feedback-alert-{alert.tenant_id}-{alert.pk}"})
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS):  # noqa: S310
            return
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise _Transient(f"HTTP {exc.code}") from exc
        raise ServiceError("feedback.webhook_refused", f"HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise _Transient(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from exc


def alert_deliver(*, tenant_id: int, alert_id: int) -> str:
    """Send one alert's email and webhook. Returns its state, or "retry" after a transient error.

    Locks the alert row while sending, so two tasks never send it together; each channel is
    stamped when it succeeds, so a retry sends only what is still missing. (A worker dying
    between the send and the commit sends that channel again: alerts are at-least-once.)
    """
    with transaction.atomic():
        alert = FeedbackAlert.objects.for_tenant(tenant_id).select_for_update().filter(pk=alert_id).first()
        if alert is None or alert.state != FeedbackAlert.State.PENDING:
            return alert.state if alert else ""
        alert.attempts += 1
        now = clock.now()
        try:
            if alert.email_to and alert.email_sent_at is None:
                _alert_email(alert)
                alert.email_sent_at = now
            if alert.webhook_url and alert.webhook_sent_at is None:
                _alert_webhook(alert)
                alert.webhook_sent_at = now
            alert.state, alert.last_error = FeedbackAlert.State.SENT, ""
        except _Transient as exc:
            alert.last_error = str(exc)[:500]
            if alert.attempts >= ALERT_MAX_ATTEMPTS:
                alert.state = FeedbackAlert.State.FAILED
        except ServiceError as exc:
            alert.state, alert.last_error = FeedbackAlert.State.FAILED, exc.message[:500]
        alert.save()
    if alert.state == FeedbackAlert.State.PENDING:
        return "retry"
    if alert.state == FeedbackAlert.State.FAILED:
        logger.warning("feedback alert %s failed: %s", alert.pk, alert.last_error)
    return alert.state


def alerts_requeue_stale(*, now: dt.datetime | None = None) -> list[tuple[int, int]]:
    """(tenant id, alert id) of pending alerts untouched for a while: their task was lost."""
    now = now or clock.now()
    stale = list(FeedbackAlert.all_tenants.filter(state=FeedbackAlert.State.PENDING,
                                                  updated_at__lt=now - ALERT_REQUEUE_AFTER)
                 .order_by("pk").values_list("tenant_id", "pk")[:SETTLE_BATCH])
    # Touched, so the next sweep does not hand the same alert out again straight away.
    FeedbackAlert.all_tenants.filter(pk__in=[pk for _, pk in stale]).update(updated_at=now)
    return stale


# --- moderation -----------------------------------------------------------------


def review_moderate(*, review: Review, action: str, reason: str = "", reply: str | None = None,
                    by: str = "") -> Review:
    """approve | reject (a reason is required) | reply. Approving emits review.approved once,
    which loyalty can reward."""
    now = clock.now()
    with transaction.atomic():
        locked = Review.objects.for_tenant(review.tenant_id).select_for_update(of=("self",)).select_related(
            "customer__tenant", "product").get(pk=review.pk)
        if action == "approve":
            locked.status, locked.rejection_reason = Review.Status.APPROVED, ""
        elif action == "reject":
            if not reason.strip():
                raise ServiceError("reviews.reason_required", "say why the review is rejected",
                                   {"rejection_reason": ["is required to reject"]})
            locked.status, locked.rejection_reason = Review.Status.REJECTED, reason.strip()[:300]
        elif action != "reply":
            raise ServiceError("reviews.bad_action", "action must be approve, reject or reply")
        if action in ("approve", "reject"):
            locked.moderated_at, locked.moderated_by = now, by[:150]
        if reply is not None and reply != locked.store_reply:
            locked.store_reply, locked.replied_at = reply, now if reply else None
        locked.save()
        if action == "approve":
            _approved_once(locked, now)
    return locked


# --- erasure --------------------------------------------------------------------


def feedback_customer_erase(*, tenant_id: int, customer_id: int) -> None:
    """GDPR erasure (customer.erased): the customer's own words and name leave feedback too.

    Scores stay (anonymous, they feed the metrics); comments, review titles and bodies, the
    shown name and the alert payloads (which copy the customer's details) are blanked, and
    erased reviews leave the storefront. Idempotent.
    """
    SurveyResponse.objects.for_tenant(tenant_id).filter(customer_id=customer_id).update(comment="")
    AnswerAttempt.objects.for_tenant(tenant_id).filter(request__customer_id=customer_id).update(user_agent="")
    FeedbackAlert.objects.for_tenant(tenant_id).filter(response__customer_id=customer_id).update(payload={})
    Review.objects.for_tenant(tenant_id).filter(customer_id=customer_id).update(
        title="", body="", author_name="", status=Review.Status.REJECTED, rejection_reason="customer erased")
