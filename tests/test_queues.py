"""Queues that never starve each other (issue 16, item 2): every task of the project is on the queue it
declares beside its code, the settings define exactly those queues and no other, beat sends each tick to
its task's queue, and make run's one worker consumes them all."""

from pathlib import Path

import pytest
import yaml
from celery.exceptions import QueueNotFound
from django.conf import settings
from kombu.messaging import Producer

from config.celery import app
from demo.management.commands.serve_embedded import worker_command
from lifecycle import periodic, queues

ROOT = Path(__file__).resolve().parent.parent

# The decision, written out once more on purpose: a task added without a queue, or moved, fails here.
EXPECTED = {
    "lifecycle.process_events": "events",
    "journeys.dispatch": "dispatch",
    "journeys.reclaim": "dispatch",
    "journeys.send": "sends",
    "journeys.webhook_call": "sends",
    "journeys.webhook_sweep": "dispatch",
    "feedback.alert_send": "sends",
    "loyalty.send_code_webhook": "sends",
    "referrals.reward_send": "sends",
    "journeys.settle_outcomes": "periodic",
    "journeys.check_deliverability": "periodic",
    "journeys.date_triggers": "periodic",
    "journeys.refresh_segments": "periodic",
    "journeys.promote_winners": "periodic",
    "loyalty.release_pending": "periodic",
    "loyalty.expire_points": "periodic",
    "loyalty.retry_code_webhooks": "periodic",
    "referrals.sweep": "periodic",
    "feedback.sweep": "periodic",
}


def project_tasks() -> dict:
    app.loader.import_default_modules()
    app.finalize()
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def test_every_project_task_is_on_its_declared_queue(monkeypatch):
    tasks = project_tasks()

    assert {name: queues.queue_of(name) for name in tasks} == EXPECTED

    # And that queue is where a published message goes. A spy on kombu's Producer.publish, the one call
    # every message goes through, records instead of sending.
    published: dict[str, str] = {}

    def publish(self, body, routing_key=None, headers=None, **kwargs):
        published[headers["task"]] = routing_key

    monkeypatch.setattr(Producer, "publish", publish)
    for name in tasks:
        app.send_task(name)
    assert published == EXPECTED


def test_the_settings_define_exactly_the_four_queues_and_no_task_can_fall_on_another():
    assert queues.QUEUES == ("events", "dispatch", "sends", "periodic")
    assert [queue.name for queue in settings.CELERY_TASK_QUEUES] == list(queues.QUEUES)
    assert sorted(app.amqp.queues) == sorted(queues.QUEUES)
    assert set(EXPECTED.values()) == set(queues.QUEUES)  # no queue without work, no work off the queues

    # A task published without a queue of its own, or to a misspelt one, raises instead of waiting
    # where no worker listens.
    with pytest.raises(QueueNotFound, match="unrouted"):
        app.send_task("journeys.a_task_without_a_queue", args=[1])
    with pytest.raises(QueueNotFound, match="send"):
        app.send_task("journeys.send", args=[[1]], queue="send")
    with pytest.raises(ValueError, match="'send' is not one of the queues"):
        queues.on_queue("send")


def test_beat_sends_each_tick_to_its_tasks_queue_and_drops_it_once_the_next_is_due():
    tasks = project_tasks()
    schedule = periodic.beat_schedule()

    assert len(schedule) == 14
    for entry in schedule.values():
        assert entry["options"] == {"expires": entry["schedule"]}
        # beat publishes through the task, so through the same router
        assert app.amqp.router.route(dict(entry["options"]), entry["task"], (), {}, tasks[entry["task"]])[
            "queue"].name == EXPECTED[entry["task"]]


def test_make_runs_one_worker_consumes_every_queue():
    command = worker_command(concurrency=2)

    assert command[command.index("--queues") + 1].split(",") == ["events", "dispatch", "sends", "periodic"]
    assert set(command[command.index("--queues") + 1].split(",")) == set(EXPECTED.values())
    assert "--beat" in command and "--concurrency=2" in command


def test_docker_compose_runs_one_worker_service_per_queue_and_beat_apart():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    workers = {name: service["command"] for name, service in services.items()
               if service.get("command", [])[:4] == ["celery", "-A", "config", "worker"]}

    consumed = {}
    for name, command in workers.items():
        [queue_option] = [arg for arg in command if arg.startswith("--queues=")]
        consumed[name] = queue_option.removeprefix("--queues=")
        assert [arg for arg in command if arg.startswith("--concurrency=")], f"{name} sets its own concurrency"
        assert "--beat" not in command and "-B" not in command
    assert consumed == {"worker-events": "events", "worker-dispatch": "dispatch", "worker-sends": "sends",
                        "worker-periodic": "periodic"}
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    # The sweep's processes follow its slots: one knob for both.
    assert "--concurrency=${EVENT_SWEEP_SLOTS:-2}" in workers["worker-events"]
    assert services["worker-events"]["environment"]["EVENT_SWEEP_SLOTS"] == "${EVENT_SWEEP_SLOTS:-2}"


def test_docker_composes_postgresql_keeps_autovacuum_on_and_early_and_commits_synchronously():
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["postgres"]["command"]
    settings = dict(value.split("=", 1) for value in command[2::2])

    assert command[0] == "postgres" and set(command[1::2]) == {"-c"}
    assert settings["autovacuum"] == "on"
    assert float(settings["autovacuum_vacuum_scale_factor"]) <= 0.05
    assert float(settings["autovacuum_analyze_scale_factor"]) <= 0.02
    assert "synchronous_commit" not in settings and "fsync" not in settings
    assert settings["shared_buffers"] == "1GB"
