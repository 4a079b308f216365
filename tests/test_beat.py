"""Beat's schedule comes from the periodic tasks themselves (lifecycle.periodic.every), names and all."""

import pytest

from config.celery import app
from lifecycle import periodic

EXPECTED = {
    "process-events": ("lifecycle.process_events", 2.0),
    "dispatch-due-deliveries": ("journeys.dispatch", 2.0),
    "reclaim-expired-leases": ("journeys.reclaim", 30.0),
    "settle-feedback-answers": ("feedback.sweep", 5.0),
    "release-referral-rewards": ("referrals.sweep", 60.0),
    "release-pending-points": ("loyalty.release_pending", 60.0),
    "expire-points-and-requalify-tiers": ("loyalty.expire_points", 3600.0),
    "retry-loyalty-code-webhooks": ("loyalty.retry_code_webhooks", 30.0),
    "retry-journey-webhooks": ("journeys.webhook_sweep", 5.0),
    "check-deliverability": ("journeys.check_deliverability", 900.0),
    "journey-date-triggers": ("journeys.date_triggers", 3600.0),
    "journey-segment-refresh": ("journeys.refresh_segments", 900.0),
    "settle-journey-outcomes": ("journeys.settle_outcomes", 300.0),
    "promote-ab-winners": ("journeys.promote_winners", 600.0),
}


def test_beat_runs_every_periodic_task_under_its_own_name():
    app.loader.import_default_modules()
    app.finalize()

    schedule = app.conf.beat_schedule

    assert {key: (entry["task"], entry["schedule"]) for key, entry in schedule.items()} == EXPECTED
    for entry in schedule.values():
        assert entry["task"] in app.tasks, f"{entry['task']} is not a registered task"


def test_one_beat_entry_cannot_name_two_tasks():
    class Task:
        name = "journeys.other"

    with pytest.raises(ValueError, match="dispatch-due-deliveries"):
        periodic.every(1.0, key="dispatch-due-deliveries")(Task())
