"""make run's server as a newcomer meets it: the API docs load with no internet (ReDoc from our own
static files, under WhiteNoise and DEBUG, the embedded profile), the worker's per-task lines go to
var/log/worker.log instead of the console, and SIGTERM stops the server and its worker in seconds.

The real code runs in a subprocess: serve_embedded's serve() (the part after migrate and the demo
seed), a real Celery worker with beat on the filesystem broker, and runserver on a free port.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lifecycle import queues

ROOT = Path(__file__).resolve().parents[2]
STOP_BOUND_SECONDS = 8  # WORKER_STOP_SECONDS (3) plus the server's own exit, with room on a busy machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def _group_members(pgid: int) -> list[int]:
    """Processes of the group that have not exited (zombies excluded), from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp
            members.append(int(stat.parent.name))
    return members


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class _Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.srcs.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.links.append(attrs["href"])


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own local server
        return response.status, response.read()


@pytest.fixture
def served(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEBUG", "PUBLIC_BASE_URL",
                        "LIFECYCLE_TEST_RLS", "DATABASE_RLS_ROLE")}
    env.update(LIFECYCLE_PROFILE="embedded", LIFECYCLE_VAR_DIR=str(tmp_path / "var"),
               DJANGO_SETTINGS_MODULE="config.settings", PYTHONUNBUFFERED="1")
    script = ("import django; django.setup()\n"
              "from demo.management.commands.serve_embedded import Command\n"
              f"Command().serve(port={port})\n")
    out = open(tmp_path / "console.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stdout=out,  # noqa: S603
                               stderr=subprocess.STDOUT)
    console = tmp_path / "console.log"
    try:
        _wait_for(lambda: process.poll() is not None or b"Quit the server" in console.read_bytes(), 90,
                  "the server to start")
        assert process.poll() is None, console.read_text()
        yield {"process": process, "port": port, "console": console, "var": tmp_path / "var"}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        out.close()
        match = re.search(rb"started \(pid (\d+)\)", console.read_bytes())
        if match and _alive(int(match.group(1))):
            os.killpg(int(match.group(1)), signal.SIGKILL)


def test_docs_work_offline_the_worker_logs_to_a_file_and_sigterm_stops_both_in_seconds(served):
    process, port, console = served["process"], served["port"], served["console"]
    base = f"http://127.0.0.1:{port}"

    # The docs page names no script or stylesheet on another host...
    status, body = _get(f"{base}/api/docs/")
    assert status == 200
    page = _Scripts()
    page.feed(body.decode())
    assert page.srcs, "ReDoc's script is on the page"
    external = [src for src in [*page.srcs, *page.links] if re.match(r"^(https?:)?//", src)]
    assert external == []
    # ...and the script it names is served here (WhiteNoise, DEBUG, the embedded profile).
    redoc = [src for src in page.srcs if "redoc" in src.lower()]
    assert redoc and redoc[0].startswith("/static/")
    status, script = _get(base + redoc[0])
    assert status == 200 and len(script) > 100_000
    # The schema it renders comes from this server too.
    assert _get(f"{base}/api/schema/")[0] == 200

    # The console says where the worker's log is, and the worker writes there, not to the console.
    worker_pid = int(re.search(rb"started \(pid (\d+)\)", console.read_bytes()).group(1))
    log = served["var"] / "log" / "worker.log"
    assert f"their log: {log}".encode() in console.read_bytes()
    _wait_for(lambda: log.exists() and b"ready." in log.read_bytes(), 90, "the worker to be ready")
    _wait_for(lambda: b"Scheduler: Sending due task" in log.read_bytes(), 30, "beat to send a task")
    # The one worker consumes every queue (production gives each its own, docker-compose.yml), and the
    # filesystem broker carries each: beat's ticks on the events, dispatch and periodic queues all reach it
    # (here they then find no tables: serve() is tested without the migrate that handle() runs first).
    for queue in queues.QUEUES:
        assert re.search(rf"\.> {queue} +exchange={queue}\(direct\) key={queue}\n".encode(), log.read_bytes()), queue
    for task in ("lifecycle.process_events", "journeys.dispatch", "feedback.sweep"):
        _wait_for(lambda task=task: re.search(rf"Task {task}\[[0-9a-f-]+\] received".encode(), log.read_bytes()),
                  30, f"{task} to reach the worker")
    assert b"Scheduler: Sending due task" not in console.read_bytes()
    assert b"succeeded in" not in console.read_bytes() and b"received" not in console.read_bytes()
    # The address it serves on is recorded for commands run beside it (connect_store).
    assert (served["var"] / "public_base_url").read_text().strip() == base

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=STOP_BOUND_SECONDS + 5)
    _wait_for(lambda: not _alive(worker_pid), STOP_BOUND_SECONDS, "the worker to exit")
    elapsed = time.monotonic() - started
    assert elapsed < STOP_BOUND_SECONDS, f"stopping took {elapsed:.1f} s"
    assert process.returncode == 0
    # Nothing of the worker's process group is left running (pool children, beat). Killed children
    # may linger as zombies until whatever adopted them reaps them: those have stopped.
    _wait_for(lambda: _group_members(worker_pid) == [], 5, "the worker's process group to exit")
