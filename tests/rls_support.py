"""Run the application as production does with row-level security on (lifecycle/rls.py).

Production: web and Celery processes `SET ROLE lifecycle_app` on every connection, and each
statement carries its tenancy scope. Here the test itself stays the owner (fixtures write and
assertions read every tenant, as an operator would), and the application's side runs as
`lifecycle_app` with scoped statements:

- `as_app_role()`: a block of code (a task, a sweep) run as the role on this thread's connection;
- the `app_role` fixture: every request handled during the test (by the test client, or by a live
  server's threads on their own connections) and every Celery task run in the test's process
  (called, or eager) runs as the role, and worker processes the test starts get DATABASE_RLS_ROLE.

SET ROLE and RESET ROLE go to psycopg2's connection directly, and the scope rides on each statement
below Django's cursor: tests that count or capture queries see the same statements as without the role.

LIFECYCLE_TEST_RLS=1 applies `app_role` to every test of the suite (tests/conftest.py).
"""

import contextlib
import threading
from collections.abc import Iterator

import pytest
from celery.app.task import Task
from django.core.handlers.base import BaseHandler
from django.db import DatabaseError, InterfaceError, OperationalError, connection, connections

from lifecycle import rls

_depth = threading.local()


@contextlib.contextmanager
def scoped_statements(conn=None) -> Iterator[None]:
    """This connection's statements carry their tenancy scope (rls.ScopedCursor), as in production."""
    conn = conn or connection
    conn.ensure_connection()
    raw = conn.connection
    before = raw.cursor_factory
    raw.cursor_factory = rls.ScopedCursor
    try:
        yield
    finally:
        raw.cursor_factory = before


def _raw(conn, sql: str) -> None:
    with conn.connection.cursor() as cursor:
        cursor.execute(sql)


@contextlib.contextmanager
def as_app_role(conn=None) -> Iterator[None]:
    """This block's statements run as lifecycle_app, each in its tenancy scope (re-entrant)."""
    conn = conn or connection
    if getattr(_depth, "value", 0):
        _depth.value += 1
        try:
            yield
        finally:
            _depth.value -= 1
        return
    conn.ensure_connection()
    with scoped_statements(conn):
        _raw(conn, f"SET ROLE {rls.ROLE}")
        _depth.value = 1
        try:
            yield
        finally:
            _depth.value = 0
            with contextlib.suppress(DatabaseError):
                if conn.connection is not None and not conn.connection.closed:
                    _raw(conn, "RESET ROLE")


def current_role(conn=None) -> str:
    with (conn or connection).cursor() as cursor:
        cursor.execute("SELECT current_user")
        return cursor.fetchone()[0]


def _as_app_role_around(function):
    def wrapper(*args, **kwargs):
        try:
            role = as_app_role(connections["default"])
            role.__enter__()
        except (OperationalError, InterfaceError):
            # The database is down: the application meets that on its first query, as in production.
            return function(*args, **kwargs)
        try:
            return function(*args, **kwargs)
        finally:
            role.__exit__(None, None, None)

    return wrapper


@pytest.fixture
def app_role(settings, monkeypatch):
    """Requests and Celery tasks of this test run as lifecycle_app, as in production."""
    settings.DATABASE_RLS_ROLE = rls.ROLE
    monkeypatch.setenv("DATABASE_RLS_ROLE", rls.ROLE)
    monkeypatch.setattr(BaseHandler, "get_response", _as_app_role_around(BaseHandler.get_response))
    monkeypatch.setattr(Task, "__call__", _as_app_role_around(Task.__call__))
