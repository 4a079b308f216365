"""Citus (lifecycle/citus.py): the schema distributed by store, and one store's work in one shard group.

The first tests hold everywhere (the table list, the joins); the ones marked `on_citus` need the cluster
of `make test-citus` and are skipped elsewhere; `make test-citus` sets LIFECYCLE_TEST_CITUS=1, and then
a database without Citus fails the run instead of passing it on plain PostgreSQL.
"""

import datetime as dt
import os
import re

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from journeys.dispatch import deliveries_send
from journeys.models import Delivery
from journeys.schedule import deliveries_claim_by_tenant
from lifecycle import citus, clock
from lifecycle.models import Customer, Order
from lifecycle.tenancy import system_scope, tenant_scope
from tests.factories import order_payload
from tests.journeys.helpers import make_journey, process_events
from tests.rls_support import as_app_role
from tests.workspace.conftest import client_for, make_user


@pytest.fixture
def on_citus():
    """Skips the test unless the database is Citus (asked once connected, so not at collection)."""
    connection.ensure_connection()
    if not citus.enabled(connection):
        pytest.skip("needs the Citus cluster of make test-citus")


def _tenant_owned(model) -> bool:
    return any(field.column == "tenant_id" for field in model._meta.concrete_fields)


def _models():
    return [m for m in apps.get_models(include_auto_created=True) if m._meta.managed and not m._meta.proxy]


def test_every_table_with_a_tenant_is_distributed_or_a_reference_table():
    tables = {model._meta.db_table for model in _models() if _tenant_owned(model)}
    assert tables - set(citus.DISTRIBUTED_TABLES) - set(citus.REFERENCE_TABLES) == set(), (
        "add the new table to lifecycle/citus.py and distribute it in a migration (lifecycle 0018 says how)")
    assert set(citus.DISTRIBUTED_TABLES) - tables == set()
    assert set(citus.DISTRIBUTED_TABLES) & set(citus.REFERENCE_TABLES) == set()
    assert len(citus.DISTRIBUTED_TABLES) == len(set(citus.DISTRIBUTED_TABLES))


def test_every_relation_between_two_store_owned_models_joins_on_the_tenant():
    plain = [f"{model.__name__}.{field.name}" for model in _models() if _tenant_owned(model)
             for field in model._meta.concrete_fields
             if field.is_relation and _tenant_owned(field.related_model)
             and not isinstance(field, citus.TenantForeignKey | citus.TenantOneToOneField)]
    assert plain == []


@pytest.mark.django_db
def test_the_run_is_on_citus_when_it_says_so():
    connection.ensure_connection()
    assert citus.enabled(connection) is (os.environ.get("LIFECYCLE_TEST_CITUS") == "1")


def test_a_join_names_the_tenant_on_citus_and_nothing_more_elsewhere(tenant):
    sql = str(Order.objects.for_tenant(tenant).select_related("customer").query)
    join = 'ON ("lifecycle_order"."customer_id" = "lifecycle_customer"."id" AND '
    if citus.enabled(connection):
        assert join + '("lifecycle_customer"."tenant_id" = "lifecycle_order"."tenant_id"))' in sql
    else:
        assert join + "(TRUE))" in sql


def _constraint(table: str, name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
                       "AND conname = %s", [table, name])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_on_plain_postgresql_the_keys_stay_as_django_made_them():
    connection.ensure_connection()
    if connection.vendor != "postgresql" or citus.enabled(connection):
        pytest.skip("plain PostgreSQL only")
    assert _constraint("journeys_delivery", "journeys_delivery_pkey") == "PRIMARY KEY (id)"
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_dist_partition')")
        assert cursor.fetchone() == (None,)


@pytest.mark.django_db
def test_store_owned_tables_are_distributed_by_tenant_in_one_colocation_group(on_citus):
    with connection.cursor() as cursor:
        cursor.execute("SELECT logicalrelid::regclass::text, partmethod, "
                       "column_to_column_name(logicalrelid, partkey), colocationid FROM pg_dist_partition")
        kinds = {table: (method, column, group) for table, method, column, group in cursor.fetchall()}
    assert {kinds[table][:2] for table in citus.DISTRIBUTED_TABLES} == {("h", "tenant_id")}
    assert len({kinds[table][2] for table in citus.DISTRIBUTED_TABLES}) == 1
    assert {kinds[table][0] for table in citus.REFERENCE_TABLES} == {"n"}
    # The database's keys carry the tenant; Django's pk is still `id`.
    assert _constraint("journeys_delivery", "journeys_delivery_pkey") == "PRIMARY KEY (tenant_id, id)"
    assert Delivery._meta.pk.name == "id"
    [fk] = [name for name in _fk_names("journeys_delivery") if "customer_id" in name]
    assert _constraint("journeys_delivery", fk) == (
        "FOREIGN KEY (tenant_id, customer_id) REFERENCES lifecycle_customer(tenant_id, id) DEFERRABLE INITIALLY DEFERRED")


def _fk_names(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'", [table])
        return [row[0] for row in cursor.fetchall()]


# Committed rows: on Citus the role's statements reach the workers on connections of their own.
@pytest.mark.django_db(transaction=True)
def test_a_query_with_no_store_named_sees_nothing(tenant, other_tenant):
    """Row-level security on every node: the workers see the tenant the coordinator's statement names
    (SET LOCAL, passed on by Citus), and no row at all when none is named."""
    for owner, name in ((tenant, "ada"), (other_tenant, "bob")):
        Customer.objects.for_tenant(owner).create(tenant=owner, external_id=name, email=f"{name}@example.com")

    def raw_count(of_tenant=None) -> int:
        with connection.cursor() as cursor:
            if of_tenant is None:
                cursor.execute("SELECT count(*) FROM lifecycle_customer")
            else:
                cursor.execute("SELECT count(*) FROM lifecycle_customer WHERE tenant_id = %s", [of_tenant.pk])
            return cursor.fetchone()[0]

    with as_app_role():
        assert raw_count() == 0
        assert raw_count(tenant) == 0
        with tenant_scope(tenant):
            assert raw_count() == 1
            assert raw_count(other_tenant) == 0
        with system_scope():
            assert raw_count() == 2
        assert raw_count() == 0
    assert raw_count() == 2  # the owner, outside the role: every row


def _explained(statements: list[str]) -> list[tuple[str, str]]:
    """(statement, plan) of each statement that reads or writes a Citus table."""
    plans = []
    # A batch of statements sent in one string (lifecycle/rows.py) is explained statement by statement:
    # EXPLAIN of the string would run all but its first.
    each = [part for sql in statements for part in re.split(r";\s+(?=(?:EXECUTE|SELECT|UPDATE|INSERT|DELETE)\b)", sql)]
    with connection.cursor() as cursor:
        for sql in each:
            head = sql.lstrip()[:8].upper()
            if not head.startswith(("SELECT", "UPDATE", "INSERT", "DELETE", "WITH", "EXECUTE")):
                continue
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            if "Citus" in plan:
                plans.append((sql, plan))
    return plans


def _assert_one_shard_group(statements: list[str], least: int, finding: str | None = None) -> None:
    """Every statement in one shard group, but `finding`: a sweep's read across the stores for whose rows
    wait (it locks nothing; the rows found are then locked and handled store by store)."""
    plans = _explained(statements)
    found = [sql for sql, _ in plans if finding and finding in sql]
    assert all(sql.startswith("SELECT") and "FOR UPDATE" not in sql for sql in found), found
    plans = [(sql, plan) for sql, plan in plans if sql not in found]
    # One task; or an INSERT of literal rows (Django's bulk_create sends them as unnest() of arrays), which
    # reads no table: Citus routes each row by its own tenant_id, and the rows here are one store's.
    spread = [(sql[:300], plan) for sql, plan in plans if "Task Count: 1\n" not in plan + "\n"
              and not ("INSERT/SELECT method: pull to coordinator" in plan and "Task Count" not in plan)]
    assert spread == []
    assert len(plans) >= least


@pytest.mark.django_db(transaction=True)
def test_one_stores_order_journey_send_and_dashboard_each_touch_one_shard_group(on_citus, api, tenant, other_tenant):
    with clock.frozen(NOON):  # outside the store's quiet hours
        _one_store(api, tenant, other_tenant)


NOON = dt.datetime(2026, 12, 1, 11, 0, tzinfo=dt.UTC)


def _one_store(api, tenant, other_tenant):
    make_journey(tenant, steps=[("PT0S", "Thanks {{ first_name }}"), ("P2D", "Day two")])
    body = order_payload(customer={"external_id": "ada", "email": "ada@example.com", "first_name": "Ada",
                                   "marketing_consent": True})

    with CaptureQueriesContext(connection) as order:  # the order, from the API to its events
        assert api.post("/api/v1/orders", body).status_code == 201
    _assert_one_shard_group([q["sql"] for q in order.captured_queries], least=3)

    with tenant_scope(tenant), CaptureQueriesContext(connection) as journey:  # the journey's first step
        assert process_events() >= 1
    _assert_one_shard_group([q["sql"] for q in journey.captured_queries], least=3,
                            finding='SELECT "lifecycle_event"."tenant_id" AS "tenant_id", "lifecycle_event"."id" AS "pk"')

    with system_scope():
        claimed = deliveries_claim_by_tenant(limit=10)
    assert list(claimed) == [tenant.pk] and len(claimed[tenant.pk]) == 1
    with tenant_scope(tenant), CaptureQueriesContext(connection) as send:  # the send task
        assert dict(deliveries_send(delivery_ids=claimed[tenant.pk])) == {"sent": 1, "": 0}
    _assert_one_shard_group([q["sql"] for q in send.captured_queries], least=3)
    assert Delivery.objects.for_tenant(tenant).filter(state="sent").count() == 1
    assert Delivery.objects.for_tenant(other_tenant).count() == 0

    user = make_user("mia", tenant)
    with CaptureQueriesContext(connection) as dashboard:  # the home dashboard
        assert client_for(user).get(f"/app/{tenant.slug}/").status_code == 200
    _assert_one_shard_group([q["sql"] for q in dashboard.captured_queries], least=5)
