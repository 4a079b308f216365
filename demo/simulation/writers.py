"""Writing generated rows fast: COPY on PostgreSQL, multi-row INSERT elsewhere (SQLite, the embedded profile).

Rows are dicts of attribute name → value, buffered per model and flushed in batches. Every
concrete column the generator leaves out gets the field's default (auto_now columns: now), so a
field added to a model later with a default does not break the simulator. Primary keys are
taken up front (`IdBlocks`) because COPY returns none and rows refer to each other.
"""
# ruff: noqa: S608 - table and column names come from the models' _meta, values are parameters or COPY data

import datetime as dt
import io
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db import connection, models

# Rows per COPY or INSERT batch: large enough that round trips do not matter, small enough
# that one buffer stays a few MB.
FLUSH_ROWS = 20_000
# Primary keys taken from a sequence at a time.
ID_BLOCK = 10_000


class IdBlocks:
    """Hands out primary keys ahead of the insert, in blocks.

    PostgreSQL: `nextval` over a generate_series — the values are ours even with concurrent
    writers (they may not be contiguous, and need not be). Elsewhere: max(id) + 1 onwards,
    which is safe only with one writer (SQLite serializes writers; seed_demo runs before the
    worker starts).
    """

    def __init__(self) -> None:
        self._free: dict[type[models.Model], list[int]] = {}
        self._next: dict[type[models.Model], int] = {}

    def take(self, model: type[models.Model]) -> int:
        if connection.vendor == "postgresql":
            free = self._free.setdefault(model, [])
            if not free:
                table = model._meta.db_table
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
                                   "FROM generate_series(1, %s)", [ID_BLOCK])
                    free.extend(row[0] for row in reversed(cursor.fetchall()))
            return free.pop()
        if model not in self._next:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {model._meta.db_table}")
                self._next[model] = cursor.fetchone()[0] + 1
        value = self._next[model]
        self._next[model] = value + 1
        return value


def _copy_text(value: Any) -> str:
    kind = type(value)
    if kind is int or kind is Decimal:
        return str(value)
    if kind is dt.datetime:
        return value.isoformat()
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        value = json.dumps(value, separators=(",", ":"))
    elif isinstance(value, (int, Decimal, dt.date)):
        return str(value)
    text = str(value)
    if any(c in text for c in "\\\t\n\r"):
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _adapter(field: models.Field) -> Callable[[Any], Any] | None:
    """The database value of one column, chosen once per field: Field.get_db_prep_save per value was
    three quarters of a SQLite run's time."""
    ops = connection.ops
    if isinstance(field, models.DateTimeField):
        return lambda v: None if v is None else ops.adapt_datetimefield_value(v)
    if isinstance(field, models.DecimalField):
        return lambda v: None if v is None else ops.adapt_decimalfield_value(v, field.max_digits,
                                                                             field.decimal_places)
    if isinstance(field, models.JSONField):
        return lambda v: None if v is None else ops.adapt_json_value(v, field.encoder)
    if isinstance(field, (models.CharField, models.TextField, models.IntegerField, models.BooleanField,
                          models.ForeignKey, models.AutoField, models.BigAutoField)):
        return None  # the driver takes the value as it is
    return lambda v: field.get_db_prep_save(v, connection)


class RowWriter:
    """Buffers rows per model and writes them with COPY (PostgreSQL) or executemany (others).

    `method="insert"` forces the portable path on PostgreSQL too (the tests use it to cover
    what the embedded profile runs). Call `flush()` at the end; models are flushed in the
    order they were first written to, so a row's foreign keys exist before it does.
    """

    def __init__(self, method: str | None = None) -> None:
        self.method = method or ("copy" if connection.vendor == "postgresql" else "insert")
        self._buffers: dict[type[models.Model], list[dict[str, Any]]] = {}
        self._fields: dict[type[models.Model], list[models.Field]] = {}
        self._defaults: dict[type[models.Model], dict[str, Any]] = {}
        self.counts: dict[str, int] = {}

    def add(self, model: type[models.Model], row: dict[str, Any]) -> None:
        buffer = self._buffers.setdefault(model, [])
        buffer.append(row)
        if len(buffer) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        for model, rows in self._buffers.items():
            if rows:
                self._write(model, rows)
                self.counts[model._meta.label] = self.counts.get(model._meta.label, 0) + len(rows)
                rows.clear()

    def _columns(self, model: type[models.Model]) -> tuple[list[models.Field], dict[str, Any]]:
        if model not in self._fields:
            fields = [f for f in model._meta.concrete_fields]
            now = dt.datetime.now(dt.UTC)
            defaults = {}
            for f in fields:
                if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                    defaults[f.attname] = now
                elif f.has_default():
                    defaults[f.attname] = f.get_default()
                elif f.null:
                    defaults[f.attname] = None
                elif f.blank and isinstance(f, (models.CharField, models.TextField)):
                    defaults[f.attname] = ""
            self._fields[model], self._defaults[model] = fields, defaults
        return self._fields[model], self._defaults[model]

    def _write(self, model: type[models.Model], rows: list[dict[str, Any]]) -> None:
        fields, defaults = self._columns(model)
        table = model._meta.db_table
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        missing = object()

        def value(row: dict[str, Any], f: models.Field) -> Any:
            v = row.get(f.attname, missing)
            if v is missing:
                v = defaults.get(f.attname, missing)
                if v is missing:
                    raise KeyError(f"{model._meta.label}.{f.attname} has no value and no default")
            return v

        with connection.cursor() as cursor:
            if self.method == "copy":
                buffer = io.StringIO()
                attnames = [f.attname for f in fields]
                for row in rows:
                    if len(row) < len(attnames):
                        row = {**defaults, **row}
                    try:
                        buffer.write("\t".join([_copy_text(row[name]) for name in attnames]))
                    except KeyError:
                        buffer.write("\t".join([_copy_text(value(row, f)) for f in fields]))
                    buffer.write("\n")
                buffer.seek(0)
                cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", buffer)
            else:
                placeholders = ", ".join(["%s"] * len(fields))
                columns_adapted = [(f.attname, _adapter(f)) for f in fields]
                prepared = []
                for row in rows:
                    if len(row) < len(columns_adapted):
                        row = {f.attname: value(row, f) for f in fields}
                    prepared.append([row[name] if adapt is None else adapt(row[name])
                                     for name, adapt in columns_adapted])
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", prepared)
