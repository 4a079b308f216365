"""Sending claimed deliveries in batches: what a send task does with the ids the dispatcher hands it.
The one send path: every email a journey sends (plain, survey, referral invitation) goes through it.

A batch goes through claimed → sending → sent in waves of
SEND_WAVE rows (SEND_WAVE_WITHOUT_IDEMPOTENCY when the ESP does not honour our idempotency key), each
wave with a handful of set-based statements:

1. one statement moves the wave's rows claimed → sending, consuming their leases
   (`schedule.deliveries_begin_sending`: a redelivered task, or a second copy of it, finds none and
   does nothing);
2. one SELECT loads them; the gate reads exit events, last marketing emails and higher-priority
   rivals once for the wave (`gate_decisions`); rows that have no email to send now (a skip, a
   defer, an exit, a branch, a points award, a survey nobody can answer) go through
   `delivery_settle` one by one;
3. the emails are rendered with the wave's reads done once (`render_emails`), then handed to the
   ESP, by JOURNEY_SEND_CONCURRENCY threads at a time when the ESP is slow to answer;
4. one transaction records the wave: an UPDATE … FROM (VALUES …) marks the sent rows with their
   Message-ID and ESP id (only rows still 'sending'), and the journeys move on (the finished
   enrollments completed in one UPDATE, the next steps' rows written with one INSERT).

While a wave's emails are with the ESP, the next wave is prepared (steps 1-3), so at most two
waves are 'sending' per worker process. A worker that dies leaves those rows 'sending' until
their lease expires: `deliveries_reclaim` retries them when the ESP honours our idempotency key
(the deterministic Message-ID), and marks them `ambiguous` otherwise. The wave bounds how many rows
one crash can make ambiguous; none of them is ever resent silently or lost."""

import collections
import contextvars
import dataclasses
import datetime as dt
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from anymail.message import AnymailMessage
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import get_connection
from django.db import connection, connections, transaction

from feedback.selectors import survey_for_config
from feedback.services import survey_request_for_delivery
from lifecycle import clock
from lifecycle.errors import ServiceError
from lifecycle.models import Tenant
from lifecycle.sending_domains import EspConnection, esp_connection
from lifecycle.tenancy import current_tenant_id
from loyalty.services import points_award
from referrals.services import invite_record

from .builder_checks import EMAIL_KINDS
from .discounts import discount_code_issue, discount_code_keep
from .enrollment import branch_decide, delivery_advance, delivery_history, enrollment_exit, step_delivery
from .graph import plain_next
from .models import Delivery, Enrollment, Journey, Step
from .rendering import SendResult, build_message, esp_send, render_emails
from .schedule import GateDecision, deliveries_begin_sending, esp_honours_idempotency, gate_decisions
from .webhooks import webhook_call_queue

# Rows per wave: one claimed → sending UPDATE, one load, one gate read, one query per kind of value the
# emails draw, one recording transaction: about ten statements and their ORM work (~3 ms of CPU), so
# ~0.06 ms per email at 50 (twice that at 25, a tenth of an email's whole cost). Small because a worker
# killed mid-wave leaves up to two waves 'sending': with an ESP that honours our idempotency key those
# are simply sent again (the ESP drops the repeats), so a hundred rows cost a crash nothing but time.
SEND_WAVE = 50
# Without one, each of those rows becomes ambiguous (a person decides), the ones the ESP had not been
# handed yet too (the database cannot tell them apart): smaller waves keep a crash to a score of
# those per worker process, for about 0.15 ms more per email.
SEND_WAVE_WITHOUT_IDEMPOTENCY = 10


def send_wave() -> int:
    return SEND_WAVE if esp_honours_idempotency() else SEND_WAVE_WITHOUT_IDEMPOTENCY


def send_concurrency() -> int:
    """ESP calls in flight per worker process (JOURNEY_SEND_CONCURRENCY): 1 sends from the task's own
    thread; more hides an ESP's round trip (an API that takes 100 ms answers 10 calls a second per
    thread, whatever the CPU)."""
    return max(1, int(getattr(settings, "JOURNEY_SEND_CONCURRENCY", 1) or 1))


def deliveries_send(*, delivery_ids: Sequence[int], send: Callable[..., SendResult] | None = None,
                    ) -> collections.Counter:
    """Send a batch of claimed deliveries, each at most once; returns how many ended in each state
    ("" counts the ids that were not ours: not claimed any more).

    Any tenants' rows: each wave's reads are per tenant. Locks nothing beyond the UPDATEs' rows;
    holds no transaction open while the ESP works. `send(message, connection=…)` replaces
    `sending.esp_send` (tests use it to fail or to crash between the ESP and the record).
    """
    outcomes: collections.Counter = collections.Counter()
    send = send or esp_send
    cache = _Cache()
    pool = _EspPool(send_concurrency(), send)
    in_flight: _Wave | None = None
    try:
        size = send_wave()
        for start in range(0, len(delivery_ids), size):
            ids = list(delivery_ids[start:start + size])
            try:
                wave = _prepare(ids, cache, outcomes)
            except Exception:
                # Nothing of this wave reached the ESP: its rows go back to pending rather than wait for
                # their lease (and, without an idempotent ESP, turn ambiguous).
                _give_back(ids)
                raise
            wave.results = [pool.submit(message) for _delivery, message in wave.emails]
            previous, in_flight = in_flight, wave
            if previous is not None:
                _record(previous, cache, outcomes)
        last, in_flight = in_flight, None
        if last is not None:
            _record(last, cache, outcomes)
    except Exception:
        if in_flight is not None:  # the ESP has these: record what it answered before giving up
            _record(in_flight, cache, outcomes)
        raise
    finally:
        pool.close()  # waits for the calls in flight; rows left 'sending' are the reclaim's
    return outcomes


def _give_back(ids: list[int]) -> None:
    """sending → pending for rows of a wave that failed before any of its emails went to the ESP."""
    Delivery.all_tenants.filter(pk__in=ids, state=Delivery.State.SENDING).update(
        state=Delivery.State.PENDING, lease_until=None, updated_at=clock.now(),
        reason="retry: the send task failed before handing it to the ESP")


@dataclasses.dataclass
class _Wave:
    now: dt.datetime
    emails: list[tuple[Delivery, AnymailMessage]]  # for the ESP, in the wave's order
    results: list[Future] = dataclasses.field(default_factory=list)


class _Cache:
    """What a batch's rows share: their tenants, journeys and steps (with templates), read once per
    batch (a paused journey is seen by the next batch, a second or so later)."""

    def __init__(self) -> None:
        self.tenants: dict[int, Tenant] = {}
        self.journeys: dict[int, Journey] = {}
        self.steps: dict[int, Step] = {}
        self.steps_of: dict[int, list[Step]] = {}  # journey id → its steps by position
        self.esps: dict[int, EspConnection | None] = {}  # tenant id → the store's own ESP account, if any

    def esp(self, tenant_id: int) -> EspConnection | None:
        if tenant_id not in self.esps:
            self.esps[tenant_id] = esp_connection(tenant_id)
        return self.esps[tenant_id]

    def load(self, deliveries: list[Delivery]) -> None:
        tenants = {d.tenant_id for d in deliveries} - self.tenants.keys()
        if tenants:
            self.tenants.update(Tenant.objects.in_bulk(tenants))
        journeys = {d.journey_id for d in deliveries} - self.journeys.keys()
        if journeys:
            self.journeys.update(Journey.all_tenants.in_bulk(journeys))
            for step in Step.all_tenants.filter(journey_id__in=journeys).select_related("template").order_by(
                    "journey_id", "position"):
                self.steps[step.pk] = step
                self.steps_of.setdefault(step.journey_id, []).append(step)
        for delivery in deliveries:
            journey = self.journeys[delivery.journey_id]
            delivery.journey = journey
            delivery.step = self.steps[delivery.step_id]
            delivery.customer.tenant = self.tenants[delivery.tenant_id]
            delivery.enrollment.journey = journey

    def next_step(self, delivery: Delivery) -> Step | None:
        """The step after an email step (branches and splits go through delivery_settle)."""
        steps = self.steps_of[delivery.journey_id]
        target = plain_next(delivery.step, steps)
        return next((s for s in steps if s.position == target), None) if target is not None else None


def _begin(ids: list[int], now: dt.datetime) -> list[int]:
    """claimed → sending for those of `ids` still claimed (in the order given); the others are not ours."""
    return deliveries_begin_sending(ids=ids, now=now, tenant_id=current_tenant_id())


def _prepare(ids: list[int], cache: _Cache, outcomes: collections.Counter) -> _Wave:
    """Take the wave's rows, gate them, settle the ones with no email to send now, build the rest."""
    now = clock.now()
    taken = _begin(ids, now)
    outcomes[""] += len(ids) - len(taken)
    wave = _Wave(now=now, emails=[])
    if not taken:
        return wave
    loaded = Delivery.all_tenants.select_related("customer", "enrollment__order").in_bulk(taken)
    deliveries = [loaded[pk] for pk in taken]
    cache.load(deliveries)
    to_render = []
    for delivery, decision in zip(deliveries, gate_decisions(deliveries, now), strict=True):
        if decision.action == "send" and delivery.step.kind in EMAIL_KINDS:
            # Asked once: a survey request or a referral invite writes what it must here.
            reason = skip_before_sending(delivery)
            if not reason:
                to_render.append(delivery)
                continue
            outcomes[delivery_settle(delivery, decision, now, nothing_to_send=reason)] += 1
        else:
            outcomes[delivery_settle(delivery, decision, now)] += 1
    rendered = render_emails(to_render)
    for delivery in to_render:
        email = rendered[delivery.pk]
        if isinstance(email, Exception):  # a template that no longer renders: failed, with the reason
            outcomes[record_failure(delivery, email, now)] += 1
        else:
            message = build_message(delivery, email)
            own = cache.esp(delivery.tenant_id)
            if own is not None:  # the store's own ESP account: its connection, and what anymail passes on per message
                message.store_esp = own
                message.tags = message.tags[:own.max_tags]  # the journey's tag first; the ids stay in metadata
                if own.esp_extra:
                    message.esp_extra = dict(own.esp_extra)
            wave.emails.append((delivery, message))
    return wave


def _record(wave: _Wave, cache: _Cache, outcomes: collections.Counter) -> None:
    """Wait for the wave's ESP calls, then record them: sent rows and next steps in one transaction,
    each failure on its own row (retried later when transient)."""
    sent: list[tuple[Delivery, SendResult]] = []
    for (delivery, _message), future in zip(wave.emails, wave.results, strict=True):
        try:
            sent.append((delivery, future.result()))
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
            outcomes[record_failure(delivery, exc, wave.now)] += 1
    if not sent:
        return
    now = clock.now()
    with transaction.atomic():
        recorded = _mark_sent(sent, now)
        _advance_all([d for d, _ in sent if d.pk in recorded], cache, now)
    outcomes[Delivery.State.SENT] += len(recorded)


def _mark_sent(sent: list[tuple[Delivery, SendResult]], now: dt.datetime) -> set[int]:
    """sending → sent with the Message-ID and the ESP's id, for the rows still 'sending'; their ids.

    No history entry is stored for it: state and sent_at say it, and the explain view's history derives
    the entry from them (selectors.delivery_history). On every sent row it was some 80 bytes of JSON, a
    third of the row (bench/scale)."""
    if connection.vendor != "postgresql":
        return {d.pk for d, result in sent if delivery_finish(
            d, now, state=Delivery.State.SENT, sent_at=now, message_id=result.message_id,
            esp_message_id=result.esp_message_id or result.message_id)}
    values = ", ".join(["(%s::bigint, %s, %s)"] * len(sent))
    params: list = [now, now]
    for delivery, result in sent:
        params += [delivery.pk, result.message_id, result.esp_message_id or result.message_id]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE journeys_delivery AS d SET state = 'sent', reason = '', lease_until = NULL, sent_at = %s,
                    updated_at = %s, message_id = v.message_id, esp_message_id = v.esp_message_id
                FROM (VALUES {values}) AS v (id, message_id, esp_message_id)
                WHERE d.id = v.id AND d.state = 'sending' AND d.tenant_id = ANY(%s)
                RETURNING d.id""",  # noqa: S608 - only placeholders are interpolated
            # The tenants named (one, from a send task): on Citus the UPDATE goes to their shards only.
            [*params, sorted({delivery.tenant_id for delivery, _ in sent})])
        return {row[0] for row in cursor.fetchall()}


def _advance_all(deliveries: list[Delivery], cache: _Cache, now: dt.datetime) -> None:
    """services.delivery_advance for sent email steps: the enrollments with no step left complete in one
    UPDATE; the next steps' rows are written with one INSERT (a row already there is kept, as the
    unique (enrollment, step) constraint means it is already scheduled)."""
    done, rows = [], []
    for delivery in deliveries:
        nxt = cache.next_step(delivery)
        if nxt is None:
            done.append(delivery.enrollment_id)
        else:
            rows.append(step_delivery(enrollment=delivery.enrollment, step=nxt, previous_at=now))
    if done:
        Enrollment.all_tenants.filter(pk__in=done, state=Enrollment.State.ACTIVE).update(
            state=Enrollment.State.COMPLETED, ended_at=now, reason="all steps done")
    if rows:
        Delivery.all_tenants.bulk_create(rows, ignore_conflicts=True)


class _EspPool:
    """`size` threads, each with its own email backend kept open for the batch; size 1 sends inline.

    The threads touch no database rows; a backend that does (the embedded profile's outbox) gets
    its connection closed when its thread ends."""

    def __init__(self, size: int, send: Callable[..., SendResult]):
        self.size, self.send = size, send
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.inline = get_connection() if size == 1 else None
        if self.inline is not None:
            self.inline.open()  # kept open for the batch: an HTTP ESP's session, an SMTP connection
        self.own_inline: dict = {}  # the stores' own ESP backends of the inline sender, by account

    @staticmethod
    def _store_backend(store_esp: EspConnection, opened: dict):
        """A store's own ESP account's backend (anymail takes the ESP's settings as keyword arguments), one per
        account and thread, kept open for the batch like the platform's."""
        backend = opened.get(store_esp)
        if backend is None:
            backend = opened[store_esp] = get_connection(store_esp.backend, **dict(store_esp.settings))
            backend.open()
        return backend

    def submit(self, message) -> Future:
        future: Future = Future()
        if self.inline is not None:
            self._run(future, message, self.inline)
            return future
        if len(self.threads) < self.size:
            thread = threading.Thread(target=self._work, name=f"esp-{len(self.threads)}", daemon=True)
            self.threads.append(thread)
            thread.start()
        # The job runs in the caller's context: its tenant scope (lifecycle/tenancy.py) goes with it.
        self.jobs.put((contextvars.copy_context(), future, message))
        return future

    def _run(self, future: Future, message, backend, own: dict | None = None) -> None:
        try:
            store_esp = getattr(message, "store_esp", None)
            if store_esp is not None:
                backend = self._store_backend(store_esp, self.own_inline if own is None else own)
            future.set_result(self.send(message, connection=backend))
        except BaseException as exc:  # noqa: BLE001 - handed to the recording side
            future.set_exception(exc)

    def _work(self) -> None:
        backend = get_connection()
        backend.open()
        own: dict = {}
        try:
            while (job := self.jobs.get()) is not None:
                context, future, message = job
                context.run(self._run, future, message, backend, own)
        finally:
            backend.close()
            for store_backend in own.values():
                store_backend.close()
            connections.close_all()

    def close(self) -> None:
        if self.inline is not None:
            self.inline.close()
        for store_backend in self.own_inline.values():
            store_backend.close()
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()


logger = logging.getLogger(__name__)


# Transient ESP errors (timeouts, 5xx, 429): retried with backoff up to this many attempts.
MAX_SEND_ATTEMPTS = 6


def delivery_finish(delivery: Delivery, now: dt.datetime, **fields: Any) -> bool:
    state = fields["state"]
    fields.setdefault("reason", "")
    fields["history"] = delivery_history(delivery, state, fields["reason"], now)
    return bool(Delivery.objects.for_tenant(delivery.tenant_id).filter(
        pk=delivery.pk, state=Delivery.State.SENDING).update(lease_until=None, updated_at=now, **fields))


def delivery_settle(delivery: Delivery, decision: GateDecision, now: dt.datetime, *, nothing_to_send: str = "") -> str:
    """Act on the gate's decision for a delivery this worker holds in 'sending' that has no email to
    send now: skip, defer, exit, evaluate a branch, award points, or skip an email step whose
    `skip_before_sending` said why (`nothing_to_send`). Returns the final state. (An email that may go
    is rendered and sent with its wave, `_prepare`.)"""
    if decision.action == "exit":
        enrollment_exit(enrollment=delivery.enrollment, reason=decision.reason)
        delivery_finish(delivery, now, state=Delivery.State.SKIPPED, reason=decision.reason)
        return Delivery.State.SKIPPED
    if decision.action == "defer":
        delivery_finish(delivery, now, state=Delivery.State.DEFERRED, reason=decision.reason, due_at=decision.until)
        return Delivery.State.DEFERRED
    if decision.action == "skip":
        with transaction.atomic():
            delivery_finish(delivery, now, state=Delivery.State.SKIPPED, reason=decision.reason)
            if delivery.enrollment.state == Enrollment.State.ACTIVE:
                delivery_advance(delivery, now)
        return Delivery.State.SKIPPED
    if delivery.step.kind in (Step.Kind.CONDITION, Step.Kind.AB_SPLIT):
        with transaction.atomic():
            nxt, why = branch_decide(delivery, now)
            # No sent_at: nothing was emailed, so the frequency cap does not count it (as a points award).
            delivery_finish(delivery, now, state=Delivery.State.SENT, reason=why[:300])
            delivery_advance(delivery, now, nxt)
        return Delivery.State.SENT
    if delivery.step.kind == Step.Kind.AWARD_POINTS:
        return _award_points(delivery, now)
    if delivery.step.kind == Step.Kind.WEBHOOK:
        # Sent, for the journey and the frequency cap, once its call is in the outbox (journeys/webhooks.py
        # POSTs it, with retries that do not hold the journey back).
        with transaction.atomic():
            call = webhook_call_queue(delivery, now)
            delivery_finish(delivery, now, state=Delivery.State.SENT, sent_at=now, message_id=call.idempotency_key,
                            reason=f"webhook queued: {call.idempotency_key}")
            delivery_advance(delivery, now)
        return Delivery.State.SENT
    if delivery.step.kind == Step.Kind.DISCOUNT_CODE:
        return _discount_code(delivery, now)
    # The gate let it go, but there is nothing to send: a kind with no email (its reason is its kind),
    # or an email step that `_prepare` found had nothing to send (no template, nothing to ask).
    if delivery.step.kind in EMAIL_KINDS and not nothing_to_send:
        raise RuntimeError(f"delivery {delivery.pk}: an email step that may go is sent with its wave, not settled")
    reason = nothing_to_send or skip_before_sending(delivery)
    with transaction.atomic():
        delivery_finish(delivery, now, state=Delivery.State.SKIPPED, reason=reason)
        delivery_advance(delivery, now)
    return Delivery.State.SKIPPED


def skip_before_sending(delivery: Delivery) -> str:
    """Why a step that passed the gate has no email to send after all ("" when it has one). A feedback
    request writes its survey requests and a referral invite its code here, once per delivery."""
    return (f"step kind '{delivery.step.kind}' has nothing to send yet" if delivery.step.kind not in EMAIL_KINDS
            else "the step has no email template" if delivery.step.template_id is None
            else _feedback_requests(delivery) if delivery.step.kind == Step.Kind.FEEDBACK_REQUEST
            else _referral_invite(delivery) if delivery.step.kind == Step.Kind.REFERRAL_INVITE else "")


def _award_points(delivery: Delivery, now: dt.datetime) -> str:
    """An award_points step, config {"points": 50, "reason": "…"}: once per delivery (the ledger's
    source is the delivery), then the journey moves on."""
    config = delivery.step.config or {}
    points = config.get("points")
    reason = ("" if isinstance(points, int) and not isinstance(points, bool) and points > 0
              else 'the award step needs a whole number of points: config {"points": 50}')
    with transaction.atomic():
        if not reason:
            try:
                points_award(tenant=delivery.customer.tenant, customer=delivery.customer, points=points,
                             source=f"delivery:{delivery.pk}", reason=str(config.get("reason") or delivery.journey.name))
            except ServiceError as exc:
                reason = f"loyalty: {exc.message}"
        state = Delivery.State.SKIPPED if reason else Delivery.State.SENT
        # No sent_at: nothing was emailed, so the frequency cap does not count it.
        delivery_finish(delivery, now, state=state, reason=reason or f"awarded {points} points")
        delivery_advance(delivery, now)
    return state


def _discount_code(delivery: Delivery, now: dt.datetime) -> str:
    """A discount-code step: the code kept for the emails after it, or the reason there is none (an empty
    pool skips the step and the journey goes on); a store webhook that is down is asked again later.
    No sent_at: nothing reached the customer, so the frequency cap does not count it."""
    state, reason, retry_at, code = discount_code_issue(delivery, now)
    with transaction.atomic():
        if state == Delivery.State.PENDING:
            delivery_finish(delivery, now, state=state, reason=reason, due_at=retry_at)
            return state
        if code:
            discount_code_keep(delivery, code, now)
        delivery_finish(delivery, now, state=state, reason=reason)
        delivery_advance(delivery, now)
    return state


def _feedback_requests(delivery: Delivery) -> str:
    """Write the survey requests a feedback step's email links to (idempotent per delivery).
    Returns why there is nothing to ask, or ""."""
    survey = survey_for_config(tenant=delivery.tenant_id, config=delivery.step.config or {})
    if survey is None:
        return 'the feedback step names no survey: set config {"survey": "<key>"} or {"survey_id": <id>}'
    try:
        survey_request_for_delivery(delivery_id=delivery.pk, tenant=delivery.customer.tenant,
                                    customer=delivery.customer, order=delivery.enrollment.order, survey=survey,
                                    journey_id=delivery.journey_id)
    except ServiceError as exc:
        return f"feedback: {exc.message}"
    return ""


def _referral_invite(delivery: Delivery) -> str:
    """Give the customer their referral code and count the invite (idempotent per delivery).
    Returns why there is nothing to invite to, or ""."""
    if invite_record(tenant=delivery.customer.tenant, customer=delivery.customer, delivery_id=delivery.pk) is None:
        return "the store has no active referral program"
    return ""


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, SoftTimeLimitExceeded):
        return True  # the task ran out of time around this email, which is not the email's fault
    if isinstance(exc, AnymailRecipientsRefused):
        return False
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        return status is None or status == 429 or status >= 500
    return isinstance(exc, ConnectionError | TimeoutError | OSError)


def record_failure(delivery: Delivery, exc: Exception, now: dt.datetime) -> str:
    attempts = delivery.attempts  # already counts this attempt (deliveries_begin_sending)
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    if _is_transient(exc) and attempts < MAX_SEND_ATTEMPTS:
        backoff = dt.timedelta(seconds=min(3600, 30 * 2 ** (attempts - 1)))
        delivery_finish(delivery, now, state=Delivery.State.PENDING, reason=f"retrying: {reason}", due_at=now + backoff)
        return Delivery.State.PENDING
    logger.warning("delivery %s failed: %s", delivery.pk, reason)
    delivery_finish(delivery, now, state=Delivery.State.FAILED, reason=reason)
    return Delivery.State.FAILED
