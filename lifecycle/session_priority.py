"""Background work at a lower CPU priority, its database sessions included, on a shared host.

When gunicorn, the Celery workers and PostgreSQL share one machine's cores (the single-host
layout of docker-compose.yml, a small store's server, the benches), a burst of background work,
an event sweep's set-based statements or a wave of sends, takes the cores from the API's
requests for a few hundred milliseconds, and the POST's tail latency shows it. `nice` on the
worker would lower only its Python half: the SQL it sends runs in a PostgreSQL backend at the
normal priority. With BACKGROUND_NICE=N in a worker's (or beat's) environment, the process
sets its own niceness to N (its pool's children inherit it) and every connection it opens looks
up its backend's pid and sets that process's niceness to N too, so the kernel runs the API and
its queries first and the background work in the idle time between requests.

It needs PostgreSQL on the same host and the right to renice its processes (root, or the
postgres user with CAP_SYS_NICE); otherwise it says so once in the log and leaves the sessions
alone. It changes nothing for a web process (the setting is only read where
`lower_background_priority` is called: config/celery.py) nor on SQLite. With PostgreSQL on its
own server, the process is still lowered and its sessions are left alone.
"""

from __future__ import annotations

import logging
import os

from django.conf import settings
from django.db import connections
from django.db.backends.signals import connection_created

logger = logging.getLogger(__name__)
LOCAL_HOSTS = {"", "127.0.0.1", "localhost", "::1"}
_warned: set[str] = set()


def session_nice() -> int | None:
    value = getattr(settings, "BACKGROUND_NICE", None)
    return None if value in (None, "") else int(value)


def _warn_once(key: str, message: str, *args) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message, *args)


def is_local(connection) -> bool:
    host = connection.settings_dict.get("HOST") or ""
    return host in LOCAL_HOSTS or host.startswith("/")


def backend_pid(connection) -> int:
    return connection.connection.get_backend_pid()


def lower(connection) -> bool:
    """Renice this connection's PostgreSQL backend to BACKGROUND_NICE; True when it was."""
    nice = session_nice()
    if nice is None or connection.vendor != "postgresql":
        return False
    if not is_local(connection):
        _warn_once("remote", "BACKGROUND_NICE is set but PostgreSQL is on %s, not this host: "
                   "its sessions keep their priority", connection.settings_dict.get("HOST"))
        return False
    pid = backend_pid(connection)
    if not _is_postgres_process(pid):
        # PostgreSQL in a container whose port is published on localhost: the pid it reports is
        # in another pid namespace and here names some other process, or none.
        _warn_once("namespace", "BACKGROUND_NICE is set but PostgreSQL's backend %s is not a process of this "
                   "host's: its sessions keep their priority", pid)
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except (PermissionError, ProcessLookupError) as exc:
        _warn_once("denied", "BACKGROUND_NICE=%s: cannot renice PostgreSQL backend %s (%s); "
                   "run the worker as root or as the postgres user, or unset it", nice, pid, exc)
        return False
    return True


def _is_postgres_process(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read()
    except OSError:
        return False
    return command.startswith((b"postgres", b"/usr/lib/postgresql/"))


def _on_connection_created(sender, connection, **kwargs) -> None:
    lower(connection)


def lower_background_priority() -> None:
    """For worker and beat processes: the process and every database connection it opens run at
    BACKGROUND_NICE. A no-op when the setting is empty."""
    nice = session_nice()
    if nice is None:
        return
    os.setpriority(os.PRIO_PROCESS, 0, max(nice, os.getpriority(os.PRIO_PROCESS, 0)))
    connection_created.connect(_on_connection_created, dispatch_uid="lifecycle.session_priority")
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None:
            lower(connection)
    logger.info("background work and its database sessions run at niceness %s", nice)
