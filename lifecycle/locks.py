"""Transaction-scoped advisory locks: concurrent writers to one order or customer wait for each other (PostgreSQL; SQLite serializes writers by itself)."""

import hashlib
from collections.abc import Callable
from typing import TypeVar

from django.db import IntegrityError, connection

from .rows import execute

T = TypeVar("T")


def advisory_lock(tenant_id: int, kind: str, key: str) -> None:
    """Serialize writers of one (tenant, kind, key) until the transaction ends."""
    advisory_locks(tenant_id, (kind, key))


def advisory_locks(tenant_id: int, *keys: tuple[str, str]) -> None:
    """Take several such locks in one round trip, in the order given (PostgreSQL evaluates a
    SELECT list left to right), so callers keep one global order and never deadlock."""
    if connection.vendor != "postgresql":
        return
    ids = [
        int.from_bytes(hashlib.blake2b(f"{tenant_id}:{kind}:{key}".encode(), digest_size=8).digest(), "big", signed=True)
        for kind, key in keys
    ]
    with connection.cursor() as cursor:
        execute(cursor, "SELECT " + ", ".join(["pg_advisory_xact_lock(%s)"] * len(ids)), ids)


def retry_once_on_conflict(fn: Callable[[], T]) -> T:
    """A unique constraint that fires under a race means another writer got there first:
    run again, and this time the row is found instead of created."""
    try:
        return fn()
    except IntegrityError:
        return fn()
