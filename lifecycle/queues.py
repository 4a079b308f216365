"""The Celery queues, one per kind of work, so a backlog of one never delays another.

Each task names its queue once, beside its code: `@on_queue(SENDS)` above its `@shared_task`, with a
comment saying why. `route` (CELERY_TASK_ROUTES in config/settings.py) sends each message there, and
the settings declare these queues and refuse any other, so a task without a queue cannot be published.
(Celery's own `queue=` task attribute is deprecated since 5.x and ignored from 6.0: task_routes is the
supported way.) Each queue gets worker processes of its own (docker-compose.yml: one worker service per
queue, each with its --concurrency; README, *Worker layout*); the embedded profile's one worker consumes
them all.

A worker takes the messages of one queue in order: work that must stay prompt never shares a
queue with work that can pile up.
"""

from collections.abc import Callable
from typing import Any

# The event sweep (lifecycle.process_events): orders, refunds, answers … turned into enrollments,
# points and rewards. A sweep holds its process up to ~10 s; a burst of orders keeps every
# process of this queue busy, and that must not hold back a single email.
EVENTS = "events"

# The dispatcher (journeys.dispatch, every 2 s) and the lease reclaim (journeys.reclaim): short,
# bounded claims and updates that feed the send queue. Not on SENDS: a backlog of sends would
# delay the next claim (the very thing that keeps the backlog moving), and the reclaim that gives
# back the rows of a dead sender must not wait behind the sends whose leases ran out.
DISPATCH = "dispatch"

# Outbound calls for one tenant: journeys.send (a wave of emails), feedback.alert_send,
# loyalty.send_code_webhook, referrals.reward_send. Long when the ESP or a store is slow; nothing
# else waits behind them.
SENDS = "sends"

# Beat's other sweeps and the slow periodic work: rollups (journeys.settle_outcomes),
# deliverability, points expiry and tiers, point release, referral release, feedback settling,
# code-webhook retries. Minutes of delay here cost no email its time; a 25-minute rollup here
# delays no event and no send.
PERIODIC = "periodic"

QUEUES = (EVENTS, DISPATCH, SENDS, PERIODIC)

# (task, queue) as declared. A task's name is read only when a message is routed: reading it at import
# would finalize the Celery app while the tasks modules are still being imported (as lifecycle/periodic.py).
_declared: list[tuple[Any, str]] = []
_by_name: dict[str, str] = {}


def on_queue(queue: str) -> Callable[[Any], Any]:
    """Put the decorated Celery task's messages on `queue`, one of QUEUES."""
    if queue not in QUEUES:
        raise ValueError(f"{queue!r} is not one of the queues {QUEUES}")

    def register(task: Any) -> Any:
        _declared.append((task, queue))
        return task

    return register


def queue_of(name: str) -> str | None:
    """The queue the task called `name` declared, or None."""
    if name not in _by_name:
        _by_name.update((task.name, queue) for task, queue in _declared)
    return _by_name.get(name)


def route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict[str, str] | None:
    """Celery's task router: the task's declared queue. None for an undeclared task, whose message then
    goes to the default queue, which does not exist (QueueNotFound) - a mistake seen at the first publish."""
    queue = queue_of(name)
    return {"queue": queue} if queue else None
