"""A real Celery worker and beat on Redis, PostgreSQL, and email leaving over real SMTP.

A paid order enters a 4-step journey; the order is delivered; each email comes out at its
due time, exactly once. A one-click unsubscribe in the middle stops the rest, while a GET
of the same link changes nothing.
"""

import datetime as dt
import email
import os
import re
import socket
import subprocess
import sys
import threading
import time
from email import policy
from pathlib import Path

import pytest
import redis
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection
from django.test import Client

from journeys.models import Delivery, Enrollment, Step
from lifecycle.models import Customer, Tenant
from tests.factories import order_payload

from .helpers import make_journey, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


class Inbox:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def subjects(self) -> list[str]:
        with self.lock:
            return [m["Subject"] for m in self.messages]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


@pytest.fixture
def broker(tmp_path):
    """A Redis server of this test's own: no other run's beat or worker can share its queues."""
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: _pings(url), 10, "the test's Redis server")
    yield url
    server.terminate()
    server.wait(timeout=10)


def _pings(url: str) -> bool:
    try:
        return redis.Redis.from_url(url).ping()
    except redis.ConnectionError:
        return False


@pytest.fixture
def worker(smtp, broker, tmp_path):
    _, port = smtp
    db = connection.settings_dict
    env = {
        **os.environ,
        "LIFECYCLE_PROFILE": "embedded",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": broker,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
    }
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--beat", "--concurrency=2",
         "--loglevel=INFO", "--schedule", str(tmp_path / "beat-schedule"), "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
    if os.environ.get("CI"):
        print((tmp_path / "worker.log").read_text()[-3000:])


def always_open(tenant: Tenant) -> None:
    """Whatever the hour CI runs at: no quiet window, no frequency cap between the steps."""
    Tenant.objects.filter(pk=tenant.pk).update(quiet_hours_start=dt.time(0), quiet_hours_end=dt.time(0),
                                               frequency_cap_hours=0)


def test_four_step_journey_from_paid_order_through_delivery(api, tenant, smtp, worker):
    inbox, _ = smtp
    always_open(tenant)
    journey = make_journey(tenant, name="Onboarding", steps=[
        ("PT1S", "Thanks for your order"), ("PT2S", "Setup tips"), ("PT2S", "Day 7 check-in"), ("PT2S", "Review")])
    Step.objects.for_tenant(tenant).filter(journey=journey, position=2).update(
        wait_kind="after_anchor", anchor="delivered_at")
    started = time.monotonic()

    body = order_payload(external_id="E2E-1", customer={"external_id": "e2e", "email": "ada@example.com",
                                                        "first_name": "Ada", "marketing_consent": True})
    assert api.post("/api/v1/orders", body).status_code == 201
    wait_for(lambda: inbox.subjects() == ["Thanks for your order"], 30, "the first email")
    # Step 2 waits for the delivery, however long it takes.
    time.sleep(3)
    assert inbox.subjects() == ["Thanks for your order"]
    assert Delivery.objects.for_tenant(tenant).get(step__position=2).state == "waiting"

    assert api.post("/api/v1/orders/E2E-1/delivery", {}).status_code == 200
    wait_for(lambda: len(inbox.subjects()) == 4, 45, "all four emails")
    time.sleep(4)  # nothing more comes, however many beats pass

    assert inbox.subjects() == ["Thanks for your order", "Setup tips", "Day 7 check-in", "Review"]
    rows = list(Delivery.objects.for_tenant(tenant).order_by("step__position"))
    assert [r.state for r in rows] == ["sent"] * 4
    for row in rows:
        assert row.sent_at >= row.due_at  # never early
        assert row.attempts == 1
    assert [m["Message-ID"] for m in inbox.messages] == [r.message_id for r in rows]
    assert Enrollment.objects.for_tenant(tenant).get().state == "completed"
    assert inbox.messages[0]["To"] == "ada@example.com"
    assert "Hi Ada" in inbox.messages[0].get_body(("plain",)).get_content()
    assert time.monotonic() - started < 90


def test_one_click_unsubscribe_stops_the_rest_and_a_get_changes_nothing(api, tenant, smtp, worker):
    inbox, _ = smtp
    always_open(tenant)
    make_journey(tenant, name="Check-ins", exit_events=["customer.unsubscribed"],
                 steps=[("PT1S", "First"), ("PT6S", "Second"), ("PT2S", "Third")])

    body = order_payload(customer={"external_id": "u1", "email": "unsub@example.com", "marketing_consent": True})
    assert api.post("/api/v1/orders", body).status_code == 201
    wait_for(lambda: inbox.subjects() == ["First"], 30, "the first email")
    [header] = inbox.messages[0].get_all("List-Unsubscribe")
    link = re.search(r"<(https?://[^>]+)>", header).group(1)
    path = link.split("://", 1)[1].split("/", 1)[1]

    assert Client().get("/" + path).status_code == 200  # a scanner, or a person reading
    assert Customer.objects.for_tenant(tenant).get().unsubscribed_at is None
    assert Client().post("/" + path, data="List-Unsubscribe=One-Click",
                         content_type="application/x-www-form-urlencoded").status_code == 200

    second = Delivery.objects.for_tenant(tenant).get(step__position=2)
    wait_for(lambda: Delivery.objects.for_tenant(tenant).filter(pk=second.pk, state="skipped").exists(), 30,
             "the second step to be skipped")
    time.sleep(3)
    assert inbox.subjects() == ["First"]
    assert Enrollment.objects.for_tenant(tenant).get().state == "exited"
    assert Delivery.objects.for_tenant(tenant).filter(step__position=3).count() == 0
