"""Periodic tasks, declared where they are defined: `@every(2.0, key="dispatch-due-deliveries")` above a
task's `@shared_task`. The wiring (config/celery.py) hands the collected schedule to beat, so a task's name
and period are written once, beside its code, never repeated as strings in the settings.

The database is the scheduler (delays live in PostgreSQL rows); beat only wakes the sweepers up.
"""

from collections.abc import Callable
from typing import Any

# key -> (task, seconds). The task's name is read only when beat asks: reading it at import would
# finalize the Celery app while the tasks modules are still being imported.
_periodic: dict[str, tuple[Any, float]] = {}


def every(seconds: float, *, key: str) -> Callable[[Any], Any]:
    """Run the decorated Celery task every `seconds` (beat's entry `key`)."""

    def register(task: Any) -> Any:
        if key in _periodic and _periodic[key][0] is not task:
            raise ValueError(f"beat entry {key!r} already runs another task")
        _periodic[key] = (task, float(seconds))
        return task

    return register


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Each tick goes to its task's queue (lifecycle/queues.py) and expires after one period: a tick no
    worker started before the next one was sent is dropped, not run late behind it, so a busy queue never
    gathers a backlog of wake-ups (each run does whatever is due when it starts)."""
    return {key: {"task": task.name, "schedule": seconds, "options": {"expires": seconds}}
            for key, (task, seconds) in sorted(_periodic.items())}
