"""Run the application as production does with row-level security on (lifecycle/rls.py).

Production: web and Celery processes `SET ROLE lifecycle_app` on every connection, and each
statement carries its tenancy scope. Here the test itself stays the owner (fixtures write and
assertions read every tenant, as an operator would), and the application's side, each request
the test client or the live server handles, runs as `lifecycle_app` with scoped statements:

- `as_app_role()`: a block of code (a task, a sweep) run as the role on this thread's connection;
- the `app_role` fixture: every request handled during the test runs as the role, and every
  connection opened meanwhile (a live server's thread) assumes it.
"""

import contextlib
from collections.abc import Iterator

import pytest
from django.core.handlers.base import BaseHandler
from django.db import connection, connections
from django.db.backends.signals import connection_created

from lifecycle import rls


@contextlib.contextmanager
def scoped_statements(conn=None) -> Iterator[None]:
    conn = conn or connection
    added = rls.scope_statement not in conn.execute_wrappers
    if added:
        conn.execute_wrappers.append(rls.scope_statement)
    try:
        yield
    finally:
        if added:
            conn.execute_wrappers.remove(rls.scope_statement)


@contextlib.contextmanager
def as_app_role(conn=None) -> Iterator[None]:
    """This block's statements run as lifecycle_app, each in its tenancy scope."""
    conn = conn or connection
    conn.ensure_connection()
    with scoped_statements(conn):
        with conn.cursor() as cursor:
            cursor.execute(f"SET ROLE {rls.ROLE}")
        try:
            yield
        finally:
            if not conn.needs_rollback and conn.is_usable():
                with conn.cursor() as cursor:
                    cursor.execute("RESET ROLE")


def current_role(conn=None) -> str:
    with (conn or connection).cursor() as cursor:
        cursor.execute("SELECT current_user")
        return cursor.fetchone()[0]


def _connected(sender, connection, **kwargs) -> None:
    rls.prepare_connection(connection)


@pytest.fixture
def app_role(settings, monkeypatch):
    """Every request handled during the test runs as lifecycle_app, as in production."""
    settings.DATABASE_RLS_ROLE = rls.ROLE
    original = BaseHandler.get_response

    def get_response(self, request):
        conn = connections["default"]
        if current_role(conn) == rls.ROLE:  # a connection opened during the test already is
            return original(self, request)
        with as_app_role(conn):
            return original(self, request)

    monkeypatch.setattr(BaseHandler, "get_response", get_response)
    connection_created.connect(_connected, dispatch_uid="tests.rls_support.app_role")
    try:
        yield
    finally:
        connection_created.disconnect(dispatch_uid="tests.rls_support.app_role")
