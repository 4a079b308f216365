"""One queue's backlog never delays another (issue 16, item 2), shown with a real `celery -A config
worker` on a Redis server of the test's own: the messages are published exactly as beat and the
dispatcher publish them, and a worker that consumes one queue, as docker-compose.yml's services do,
works through its queue while the other queue's backlog sits there untouched.
"""

import datetime as dt
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from config.celery import app
from journeys import tasks as journey_tasks
from journeys.models import Delivery, Enrollment
from journeys.schedule import deliveries_claim_by_tenant, deliveries_claimed
from lifecycle import tasks as lifecycle_tasks
from lifecycle.models import Event, OutboxMessage, Tenant
from lifecycle.tenancy import system_scope
from tests.factories import order_payload

from .helpers import make_journey, process_events, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
ORDERS = 3
TICKS = 5  # beat's wake-ups of the event sweep, waiting in the events queue


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def broker(tmp_path):
    """A Redis server of this test's own: no other run's worker or beat shares its queues."""
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def pings() -> bool:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    wait_for(pings, 10, "the test's Redis server")
    yield url
    server.terminate()
    server.wait(timeout=10)


@contextmanager
def worker(broker: str, queue: str, tmp_path: Path):
    """`celery -A config worker -Q <queue>`, no beat: only the messages this test publishes exist."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "LIFECYCLE_PROFILE": "embedded",
        "LIFECYCLE_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": broker,
        "EMAIL_BACKEND": "lifecycle.mail.OutboxBackend",
    }
    log_path = tmp_path / f"worker-{queue}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--queues", queue, "--concurrency=1",
             "--loglevel=INFO", "--without-mingle", "--without-gossip", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            yield log_path
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    if os.environ.get("CI"):
        print(log_path.read_text()[-3000:])


@contextmanager
def publisher(broker: str):
    """A producer on the test's broker: messages routed as any process of ours routes them."""
    with app.connection_for_write(broker) as conn, conn.Producer() as producer:
        yield producer


def post_orders(api, prefix: str) -> None:
    for n in range(ORDERS):
        body = order_payload(external_id=f"{prefix}-{n}", customer={
            "external_id": f"{prefix}-c{n}", "email": f"{prefix.lower()}{n}@example.com", "marketing_consent": True})
        assert api.post("/api/v1/orders", body).status_code == 201


@pytest.fixture
def first_orders_claimed(api, tenant) -> list[int]:
    """Orders A-0..2 swept and their emails claimed (what the dispatcher does before queueing sends), then
    orders B-0..2 posted: their events wait for a sweep."""
    Tenant.objects.filter(pk=tenant.pk).update(quiet_hours_start=dt.time(0), quiet_hours_end=dt.time(0),
                                               frequency_cap_hours=0)
    make_journey(tenant, name="Thanks", steps=[("PT0S", "Thanks for your order")])
    post_orders(api, "A")
    process_events()
    with system_scope():
        claimed = deliveries_claim_by_tenant(limit=100)
    assert list(claimed) == [tenant.pk] and len(claimed[tenant.pk]) == ORDERS
    post_orders(api, "B")
    return claimed[tenant.pk]


def claimed_now(ids: list[int]) -> set[int]:
    with system_scope():
        return deliveries_claimed(ids=ids)


def unprocessed_events(tenant) -> int:
    return Event.objects.for_tenant(tenant).filter(processed_at__isnull=True).count()


def test_sends_go_out_while_a_backlog_of_event_sweeps_waits_on_its_own_queue(tenant, first_orders_claimed,
                                                                               broker, tmp_path):
    waiting_events = unprocessed_events(tenant)
    assert waiting_events >= ORDERS  # B's order.placed / order.paid, not swept yet
    with publisher(broker) as producer:
        for _ in range(TICKS):
            lifecycle_tasks.process_events.apply_async(producer=producer)
        journey_tasks.send.apply_async(args=[first_orders_claimed], kwargs={"tenant_id": tenant.pk},
                                       producer=producer)
    queued = redis.Redis.from_url(broker)
    assert (queued.llen("events"), queued.llen("sends")) == (TICKS, 1)

    with worker(broker, "sends", tmp_path):
        wait_for(lambda: Delivery.objects.for_tenant(tenant).filter(state="sent").count() == ORDERS, 25,
                 "the first orders' emails")

        # The sends went out; the sweeps queued before them are still waiting, untouched.
        assert queued.llen("sends") == 0
        assert queued.llen("events") == TICKS
    assert sorted(OutboxMessage.objects.filter(tenant_id=tenant.pk).values_list("to", flat=True)) == [
        "a0@example.com", "a1@example.com", "a2@example.com"]
    assert unprocessed_events(tenant) == waiting_events
    assert Enrollment.objects.for_tenant(tenant).count() == ORDERS  # B's orders: nobody enrolled them
    assert queued.llen("events") == TICKS


def test_event_sweeps_go_on_while_a_backlog_of_sends_waits_on_its_own_queue(tenant, first_orders_claimed,
                                                                            broker, tmp_path):
    assert unprocessed_events(tenant) >= ORDERS
    with publisher(broker) as producer:
        for delivery_id in first_orders_claimed:
            journey_tasks.send.apply_async(args=[[delivery_id]], kwargs={"tenant_id": tenant.pk}, producer=producer)
        for _ in range(2):
            lifecycle_tasks.process_events.apply_async(producer=producer)
    queued = redis.Redis.from_url(broker)
    assert (queued.llen("sends"), queued.llen("events")) == (ORDERS, 2)

    with worker(broker, "events", tmp_path):
        wait_for(lambda: unprocessed_events(tenant) == 0, 25, "the sweep of B's events")
        wait_for(lambda: queued.llen("events") == 0, 10, "the second tick to be taken")

        # B's orders are enrolled and their emails scheduled, while A's sends wait in their queue.
        assert Enrollment.objects.for_tenant(tenant).count() == 2 * ORDERS
        assert queued.llen("sends") == ORDERS
    deliveries = Delivery.objects.for_tenant(tenant)
    # Still claimed: pending, their leases held for the send tasks that wait.
    assert sorted(deliveries.filter(pk__in=first_orders_claimed).values_list("state", flat=True)) == ["pending"] * ORDERS
    assert claimed_now(first_orders_claimed) == set(first_orders_claimed)
    assert deliveries.exclude(pk__in=first_orders_claimed).filter(state="pending").count() == ORDERS
    assert OutboxMessage.objects.filter(tenant_id=tenant.pk).count() == 0
    assert queued.llen("sends") == ORDERS


def test_the_dispatchers_next_claim_does_not_wait_behind_a_backlog_of_sends(tenant, first_orders_claimed,
                                                                            broker, tmp_path):
    process_events()
    # B's emails are now due, waiting for a claim (A's are pending too, claimed for the sends queued below).
    due = list(Delivery.objects.for_tenant(tenant).filter(state="pending").exclude(pk__in=first_orders_claimed)
               .values_list("pk", flat=True))
    assert len(due) == ORDERS and claimed_now(due) == set()
    with publisher(broker) as producer:
        for delivery_id in first_orders_claimed:
            journey_tasks.send.apply_async(args=[[delivery_id]], kwargs={"tenant_id": tenant.pk}, producer=producer)
        journey_tasks.dispatch.apply_async(producer=producer)  # beat's next tick, queued after the sends
    queued = redis.Redis.from_url(broker)
    assert (queued.llen("sends"), queued.llen("dispatch")) == (ORDERS, 1)

    with worker(broker, "dispatch", tmp_path):
        wait_for(lambda: claimed_now(due) == set(due), 25, "the dispatcher to claim B's emails")
        # Its one send task for B's emails queued behind A's, and none of them was run by this worker.
        wait_for(lambda: queued.llen("sends") == ORDERS + 1, 10, "B's send task")
        assert queued.llen("dispatch") == 0
    assert Delivery.objects.for_tenant(tenant).filter(state="sent").count() == 0
    assert OutboxMessage.objects.filter(tenant_id=tenant.pk).count() == 0
    assert queued.llen("sends") == ORDERS + 1
