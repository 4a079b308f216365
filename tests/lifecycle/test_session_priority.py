"""BACKGROUND_NICE (lifecycle/session_priority.py): a worker and its PostgreSQL backends yield the
CPU to the API on a shared host; a web process and a remote database are left alone."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection, connections

from lifecycle import session_priority

ROOT = Path(__file__).resolve().parents[2]


def niceness(pid: int) -> int:
    """Field 19 of /proc/<pid>/stat, counted after the command name's closing parenthesis."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


@pytest.fixture
def fresh_backend():
    """A connection of its own, so renicing its backend leaves the suite's sessions alone."""
    default = connections["default"]
    other = default.__class__(dict(default.settings_dict), alias="priority_probe")
    other.ensure_connection()
    yield other
    other.close()


@pytest.mark.django_db
def test_a_background_session_runs_its_backend_at_the_configured_niceness(settings, fresh_backend):
    settings.BACKGROUND_NICE = "7"
    pid = session_priority.backend_pid(fresh_backend)
    assert niceness(pid) == 0
    assert session_priority.lower(fresh_backend) is True
    assert niceness(pid) == 7


@pytest.mark.django_db
def test_without_the_setting_a_session_keeps_its_priority(settings, fresh_backend):
    settings.BACKGROUND_NICE = ""
    pid = session_priority.backend_pid(fresh_backend)
    assert session_priority.lower(fresh_backend) is False
    assert niceness(pid) == 0


@pytest.mark.django_db
def test_a_database_on_another_host_is_not_touched(settings, fresh_backend, caplog, monkeypatch):
    settings.BACKGROUND_NICE = "7"
    pid = session_priority.backend_pid(fresh_backend)
    monkeypatch.setitem(fresh_backend.settings_dict, "HOST", "db.internal.example")
    monkeypatch.setattr(session_priority, "_warned", set())
    assert session_priority.lower(fresh_backend) is False
    assert niceness(pid) == 0
    assert "PostgreSQL is on db.internal.example, not this host" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_lowers_itself_and_every_connection_it_opens():
    """What config/celery.py does at worker_init, in a process of its own: the process and the
    backend of a connection opened afterwards both run at BACKGROUND_NICE."""
    code = (
        "import django, json, os; django.setup()\n"
        "from django.db import connection\n"
        "from lifecycle.session_priority import lower_background_priority\n"
        "lower_background_priority()\n"
        "connection.ensure_connection()\n"
        "pid = connection.connection.get_backend_pid()\n"
        "stat = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()\n"
        "print(json.dumps({'own': os.getpriority(os.PRIO_PROCESS, 0), 'backend': int(stat[16])}))\n"
    )
    env = dict(os.environ, BACKGROUND_NICE="5", DJANGO_SETTINGS_MODULE="config.settings")
    env["DATABASE_URL"] = _database_url()
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"own": 5, "backend": 5}


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.mark.django_db
def test_a_pid_from_another_pid_namespace_is_never_reniced(settings, fresh_backend, monkeypatch, caplog):
    """PostgreSQL in a container published on localhost reports a pid that here is another process
    (this test's own, standing in): it is left alone."""
    settings.BACKGROUND_NICE = "7"
    monkeypatch.setattr(session_priority, "backend_pid", lambda connection: os.getpid())
    monkeypatch.setattr(session_priority, "_warned", set())
    before = os.getpriority(os.PRIO_PROCESS, 0)
    assert session_priority.lower(fresh_backend) is False
    assert os.getpriority(os.PRIO_PROCESS, 0) == before
    assert "is not a process of this host's" in caplog.text
