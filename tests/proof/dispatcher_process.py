"""One dispatcher process for tests/proof/test_exclusive_claims.py:

    python -m tests.proof.dispatcher_process <index> <work dir> <claim limit>

It does what journeys.tasks.dispatch and journeys.tasks.send do - the real claim
(deliveries_claim_by_tenant, in the system scope) and the real batched send (deliveries_send, in the
tenant's scope: gate, rendering, recording) - against the database in DATABASE_URL until nothing is
due. The ESP is a stub in place of sending.esp_send that appends each delivery id it is handed to
<work dir>/esp-<index>.log, flushed line by line: the ESP's own record, written before the ledger
records the send. Every batch is then sent a second time, as a redelivered send task would be; that
must find its rows taken and do nothing. At the end <work dir>/worker-<index>.json says what this
process claimed and how each send ended.
"""

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path


def main(index: int, workdir: Path, limit: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from journeys.dispatch import deliveries_send
    from journeys.rendering import SendResult
    from journeys.schedule import deliveries_claim_by_tenant
    from lifecycle.tenancy import system_scope, tenant_scope

    esp_log = (workdir / f"esp-{index}.log").open("a", buffering=1)

    def esp(message, *, connection=None) -> SendResult:
        delivery_id = message.metadata["delivery_id"]
        esp_log.write(f"{delivery_id}\n")
        return SendResult(message_id=message.extra_headers["Message-ID"], esp_message_id=f"stub-{index}-{delivery_id}")

    (workdir / f"ready-{index}").touch()
    deadline = time.monotonic() + 60
    while not (workdir / "go").exists():  # all processes start claiming at the same moment
        if time.monotonic() > deadline:
            raise SystemExit("never told to go")
        time.sleep(0.005)
    claimed: list[int] = []
    outcomes: Counter = Counter()  # "" counts the rows that were not ours any more
    redelivered: Counter = Counter()
    while True:
        with system_scope():
            batches = deliveries_claim_by_tenant(limit=limit)
        if not batches:
            break
        for tenant_id, ids in batches.items():
            claimed += ids
            with tenant_scope(tenant_id):
                outcomes.update(deliveries_send(delivery_ids=ids, send=esp))
                redelivered.update(deliveries_send(delivery_ids=ids, send=esp))
    esp_log.close()
    (workdir / f"worker-{index}.json").write_text(json.dumps(
        {"claimed": claimed, "outcomes": outcomes, "redelivered": redelivered}))


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
