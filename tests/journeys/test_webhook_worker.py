"""Done means: "A webhook step's endpoint, down for a while, still receives every call exactly once by key after
it comes back" — with a real Celery worker and beat on Redis, PostgreSQL, and a real HTTP receiver that
answers 503 until it comes back. The backoff is shortened by its settings so the test takes seconds; the
same code with the default settings is walked through a ten-minute outage in test_webhook_step.py."""

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection

from journeys.models import Step, WebhookAttempt, WebhookCall
from journeys.webhooks import signature_valid, webhook_secret_rotate
from tests.factories import order_payload

from .helpers import make_journey, wait_for
from .test_end_to_end import ROOT, always_open, broker  # noqa: F401 - the broker fixture
from .webhook_server import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 6
DOWN_SECONDS = 5


@pytest.fixture
def webhook_worker(broker, tmp_path):  # noqa: F811 - the imported fixture
    db = connection.settings_dict
    env = {
        **os.environ,
        "LIFECYCLE_PROFILE": "embedded",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": broker,
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "JOURNEY_WEBHOOK_ALLOW_PRIVATE_HOSTS": "1",
        # Seconds instead of minutes: 0.5 s doubling, at most 2 s, within a minute.
        "JOURNEY_WEBHOOK_BACKOFF_BASE_SECONDS": "0.5",
        "JOURNEY_WEBHOOK_BACKOFF_MAX_SECONDS": "2",
        "JOURNEY_WEBHOOK_RETRY_WINDOW_SECONDS": "60",
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


def test_an_endpoint_that_was_down_receives_every_call_exactly_once_by_key(api, tenant, webhook_worker):
    always_open(tenant)
    secret = webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    started = time.monotonic()
    with Receiver() as receiver:
        # Down for at least DOWN_SECONDS, and until every call has been refused twice (however slowly a loaded
        # machine runs the worker): then up for good.
        def answer(n: int) -> int:
            refused: dict[str, int] = {}
            for r in receiver.requests:
                refused[r.key] = refused.get(r.key, 0) + (r.status == 503)
            down = (time.monotonic() - started < DOWN_SECONDS or len(refused) < CUSTOMERS
                    or min(refused.values()) < 2) and not receiver.accepted
            return 503 if down else 200

        receiver.answer = answer
        journey = make_journey(tenant, name="App push", steps=[("PT1S", "unused")])
        Step.objects.for_tenant(tenant).filter(journey=journey).update(
            kind="webhook", template=None, config={"url": receiver.url})
        for n in range(CUSTOMERS):
            body = order_payload(external_id=f"WH-{n}", customer={
                "external_id": f"w{n}", "email": f"w{n}@example.com", "marketing_consent": True})
            assert api.post("/api/v1/orders", body).status_code == 201

        wait_for(lambda: WebhookCall.objects.for_tenant(tenant).count() == CUSTOMERS, 30, "every call queued")
        wait_for(lambda: set(WebhookCall.objects.for_tenant(tenant).values_list("state", flat=True)) == {"delivered"},
                 90, "every call delivered after the receiver came back")
        time.sleep(6)  # a sweep and more pass: nothing is POSTed again

    calls = list(WebhookCall.objects.for_tenant(tenant))
    keys = {call.idempotency_key for call in calls}
    assert len(keys) == CUSTOMERS
    # Every key arrived, and was accepted exactly once.
    assert receiver.accepted == dict.fromkeys(keys, 1)
    assert {r.key for r in receiver.requests} == keys
    for request in receiver.requests:
        assert signature_valid(request.body, request.signature, secret.encode(), now=time.time(), tolerance=600)
    for call in calls:
        mine = [r for r in receiver.requests if r.key == call.idempotency_key]
        assert [r.status for r in mine][-1] == 200 and set(r.status for r in mine[:-1]) == {503}
        assert len(mine) >= 3  # refused twice at least, by the same key, before it was accepted
        assert len({r.body for r in mine}) == 1
        logged = list(WebhookAttempt.objects.for_tenant(tenant).filter(call=call).order_by("number"))
        # Every attempt logged, with what the receiver answered.
        assert [(a.number, a.status_code) for a in logged] == [(i + 1, r.status) for i, r in enumerate(mine)]
        assert call.attempts == len(mine) >= 2
    assert time.monotonic() - started < 120
