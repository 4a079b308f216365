"""Exclusive claims (issue 8, item 2): eight dispatcher processes at once on the same due
deliveries send each exactly once and lose none.

Processes, not threads: each is its own Python with its own PostgreSQL connection, running what
the dispatch and send tasks run - the real claim (an UPDATE of rows picked FOR UPDATE SKIP LOCKED,
RETURNING them) and the real batched send (claimed → sending → sent, each a conditional UPDATE;
the gate; the rendering). The ESP is a stub that logs what it was handed, and the ESP's log is
compared with the ledger.

CI runs 10,000 deliveries (~40 s of CPU: the whole proof suite stays within three minutes of CI);
PROOF_CLAIM_DELIVERIES sets the size, and the issue's full 100,000 is
    PROOF_CLAIM_DELIVERIES=100000 make test PYTEST_ARGS=tests/proof/test_exclusive_claims.py
"""

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from journeys.models import Delivery, EmailTemplate, Enrollment, Journey, Step
from journeys.tasks import SEND_CHUNK
from lifecycle.models import Customer, Tenant

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DISPATCHERS = 8
DELIVERIES = int(os.environ.get("PROOF_CLAIM_DELIVERIES", "10000"))
# Rows per claim: one send task's worth (journeys.tasks.SEND_CHUNK), so the eight processes claim
# often and race each other hundreds of times rather than splitting the table in eight big bites.
CLAIM_LIMIT = SEND_CHUNK


def due_deliveries(count: int) -> Tenant:
    """One store, `count` customers, each with an active enrollment whose one email is due now.

    Quiet hours off and a transactional journey, so the gate lets everything through whatever the
    time of day: what is measured is the claim, not the rules."""
    tenant = Tenant.objects.create(slug="claims", name="Claims", time_zone="UTC", quiet_hours_start=dt.time(0),
                                   quiet_hours_end=dt.time(0))
    template = EmailTemplate.objects.for_tenant(tenant).create(tenant=tenant, name="Receipt", subject="Receipt",
                                                               body="<p>Thanks</p>")
    journey = Journey.objects.for_tenant(tenant).create(tenant=tenant, name="Receipt", trigger="order_paid",
                                                        status="active", message_class="transactional")
    step = Step.objects.for_tenant(tenant).create(tenant=tenant, journey=journey, position=1, template=template)
    due = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    tables = {m: m._meta.db_table for m in (Customer, Enrollment, Delivery)}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {tables[Customer]} (tenant_id, external_id, email, first_name, last_name, locale, time_zone,
                    consent_source, suppression_reason, order_count, total_spent, created_at, updated_at)
                SELECT %s, 'c' || n, 'c' || n || '@example.org', '', '', '', '', '', '', 0, 0, now(), now()
                FROM generate_series(1, %s) n""", [tenant.pk, count])  # noqa: S608 - table names from the models
        cursor.execute(
            f"""INSERT INTO {tables[Enrollment]} (tenant_id, journey_id, customer_id, state, reason, enrolled_at)
                SELECT %s, %s, id, 'active', '', %s FROM {tables[Customer]} WHERE tenant_id = %s""",  # noqa: S608
            [tenant.pk, journey.pk, due, tenant.pk])
        cursor.execute(
            f"""INSERT INTO {tables[Delivery]} (tenant_id, enrollment_id, step_id, journey_id, customer_id,
                    message_class, priority, state, reason, due_at, waiting_for, attempts, message_id,
                    esp_message_id, history, created_at, updated_at)
                SELECT %s, id, %s, %s, customer_id, 'transactional', 0, 'pending', '', %s, '', 0, '', '', '[]',
                       now(), now()
                FROM {tables[Enrollment]} WHERE tenant_id = %s""",  # noqa: S608
            [tenant.pk, step.pk, journey.pk, due, tenant.pk])
        cursor.execute(f"ANALYZE {tables[Delivery]}")
    return tenant


def test_eight_dispatcher_processes_send_each_due_delivery_exactly_once(tmp_path):
    tenant = due_deliveries(DELIVERIES)
    ledger = Delivery.objects.for_tenant(tenant)
    assert ledger.filter(state="pending").count() == DELIVERIES
    db = connection.settings_dict
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    processes = [subprocess.Popen([sys.executable, "-m", "tests.proof.dispatcher_process", str(i), str(tmp_path),
                                   str(CLAIM_LIMIT)], cwd=ROOT, env=env) for i in range(DISPATCHERS)]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-{i}").exists() for i in range(DISPATCHERS)):
            assert time.monotonic() < deadline, "the dispatcher processes did not start"
            assert all(p.poll() is None for p in processes), "a dispatcher process died while starting"
            time.sleep(0.05)
        (tmp_path / "go").touch()
        codes = [p.wait(timeout=600) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert codes == [0] * DISPATCHERS

    workers = [json.loads((tmp_path / f"worker-{i}.json").read_text()) for i in range(DISPATCHERS)]
    claimed = Counter(delivery_id for worker in workers for delivery_id in worker["claimed"])
    accepted = Counter(int(line) for i in range(DISPATCHERS)
                       for line in (tmp_path / f"esp-{i}.log").read_text().split())
    ids = set(ledger.values_list("pk", flat=True))
    # Every row was claimed by exactly one process, and the ESP was handed each exactly once.
    assert set(claimed) == ids and max(claimed.values()) == 1
    assert set(accepted) == ids and max(accepted.values()) == 1
    assert [dict(+Counter(w["outcomes"])) for w in workers if w["claimed"]] == [
        {"sent": len(w["claimed"])} for w in workers if w["claimed"]]
    # The redelivered send tasks found every row taken and did nothing.
    assert sum(Counter(w["redelivered"])[""] for w in workers) == DELIVERIES
    assert sum(sum(Counter(w["redelivered"]).values()) for w in workers) == DELIVERIES
    # The ledger agrees with the ESP: every row sent, once, with the id the stub gave it.
    assert dict(Counter(ledger.values_list("state", flat=True))) == {"sent": DELIVERIES}
    assert set(ledger.values_list("attempts", flat=True)) == {1}
    by_process = {i: {int(line) for line in (tmp_path / f"esp-{i}.log").read_text().split()}
                  for i in range(DISPATCHERS)}
    for pk, esp_id in ledger.values_list("pk", "esp_message_id"):
        process = int(esp_id.split("-")[1])
        assert pk in by_process[process], f"delivery {pk} recorded as sent by a process the ESP did not hear from"
    assert Enrollment.objects.for_tenant(tenant).filter(state="completed").count() == DELIVERIES
    # They really ran at once: several processes shared the work.
    assert sum(1 for worker in workers if worker["claimed"]) >= 2
