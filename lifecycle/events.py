"""Events are the outbox: features react to them from here, in order, each event once.

Which apps react to an event, and in what order, is declared once per event type in
lifecycle/event_types.py; each app registers its reaction with `reaction()` when Django starts it
(its AppConfig.ready). The reactions are called explicitly one after another — no Django signals. A beat task drains unprocessed events every few
seconds with `FOR UPDATE SKIP LOCKED`, so several workers share the work and a lost broker
message loses nothing: the row is still unprocessed and the next sweep takes it.
Handlers must be idempotent (keyed by the event's id): an event whose transaction failed
is handled again.

The sweep works across tenants (`system_scope`, for row-level security); each event's handlers
run in its own tenant's scope, so a handler sees no other store's rows.

Sweeps share the work by customer, not by batch: on PostgreSQL each sweep takes one of
`EVENT_SWEEP_SLOTS` slots (a transaction-scoped advisory lock) and only the events whose
customer id falls in it. One customer's events are so handled in order by one sweep at a time,
and two sweeps never wait on each other's locks for the same customer (the journeys' enrollment
lock, the loyalty account's row), which with overlapping batches ended in deadlocks. A sweep that
finds every slot taken returns at once, so beat's ticks don't pile sweeps up on the worker pool.

Set-based handling: an app may register a batch reaction beside its per-event one
(`@reaction("journeys", batch=True)`, taking a list of one tenant's events), which acts on many
events with a few statements instead of a few statements each. The sweep groups its batch by
tenant and splits each group into rounds, the k-th event of each customer in round k, so a
customer appears at most once in a round: rounds run in order (one customer's events stay in
order) and inside a round each app's batch reaction runs once, in the declared order, in one
savepoint. If a round's batch reactions raise, the round is handled again event by event, each in
its own savepoint, exactly as without batch reactions: the failing event is retried alone
(`process_attempts`, set aside after MAX_ATTEMPTS) and the others go through. `processed_at` is
set with one UPDATE per batch.
"""

import contextvars
import logging
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import BigIntegerField, F
from django.db.models.functions import Coalesce, Mod

from . import citus, clock
from .event_types import REACTION_ORDER, event_type
from .models import Customer, Event, Order, Tenant
from .tenancy import system_scope, tenant_scope

logger = logging.getLogger(__name__)

# Events per sweep transaction: enough to keep up with bursts and to give the batch reactions
# rounds worth their fixed statements (a round reads its store's journeys and programmes once,
# whatever its size), short enough to hold locks briefly: a batch is a few hundred ms of work.
BATCH_SIZE = 500
# An event that keeps failing is set aside (processed, with attempts recorded) instead of
# blocking the sweep forever; the log says which and why.
MAX_ATTEMPTS = 5


T = TypeVar("T")
Reaction = Callable[[Event], None]
BatchReaction = Callable[[Sequence[Event]], None]
_reactions: dict[str, Reaction] = {}
_batch_reactions: dict[str, BatchReaction] = {}


def reaction(app_label: str, *, batch: bool = False) -> Callable:
    """Register `app_label`'s reaction to events (a decorator, applied when the app's handlers
    module is imported by its AppConfig.ready). The event types say when it is called.

    With batch=True, the app's batch reaction: it takes a list of one tenant's events, each
    customer at most once, and must leave the database as the per-event reaction called on each
    of them in turn would (the per-event one stays the fallback when a batch fails)."""
    if app_label not in REACTION_ORDER:
        raise ValueError(f"{app_label} is not in lifecycle.event_types.REACTION_ORDER")

    def register(handler):
        (_batch_reactions if batch else _reactions)[app_label] = handler
        return handler

    return register


def reactions_to(event_type_name: str) -> list[Reaction]:
    """The reactions an event of this type gets, in the declared order."""
    return [_reactions[app] for app in event_type(event_type_name).reactors if app in _reactions]


def _batch_of(handler: Reaction) -> BatchReaction | None:
    app = next((label for label, registered in _reactions.items() if registered is handler), None)
    return _batch_reactions.get(app) if app is not None else None


_memo: contextvars.ContextVar[dict | None] = contextvars.ContextVar("lifecycle_events_sweep_memo", default=None)


def sweep_memo(key: Hashable, load: Callable[[], T]) -> T:
    """What batch reactions read once per sweep transaction — a store's journeys, its programme —
    loaded on first use and kept until the sweep's transaction ends (a change committed meanwhile
    counts from the next sweep, as if it had come a moment later). Outside a sweep: loaded each time."""
    memo = _memo.get()
    if memo is None:
        return load()
    if key not in memo:
        memo[key] = load()
    return memo[key]


# Advisory-lock class of the sweep slots (the two-int key space, apart from lifecycle.services' locks).
SWEEP_LOCK_CLASS = 0x5EE9


# Customers are spread over this many sweep keys (their id modulo it); slot s of N takes the keys k
# with k % N == s, so every customer's events belong to one slot (for N dividing 64, the customers
# whose id % N == s). PostgreSQL keeps statistics on this very expression (migration lifecycle 0013),
# which is what lets it see that a slot holds about 1/N of the backlog.
SWEEP_KEYS = 64


def sweep_slots() -> int:
    """How many sweeps may run at once (1 on SQLite, which has one writer anyway; at most SWEEP_KEYS)."""
    return min(SWEEP_KEYS, max(1, int(settings.EVENT_SWEEP_SLOTS))) if connection.vendor == "postgresql" else 1


def _take_slot(slot: int) -> bool:
    """Hold sweep slot `slot` until the transaction ends; False if another sweep holds it."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [SWEEP_LOCK_CLASS, slot])
        return cursor.fetchone()[0]


def events_process_pending(*, limit: int = BATCH_SIZE, slot: int | None = None, batch: bool = True) -> int | None:
    """Handle up to `limit` unprocessed events, oldest first. Returns how many were taken.

    With `slot`, only that slot's customers' events, and None at once if another sweep holds
    the slot. Without, every customer's (tests and one-off drains). With batch=False every event
    goes through the per-event reactions only (the batch reactions' reference)."""
    memo = _memo.set({})
    try:
        return _process(limit=limit, slot=slot, batch=batch)
    finally:
        _memo.reset(memo)


def _process(*, limit: int, slot: int | None, batch: bool) -> int | None:
    with system_scope(), transaction.atomic():
        if slot is not None and not _take_slot(slot):
            return None
        taken = _claim(limit=limit, slot=slot)
        done: list[Event] = []
        by_tenant: dict[int, list[Event]] = defaultdict(list)
        for event in taken:
            by_tenant[event.tenant_id].append(event)
        for tenant_id, events in by_tenant.items():
            with tenant_scope(tenant_id):
                for round_ in rounds(events) if batch else [[event] for event in events]:
                    done += _round_handle(round_) if batch else _events_handle_one_by_one(round_)
        _mark_processed(done)
    return len(taken)


def _claim(*, limit: int, slot: int | None) -> list[Event]:
    """Lock up to `limit` unprocessed events (of `slot`'s customers), oldest first, and load them
    with their customers, orders and stores.

    The lock is a statement of its own over the event table alone: it walks the unprocessed-events
    index in its order (created_at, id) and stops after `limit` rows, so a batch costs the same at a
    backlog of 100 or of 1,000,000 (a join in the same statement led PostgreSQL to hash the whole
    order and customer tables, and without statistics on the slot's expression it sorted the whole
    backlog for each batch). The rows they point to are then read by primary key, one query each."""
    pending = Event.all_tenants.filter(processed_at__isnull=True)
    slots = sweep_slots() if slot is not None else 1
    if slots > 1:
        pending = pending.alias(key=Mod(Coalesce(F("customer_id"), 0), SWEEP_KEYS, output_field=BigIntegerField())).filter(
            key__in=[key for key in range(SWEEP_KEYS) if key % slots == slot])
    # On Citus store by store (lifecycle/citus.py): a FOR UPDATE stays in one shard group.
    locked = citus.locked_batch(pending.only("pk", "tenant_id").order_by("created_at", "pk"), limit)
    if not locked:
        return []
    # Each read names the batch's stores, so on Citus one store's batch reads its own shard group only.
    stores = sorted({event.tenant_id for event in locked})
    taken = list(Event.all_tenants.filter(tenant_id__in=stores, pk__in=[event.pk for event in locked])
                 .order_by("created_at", "pk"))
    customers = Customer.all_tenants.filter(tenant_id__in=stores).in_bulk(
        {e.customer_id for e in taken if e.customer_id is not None})
    orders = Order.all_tenants.filter(tenant_id__in=stores).in_bulk({e.order_id for e in taken if e.order_id is not None})
    tenants = Tenant.objects.in_bulk(stores)
    for event in taken:  # what select_related would have set, without joining in the statement above
        event.tenant = tenants[event.tenant_id]
        event.customer = customers.get(event.customer_id)
        event.order = orders.get(event.order_id)
    return taken


def rounds(events: Sequence[Event]) -> list[list[Event]]:
    """Split events (oldest first) so that each customer appears at most once per round: the k-th
    event of each customer goes in round k. Events without a customer go in the first round."""
    split: list[list[Event]] = []
    seen: dict[int, int] = defaultdict(int)
    for event in events:
        k = seen[event.customer_id] if event.customer_id is not None else 0
        if event.customer_id is not None:
            seen[event.customer_id] += 1
        if k == len(split):
            split.append([])
        split[k].append(event)
    return split


def _round_handle(events: list[Event]) -> list[Event]:
    """One round, set-based: each reaction in the declared order, as its app's batch reaction over
    the round's events it concerns (the per-event reaction on each of them where the app has
    none), all in one savepoint. Any error: the round again, one event at a time."""
    concerned: dict[Reaction, list[Event]] = {}
    by_type: dict[str, list[Reaction]] = {}
    for event in events:
        if event.type not in by_type:
            by_type[event.type] = reactions_to(event.type)
        for react in by_type[event.type]:
            concerned.setdefault(react, []).append(event)
    if not any(_batch_of(react) for react in concerned):
        return _events_handle_one_by_one(events)
    try:
        with transaction.atomic():
            for react in sorted(concerned, key=_rank):
                batch_react = _batch_of(react)
                if batch_react is not None:
                    batch_react(concerned[react])
                else:
                    for event in concerned[react]:
                        react(event)
    except Exception:  # noqa: BLE001 - whatever failed, each event gets its own try
        logger.info("a round of %s events failed as a batch; handling them one by one", len(events),
                    exc_info=True)
        return _events_handle_one_by_one(events)
    return events


def _rank(react: Reaction) -> int:
    app = next((label for label, registered in _reactions.items() if registered is react), None)
    return REACTION_ORDER.index(app) if app is not None else len(REACTION_ORDER)


def _events_handle_one_by_one(events: list[Event]) -> list[Event]:
    """The per-event path: each event's reactions in its own savepoint. Returns the events done
    (handled, or set aside after MAX_ATTEMPTS); a failure short of that records its attempt."""
    done = []
    for event in events:
        try:
            with transaction.atomic():
                for react in reactions_to(event.type):
                    react(event)
        except OperationalError:
            # A deadlock, a lock or statement timeout, a lost connection: not the event's fault,
            # so no attempt is counted. It stays unprocessed for the next sweep (if the
            # connection is gone, the next statement fails and the whole batch with it).
            logger.warning("event %s (%s) hit a database error; left for the next sweep", event.pk,
                           event.type, exc_info=True)
            continue
        except Exception:
            event.process_attempts += 1
            logger.exception("event %s (%s) failed in a handler, attempt %s", event.pk, event.type,
                             event.process_attempts)
            if event.process_attempts < MAX_ATTEMPTS:
                Event.all_tenants.filter(tenant_id=event.tenant_id, pk=event.pk).update(
                    process_attempts=event.process_attempts)
                continue
        done.append(event)
    return done


def _mark_processed(done: list[Event]) -> None:
    """processed_at for every event done, in one statement (process_attempts as each ended)."""
    if not done:
        return
    now = clock.now()
    attempts: dict[int, list[int]] = defaultdict(list)
    for event in done:
        attempts[event.process_attempts].append(event.pk)
    # The tenants named, so that on Citus the UPDATE goes to their shards only.
    tenants = {event.tenant_id for event in done}
    for count, pks in attempts.items():
        Event.all_tenants.filter(tenant_id__in=tenants, pk__in=pks).update(processed_at=now, process_attempts=count)
