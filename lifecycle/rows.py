"""Model rows in and out with hand-written SQL, for the few statements on the order hot path.

Building a statement is most of what the ORM costs there: an order took ~16 statements and
~7 ms of Python in Django's query compiler alone. A `Table` writes its column lists once;
values still go through each field's own `get_db_prep_save` on the way in and the
backend's and the field's converters on the way out, exactly as the ORM does, so what
lands in a row (and what comes back: aware datetimes, Decimals, parsed JSON) is the same.
The SQL sticks to what PostgreSQL and SQLite (the embedded profile) both understand.
Callers scope every statement by tenant themselves.
"""

import datetime as dt
import re
import weakref
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.utils import timezone

M = TypeVar("M", bound=models.Model)

# On PostgreSQL these statements run as server-side prepared statements: planning was most of
# what PostgreSQL spent on them (0.5-0.8 ms to plan the order read below, 0.1 ms to run it).
# Each connection prepares a statement the first time it runs it. Statements with more
# parameters than this (bulk inserts) are one-offs, not worth a PREPARE round trip.
PREPARE_MAX_PARAMS = 200
# A connection keeps at most this many; past it, statements run unprepared.
PREPARED_PER_CONNECTION = 300
_prepared: "weakref.WeakKeyDictionary[Any, dict[str, str]]" = weakref.WeakKeyDictionary()
_PLACEHOLDER = re.compile(r"%s")
_PLAIN_FIELDS = {
    models.CharField, models.TextField, models.BooleanField, models.IntegerField, models.BigIntegerField,
    models.PositiveIntegerField, models.PositiveSmallIntegerField, models.ForeignKey,
}
_PLAIN_VALUES = {str, int, bool}
_PASSES_ON_POSTGRESQL = {
    models.DateTimeField: lambda value: type(value) is dt.datetime and value.tzinfo is not None,
    models.DecimalField: lambda value: type(value) is Decimal and value.is_finite(),
}


def execute(cursor, sql: str, params: Sequence[Any]) -> None:
    """`cursor.execute(sql, params)`; on PostgreSQL through a prepared statement of this connection.

    A transaction-pooling PgBouncer hands each transaction a different server connection, so
    prepared statements cannot work there: DISABLE_SERVER_SIDE_CURSORS, Django's setting for
    that set-up, turns them off here too.
    """
    cursor.execute(_as_prepared(cursor, sql, params), params)


def _as_prepared(cursor, sql: str, params: Sequence[Any]) -> str:
    """The statement to send for `sql`: EXECUTE of this connection's prepared statement (prepared
    now if it is new), or `sql` itself where statements are not prepared."""
    conn = connections[DEFAULT_DB_ALIAS]
    if (conn.vendor != "postgresql" or len(params) > PREPARE_MAX_PARAMS
            or conn.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")):
        return sql
    names = _prepared.setdefault(conn.connection, {})
    name = names.get(sql)
    if name is None:
        if len(names) >= PREPARED_PER_CONNECTION:
            return sql
        name = f"lifecycle_rows_{len(names)}"
        counter = iter(range(1, len(params) + 1))
        cursor.execute(f"PREPARE {name} AS " + _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql))
        names[sql] = name
    return f"EXECUTE {name}({', '.join(['%s'] * len(params))})" if params else f"EXECUTE {name}"


class Batch:
    """Writes that return nothing, sent together when the batch is: on PostgreSQL in one query
    string, so one round trip for all (the order path's lines, events and aggregates). PostgreSQL
    runs such a string's statements in order, in the caller's transaction, and stops at the first
    error, which is raised as from a lone statement. Elsewhere one by one."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, list[Any]]] = []

    def add(self, sql: str, params: Sequence[Any]) -> None:
        self.statements.append((sql, list(params)))

    def send(self) -> None:
        statements, self.statements = self.statements, []
        if not statements:
            return
        conn = connections[DEFAULT_DB_ALIAS]
        with conn.cursor() as cursor:
            if conn.vendor != "postgresql" or len(statements) == 1:
                for sql, params in statements:
                    execute(cursor, sql, params)
                return
            sent = [_as_prepared(cursor, sql, params) for sql, params in statements]
            cursor.execute("; ".join(sent), [value for _, params in statements for value in params])


class Table(Generic[M]):
    def __init__(self, model: type[M]):
        meta = model._meta
        self.model = model
        self.name = connection.ops.quote_name(meta.db_table)
        self.fields = list(meta.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        self.width = len(self.fields)
        self._insert_fields = [f for f in self.fields if not f.primary_key]
        # Fields whose database value is the Python value itself when that is a str, int, bool or
        # None (what get_db_prep_save would return after checking so, on every backend), and that
        # fill nothing in on save: read straight off the object.
        self._plain = [
            type(f) in _PLAIN_FIELDS and type(f).pre_save is models.Field.pre_save for f in self._insert_fields
        ]
        # On PostgreSQL also an aware datetime and a Decimal: psycopg2 adapts them itself, and
        # Django's PostgreSQL operations hand them over unchanged (SQLite needs them as text).
        self._passes_on_postgresql = [
            _PASSES_ON_POSTGRESQL.get(type(f)) for f in self._insert_fields
        ]
        self._insert_columns = ", ".join(connection.ops.quote_name(f.column) for f in self._insert_fields)
        self._row = "(" + ", ".join(["%s"] * len(self._insert_fields)) + ")"
        self._converters: dict[str, list] = {}

    def _passes(self, conn) -> list:
        return self._passes_on_postgresql if conn.vendor == "postgresql" else [None] * len(self._insert_fields)

    def columns(self, alias: str) -> str:
        """Every column, in field order, for a SELECT list: `alias.col, …`."""
        return ", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in self.fields)

    def _converters_for(self, conn) -> list:
        found = self._converters.get(conn.alias)
        if found is None:
            found = []
            for field in self.fields:
                col = field.cached_col
                funcs = conn.ops.get_db_converters(col) + field.get_db_converters(conn)
                found.append((funcs, col))
            self._converters[conn.alias] = found
        return found

    def from_row(self, values: Sequence[Any]) -> M | None:
        """A model instance from `width` values in field order; None for a LEFT JOIN's empty side."""
        if values[0] is None:
            return None
        conn = connections[DEFAULT_DB_ALIAS]
        converted = list(values)
        for i, (funcs, col) in enumerate(self._converters_for(conn)):
            for func in funcs:
                converted[i] = func(converted[i], col, conn)
        return self.model.from_db(conn.alias, self.attnames, converted)

    def insert_dicts(self, rows: Sequence[dict[str, Any]], *, returning: bool = False,
                     batch: Batch | None = None) -> list[int]:
        """One multi-row INSERT of plain rows ({attname: value}), no model instances: for batches,
        where building thousands of instances cost more than writing them. A column a row does not
        name gets its field's default (auto_now and auto_now_add: now). With `returning`, the
        new primary keys in row order; with `batch` (and no `returning`), added to it, not sent."""
        if not rows:
            return []
        if returning and batch is not None:
            raise ValueError("a batched INSERT returns nothing")
        conn = connections[DEFAULT_DB_ALIAS]
        now = timezone.now()
        columns = []
        for field, plain, passes in zip(self._insert_fields, self._plain, self._passes(conn), strict=True):
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                default, callable_default = now, False
            else:
                callable_default = field.has_default() and callable(field.default)
                default = None if callable_default else field.get_default()  # "" for a CharField without one
            columns.append((field, field.attname, plain, passes, default, callable_default))
        params = []
        for row in rows:
            for field, attname, plain, passes, default, callable_default in columns:
                if attname in row:
                    value = row[attname]
                elif callable_default:
                    value = field.get_default()
                else:
                    value = default
                if value is None or (plain and type(value) in _PLAIN_VALUES) or (passes and passes(value)):
                    params.append(value)
                else:
                    params.append(field.get_db_prep_save(value, conn))
        sql = f"INSERT INTO {self.name} ({self._insert_columns}) VALUES {', '.join([self._row] * len(rows))}"  # noqa: S608
        if batch is not None:
            batch.add(sql, params)
            return []
        with conn.cursor() as cursor:
            if not returning:
                execute(cursor, sql, params)
                return []
            execute(cursor, sql + " RETURNING id", params)
            return [pk for (pk,) in cursor.fetchall()]

    def insert(self, objs: Iterable[M], *, returning: bool = True, ignore_conflicts: bool = False,
               batch: Batch | None = None) -> bool:
        """One multi-row INSERT. Fills auto_now(_add) fields like save() does, and with
        `returning` each object's primary key, in the order given; with `batch` (and no
        `returning`), added to it, to be sent with it.

        `ignore_conflicts` (one object only): ON CONFLICT DO NOTHING, and False when a unique
        constraint already held the row, which then is not written.
        """
        objs = list(objs)
        if not objs:
            return True
        if ignore_conflicts and (len(objs) != 1 or not returning):
            raise ValueError("ignore_conflicts inserts one object and returns its key")
        if returning and batch is not None:
            raise ValueError("a batched INSERT returns nothing")
        # The connection itself, not the `connection` proxy: every attribute read through the
        # proxy is a thread-local lookup, and preparing the values reads `ops` ~10 times a row.
        conn = connections[DEFAULT_DB_ALIAS]
        fields = list(zip(self._insert_fields, self._plain, self._passes(conn), strict=True))
        params = []
        for obj in objs:
            values = obj.__dict__
            for field, plain, passes in fields:
                if plain:
                    value = values[field.attname]
                    if value is None or type(value) in _PLAIN_VALUES:
                        params.append(value)
                        continue
                value = field.pre_save(obj, True)
                if passes and passes(value):
                    params.append(value)
                else:
                    params.append(field.get_db_prep_save(value, conn))
        sql = f"INSERT INTO {self.name} ({self._insert_columns}) VALUES {', '.join([self._row] * len(objs))}"  # noqa: S608
        if ignore_conflicts:
            sql += " ON CONFLICT DO NOTHING"
        if batch is not None:
            batch.add(sql, params)
        elif not self._send(conn, sql, params, objs, returning, ignore_conflicts):
            return False
        for obj in objs:
            obj._state.adding = False
            obj._state.db = conn.alias
        return True

    @staticmethod
    def _send(conn, sql: str, params: list, objs: list[M], returning: bool, ignore_conflicts: bool) -> bool:
        """Run the INSERT; False when `ignore_conflicts` kept the row out."""
        with conn.cursor() as cursor:
            if not returning:
                execute(cursor, sql, params)
                return True
            execute(cursor, sql + " RETURNING id", params)
            keys = cursor.fetchall()
        if not keys and ignore_conflicts:
            return False
        for obj, (pk,) in zip(objs, keys, strict=True):
            obj.pk = pk
        return True
