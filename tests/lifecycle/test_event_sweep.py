"""The event sweep: slots by customer, a time budget, and database errors that cost no attempt.

Found under load (bench/ingest): overlapping sweeps deadlocked on one customer's locks, each
deadlock counted as a handler failure, so an event could be set aside unhandled after five; and a
sweep ran as long as events kept coming, holding a worker process away from the sends.
"""

import os
import re
import threading

import pytest
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from lifecycle import clock, events, tasks
from lifecycle.models import Event
from tests.factories import CustomerFactory, TenantFactory

pytestmark = pytest.mark.django_db(transaction=True)

handled: list[int] = []


def recording_handler(event: Event) -> None:
    if event.data.get("fail") == "database":
        raise OperationalError("deadlock detected")
    if event.data.get("fail") == "bug":
        raise ValueError("a handler's bug")
    handled.append(event.pk)


@pytest.fixture(autouse=True)
def _only_the_recording_handler(settings, monkeypatch):
    monkeypatch.setattr(events, "reactions_to", lambda event_type: [recording_handler])
    settings.EVENT_SWEEP_SLOTS = 2
    handled.clear()


def event(tenant, customer=None, **data) -> Event:
    return Event.all_tenants.create(tenant=tenant, customer=customer, type="custom.test", occurred_at=clock.now(),
                                data=data)


def unprocessed() -> set[int]:
    return set(Event.all_tenants.filter(processed_at__isnull=True).values_list("pk", flat=True))


def test_a_handler_bug_counts_attempts_and_sets_the_event_aside_after_the_fifth():
    tenant = TenantFactory()
    broken, fine = event(tenant, fail="bug"), event(tenant)
    for attempt in range(1, events.MAX_ATTEMPTS):
        assert events.events_process_pending() == (1 if attempt > 1 else 2)
        broken.refresh_from_db()
        assert (broken.process_attempts, broken.processed_at) == (attempt, None)
    assert events.events_process_pending() == 1
    broken.refresh_from_db()
    assert broken.process_attempts == events.MAX_ATTEMPTS and broken.processed_at is not None
    assert handled == [fine.pk]


def test_a_database_error_costs_no_attempt_and_leaves_the_event_for_the_next_sweep():
    tenant = TenantFactory()
    stuck, fine = event(tenant, fail="database"), event(tenant)
    for _ in range(events.MAX_ATTEMPTS + 2):
        events.events_process_pending()
    stuck.refresh_from_db()
    assert (stuck.process_attempts, stuck.processed_at) == (0, None)
    assert unprocessed() == {stuck.pk}
    assert handled == [fine.pk]


def test_each_slot_takes_its_own_customers_events_and_slot_zero_those_without_one():
    if connection.vendor != "postgresql":
        pytest.skip("one slot on SQLite")
    tenant = TenantFactory()
    customers = [CustomerFactory(tenant=tenant) for _ in range(4)]
    by_customer = {customer.pk: [event(tenant, customer) for _ in range(2)] for customer in customers}
    anonymous = event(tenant)
    even = {e.pk for pk, evs in by_customer.items() if pk % 2 == 0 for e in evs} | {anonymous.pk}
    odd = {e.pk for pk, evs in by_customer.items() if pk % 2 == 1 for e in evs}
    assert even and odd

    assert events.events_process_pending(slot=1) == len(odd)
    assert set(handled) == odd and unprocessed() == even
    assert events.events_process_pending(slot=0) == len(even)
    assert unprocessed() == set()
    assert sorted(handled) == sorted(odd | even)


def hold_slot(slot: int, holding: threading.Event, release: threading.Event) -> None:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [events.SWEEP_LOCK_CLASS, slot])
            assert cursor.fetchone()[0]
            holding.set()
            release.wait(10)
    finally:
        connection.close()


def test_a_slot_another_sweep_holds_is_passed_over_and_a_sweep_with_none_free_returns_at_once():
    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    tenant = TenantFactory()
    customers = [CustomerFactory(tenant=tenant) for _ in range(2)]
    for customer in customers:
        event(tenant, customer)
    slot_of = {customer.pk % 2: customer.pk for customer in customers}
    assert set(slot_of) == {0, 1}
    holding, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_slot, args=(0, holding, release))
    holder.start()
    try:
        assert holding.wait(10)
        assert events.events_process_pending(slot=0) is None
        assert handled == []
        assert tasks.process_events() == 1  # slot 1's event only
        assert list(Event.all_tenants.filter(processed_at__isnull=True).values_list("customer_id", flat=True)) == [
            slot_of[0]]
    finally:
        release.set()
        holder.join()
    assert tasks.process_events() == 1
    assert unprocessed() == set()

    holders = []
    held = [threading.Event(), threading.Event()]
    release = threading.Event()
    for slot in (0, 1):
        holders.append(threading.Thread(target=hold_slot, args=(slot, held[slot], release)))
        holders[-1].start()
    try:
        assert all(flag.wait(10) for flag in held)
        event(tenant, customers[0])
        assert tasks.process_events() == 0
        assert len(unprocessed()) == 1
    finally:
        release.set()
        for thread in holders:
            thread.join()


def test_a_sweep_returns_when_its_time_is_up_and_the_next_one_goes_on(monkeypatch, settings):
    settings.EVENT_SWEEP_SLOTS = 1
    monkeypatch.setattr(tasks, "BATCH_SIZE", 2)
    tenant = TenantFactory()
    for _ in range(5):
        event(tenant)
    monkeypatch.setattr(tasks, "SWEEP_SECONDS", 0.0)
    assert tasks.process_events() == 2
    assert len(unprocessed()) == 3
    monkeypatch.setattr(tasks, "SWEEP_SECONDS", 60.0)
    assert tasks.process_events() == 3
    assert unprocessed() == set()


def claim_plan(slot: int, limit: int) -> tuple[list[int], str]:
    """The events a sweep of `slot` takes, and PostgreSQL's plan for the statement that locked them."""
    with CaptureQueriesContext(connection) as captured:
        assert events.events_process_pending(slot=slot, limit=limit) == limit
    claim = next(q["sql"] for q in captured.captured_queries if "FOR UPDATE SKIP LOCKED" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + claim)
        return list(handled), "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.skipif(os.environ.get("LIFECYCLE_TEST_CITUS") == "1",
                    reason="plain PostgreSQL's plan; on Citus, tests/lifecycle/test_citus.py checks where it runs")
def test_the_claim_walks_the_unprocessed_index_in_order_whatever_the_backlog_and_the_statistics():
    """At a backlog of thousands the claim must not read and sort all of it for each batch: with
    no statistics on the slot's expression PostgreSQL guessed a slot held 0.5 % of the backlog and
    chose a sequential scan and a sort of every unprocessed event (bench/events: 60-140 ms a batch
    at 100,000 events). Fresh statistics, then statistics taken when nothing was pending."""
    if connection.vendor != "postgresql":
        pytest.skip("the claim's plan is PostgreSQL's")
    tenant = TenantFactory()
    customers = [CustomerFactory(tenant=tenant).pk for _ in range(40)]

    def backlog(n: int, *, analyze: bool) -> list[int]:
        """n events, one customer after another, oldest first (one INSERT: the test's own set-up)."""
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO lifecycle_event (tenant_id, customer_id, type, occurred_at, data, backfill, created_at, "
                "process_attempts) SELECT %s, (%s::bigint[])[1 + g %% %s], 'custom.test', now(), '{}', false, "
                "now() + g * interval '1 millisecond', 0 FROM generate_series(0, %s - 1) g RETURNING id, customer_id",
                [tenant.pk, customers, len(customers), n])
            made = sorted(cursor.fetchall())
            if analyze:
                cursor.execute("ANALYZE lifecycle_event")
        return made

    made = backlog(30000, analyze=True)
    taken, plan = claim_plan(slot=1, limit=500)
    assert taken == [pk for pk, customer in made if customer % 2 == 1][:500]  # the slot's oldest, in order
    assert "Index Scan using event_unprocessed_idx" in plan and "Sort" not in plan and "Seq Scan" not in plan, plan
    # It knows the slot holds half of the backlog (without statistics on the key: 0.5 %, 150 rows).
    scan = next(line for line in plan.splitlines() if "Index Scan" in line)
    assert 10000 <= int(re.search(r"rows=(\d+)", scan).group(1)) <= 20000, scan

    Event.all_tenants.filter(processed_at__isnull=True).update(processed_at=clock.now())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE lifecycle_event")
    handled.clear()
    made = backlog(30000, analyze=False)  # the statistics say nothing is pending
    taken, plan = claim_plan(slot=0, limit=500)
    assert taken == [pk for pk, customer in made if customer % 2 == 0][:500]
    assert "Index Scan using event_unprocessed_idx" in plan and "Sort" not in plan and "Seq Scan" not in plan, plan
