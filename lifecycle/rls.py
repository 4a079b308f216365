"""Tenant isolation at the database: PostgreSQL row-level security (RLS).

The ORM already scopes every query (lifecycle/tenancy.py: `Model.objects` raises without a
tenant). This is the second wall, for the day a query forgets its filter: PostgreSQL itself
hides other tenants' rows.

The design
----------
- **Every tenant table has a policy.** Every model with a `tenant_id` column (read from the app
  registry) has `ENABLE` and `FORCE ROW LEVEL SECURITY` and the policy `tenant_isolation`
  (migration lifecycle/0005_row_level_security)::

      USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint
             OR current_setting('app.scope', true) = 'system')
      WITH CHECK (the same)

  No tenant set: no row is visible and no row can be written. tests/lifecycle/test_rls.py
  fails for any tenant table without that policy, so a table added later needs a migration
  like 0005 (its TABLE_SQL for the new table).
- **The application is not the owner.** The migration creates the NOLOGIN role
  `lifecycle_app` (NOSUPERUSER, NOBYPASSRLS, owns nothing) with SELECT, INSERT, UPDATE, DELETE
  on the tables and USAGE on the sequences. Superusers and roles with BYPASSRLS skip every
  policy, FORCE or not, and the usual connecting user (`postgres`, or the compose image's
  `POSTGRES_USER`) is a superuser: so the processes that serve the outside world, the WSGI app
  and the Celery worker and beat, `SET ROLE` to `DATABASE_RLS_ROLE` on every new connection
  (`serve_as_role`, called from config/wsgi.py and config/celery.py). `manage.py`
  commands do not: migrations and operator commands act for every tenant, as the owner. The
  migrating role must be a superuser or have BYPASSRLS (FORCE applies policies to the owner).
- **The tenant is set per transaction, never per session.** `tenancy.tenant_scope(tenant)`
  and `tenancy.system_scope()` name the scope in a context variable; `ScopedCursor`, the
  psycopg2 cursor class `serve_as_role` installs on each connection, puts ``SELECT
  set_config('app.tenant_id', …, true), set_config('app.scope', …, true);`` in front of each
  statement it sends, in the same round trip. `set_config(…, true)` is `SET LOCAL`: it ends
  with the transaction (a lone statement in autocommit mode is its own transaction: PostgreSQL
  runs a multi-statement query string as one), so a pooled connection never carries a tenant
  into the next request, and code outside any scope sets both to '' and sees nothing. Being
  below Django's cursor, it adds no statement to Django's query log or to query counts.

  Why per statement and not one `set_config` when a scope opens a transaction: the scopes do
  not own the transactions. `deliveries_send` commits "sending" before the email leaves and
  records "sent" after; an Idempotency-Key claim commits before the request runs so a
  concurrent copy sees it in flight (409). Wrapping those in one `atomic()` for the tenant's
  sake would quietly change at-most-once sending and the 409. With the scope on the
  statement, each of their transactions starts with `SET LOCAL` and their boundaries stay
  where they are.

Indexes under a policy
----------------------
PostgreSQL applies the policy before any condition that could leak a row's values through an
error or a side channel, and only "leakproof" operators may run earlier, inside an index scan.
Equality and comparisons (`=`, `<`, `>=` on numbers, text and times) are leakproof; LIKE, ILIKE,
`upper()` and JSON operators are not, so under the policy `email LIKE 'ada@%'` cannot use a
prefix index and reads every row of the tenant instead. `starts_with()` is leakproof and
PostgreSQL 15 turns it into an index range: the `prefix` lookup (`email__prefix="ada@"`,
registered for every CharField and TextField) is `startswith` in that form.

On Citus
--------
The policies are copied to every shard, and the workers evaluate them, so the tenant must reach them:
`set_config()` would set it on the coordinator only. There the prefix is `SELECT lifecycle_scope(tenant,
kind)` (migration lifecycle 0018), whose `SET LOCAL`s Citus passes on to every worker in the
transaction (`citus.propagate_set_commands = 'local'`, set by the function), and which sets nothing when
the transaction already has that scope. Citus connects to the workers as the current role, so on Citus
`lifecycle_app` may log in (lifecycle/citus.py).

What this does not do
---------------------
`app.tenant_id` and `app.scope` are ordinary settings any SQL in the session may change: RLS
here catches a missing filter in our own code, not SQL injection (the ORM's parameters do
that). A server-side cursor opened outside a transaction is wrapped in one
(BEGIN, set_config, DECLARE … WITH HOLD, COMMIT). `COPY` through psycopg2's `copy_expert`
bypasses Django's cursor wrappers and so this module: it is for operator commands, which run
as the owner. With a transaction-pooling PgBouncer, give the application its own LOGIN role
that is a member of `lifecycle_app` (or is it) instead of relying on the session's SET ROLE.
"""

from __future__ import annotations

import logging
import re

import psycopg2.extensions
from django.apps import apps
from django.conf import settings
from django.db import connections
from django.db.backends.signals import connection_created
from django.db.models import Lookup, Model
from django.db.models.lookups import StartsWith

from . import citus
from .tenancy import SYSTEM, Scope, current_scope

logger = logging.getLogger(__name__)

ROLE = "lifecycle_app"
TENANT_SETTING = "app.tenant_id"
SCOPE_SETTING = "app.scope"
POLICY = "tenant_isolation"
# Statements that must reach PostgreSQL untouched: transaction control (a ROLLBACK TO SAVEPOINT
# after an error must not be preceded by a SELECT the aborted transaction would refuse) and
# session commands.
_UNSCOPED_VERBS = ("SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "BEGIN", "START", "END", "SET", "RESET", "SHOW")


def tenant_tables() -> list[str]:
    """Every table with a tenant_id column, from the app registry: the tables RLS must cover."""
    return sorted({model._meta.db_table for model in apps.get_models(include_auto_created=True)
                   if _has_tenant_column(model) and model._meta.managed and not model._meta.proxy})


def _has_tenant_column(model: type[Model]) -> bool:
    return any(field.column == "tenant_id" for field in model._meta.concrete_fields)


def _settings_sql(scope: Scope | None, on_citus: bool = False) -> str:
    """The two set_config calls for a scope: (kind, tenant id) or None (no tenant). On Citus the
    function lifecycle_scope() of migration 0018, whose SET LOCAL reaches the workers too."""
    tenant, kind = "", ""
    if scope is not None:
        kind = scope[0] if scope[0] == SYSTEM else ""
        tenant = str(int(scope[1])) if scope[1] is not None else ""
    if on_citus:
        return f"SELECT lifecycle_scope('{tenant}', '{kind}')"
    return (f"SELECT set_config('{TENANT_SETTING}', '{tenant}', true), "
            f"set_config('{SCOPE_SETTING}', '{kind}', true)")


def _needs_scope(sql) -> bool:
    if not isinstance(sql, str):
        return False
    head = sql.lstrip()[:10].upper()
    return not head.startswith(_UNSCOPED_VERBS)


# What ScopedCursor puts in front of a statement, as psycopg2 reports the query it sent.
_SENT_PREFIX = re.compile(rb"^SELECT (set_config\('app\.tenant_id', '\d*', true\), "
                          rb"set_config\('app\.scope', '[a-z]*', true\)|lifecycle_scope\('\d*', '[a-z]*'\)); ")


class ScopedCursor(psycopg2.extensions.cursor):
    """Sends each statement in the current tenancy scope (see above)."""

    @property
    def query(self):
        """The statement as the application wrote it (Django logs this one): without the scope."""
        sent = psycopg2.extensions.cursor.query.__get__(self)
        return _SENT_PREFIX.sub(b"", sent, count=1) if sent else sent

    def execute(self, query, vars=None):
        if not _needs_scope(query):
            return super().execute(query, vars)
        prefix = _settings_sql(current_scope(), citus.enabled_for_raw(self.connection))
        if self.name is None:
            # Neither part contains a %, so psycopg2's interpolation of `vars` is unchanged.
            return super().execute(f"{prefix}; {query}", vars)
        return self._declare_in_scope(prefix, query, vars)

    def executemany(self, query, vars_list):
        if _needs_scope(query):
            query = f"{_settings_sql(current_scope(), citus.enabled_for_raw(self.connection))}; {query}"
        return super().executemany(query, vars_list)

    def _declare_in_scope(self, prefix, query, vars):
        """A named cursor's DECLARE cannot share its string: set the scope just before it, in the
        same transaction (opening one around a WITH HOLD cursor in autocommit mode)."""
        with self.connection.cursor() as cursor:
            if not self.connection.autocommit:
                cursor.execute(prefix)
                return super().execute(query, vars)
            cursor.execute(f"BEGIN; {prefix}")
            try:
                result = super().execute(query, vars)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
            return result


def role() -> str:
    return getattr(settings, "DATABASE_RLS_ROLE", "") or ""


def prepare_connection(connection) -> None:
    """Scope every statement of this connection and, when DATABASE_RLS_ROLE is set, assume it."""
    if connection.vendor != "postgresql":
        return
    connection.connection.cursor_factory = ScopedCursor
    name = role()
    if name:
        with connection.connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {connection.ops.quote_name(name)}")


def _on_connection_created(sender, connection, **kwargs) -> None:
    prepare_connection(connection)


def serve_as_role() -> None:
    """For processes that serve requests or run tasks: every database connection they open
    assumes DATABASE_RLS_ROLE and scopes its statements. A no-op when the setting is empty or
    the database is not PostgreSQL (the embedded profile's SQLite has no RLS)."""
    if not role():
        return
    connection_created.connect(_on_connection_created, dispatch_uid="lifecycle.rls.serve_as_role")
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None:
            prepare_connection(connection)
    logger.info("database connections assume the role %s (row-level security)", role())


class Prefix(Lookup):
    """`field__prefix=value`: `startswith`, as `starts_with()` on PostgreSQL, whose leakproof
    function the planner may use for a prefix index scan under row-level security (LIKE it may
    not; see above). Elsewhere, Django's own `startswith`."""

    lookup_name = "prefix"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        return compiler.compile(StartsWith(self.lhs, self.rhs))

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"starts_with({lhs}::text, {rhs})", [*lhs_params, *rhs_params]
