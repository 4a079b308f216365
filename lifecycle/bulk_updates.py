"""One UPDATE for many rows, each with values of its own: `UPDATE … FROM (VALUES …)`.

The set-based event reactions (lifecycle/events.py) move a batch's rows with one statement where
the per-event path moves one row each: a wait released per delivery with its own due time, an
exit per enrollment with its own reason. Row-level security applies as to any statement (the
cursor carries the scope); callers still name the tenant, like every other query.
"""

from collections.abc import Sequence
from typing import Any

from django.db import connection, models


def values_update(model: type[models.Model], *, tenant_id: int, columns: Sequence[tuple[str, str]],
                  rows: Sequence[Sequence[Any]], set_sql: str, key: str = "id", where: str = "",
                  params: Sequence[Any] = (), returning: str = "") -> list[tuple]:
    """`UPDATE <model's table> AS t SET <set_sql> FROM (VALUES <rows>) AS v(<columns>) WHERE
    t.tenant_id = <tenant_id> AND t.<key> = v.<first column> AND t.<key> = ANY(<the first values>)
    [AND <where>] [RETURNING <returning>]`.

    `columns` are (name, SQL type) pairs, each value cast to its type; the first is matched with the
    table's column `key` (an indexed one). The ANY says the same as the join, for the planner: it finds
    the rows through the index whatever it believes of the table's size (with statistics from when the
    table was small, it joined the VALUES to every row of the tenant: 0.3 s an UPDATE at 90,000
    deliveries, bench/events). `set_sql`, `where` and `returning` refer to the table as t and the
    values as v and may hold %s placeholders, filled from `params` (set_sql's first, then where's).
    Returns the RETURNING rows (none without)."""
    if not rows:
        return []
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(key)
    (first, first_type), names = columns[0], ", ".join(name for name, _ in columns)
    one = "(" + ", ".join(f"%s::{sql_type}" for _, sql_type in columns) + ")"
    values = ", ".join([one] * len(rows))
    sql = (f"UPDATE {table} AS t SET {set_sql} FROM (VALUES {values}) AS v({names}) "  # noqa: S608 - names are ours
           f"WHERE t.tenant_id = %s AND t.{column} = v.{first} AND t.{column} = ANY(%s::{first_type}[])"
           + (f" AND {where}" if where else "") + (f" RETURNING {returning}" if returning else ""))
    set_params = list(params[:set_sql.count("%s")])
    where_params = list(params[set_sql.count("%s"):])
    flat = [value for row in rows for value in row]
    # Placeholders in order: SET, VALUES, tenant, the keys, WHERE.
    with connection.cursor() as cursor:
        # Not prepared (lifecycle.rows.execute): the statement's text changes with the number of rows.
        cursor.execute(sql, [*set_params, *flat, tenant_id, [row[0] for row in rows], *where_params])
        return cursor.fetchall() if returning else []
