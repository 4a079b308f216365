"""Row-level security (lifecycle/rls.py): with no tenant set, the database itself shows nothing.

The fixtures write as the owner (an operator); the checks run as `lifecycle_app`, the role web and
Celery processes assume, with statements scoped as in production (tests/rls_support.py).
"""

import ast
import datetime as dt
from decimal import Decimal
from pathlib import Path

import psycopg2.extensions
import pytest
from django.db import DatabaseError, connection, transaction

from journeys.models import Delivery
from lifecycle import citus, clock, rls
from lifecycle.models import Customer, Event, OutboxMessage, StoreConnection, WebhookDelivery
from lifecycle.tenancy import UnscopedQueryError, activate, current_scope, system_scope, tenant_scope
from lifecycle.tenants import store_connect
from tests.factories import order_payload
from tests.journeys.helpers import make_journey, process_events
from tests.layout import project_packages
from tests.rls_support import as_app_role, current_role

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)  # a weekday morning, outside quiet hours


def count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608 - registry names
        return cursor.fetchone()[0]


def counts(tables, where: str = "") -> dict[str, int]:
    result = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)} {where}")  # noqa: S608
            result[table] = cursor.fetchone()[0]
    return result


def store_data(api, tenant, *, prefix: str) -> None:
    """Rows in as many tenant tables as the public entry points fill: orders, a refund, an
    idempotent request, journeys with their enrollments and deliveries, loyalty, referrals, a
    survey, a webhook delivery and an outbox message."""
    from feedback.models import Survey
    from loyalty.models import Program as LoyaltyProgram
    from loyalty.models import Reward, Tier
    from referrals.models import Program as ReferralProgram
    from referrals.services import referral_code_ensure

    LoyaltyProgram.objects.for_tenant(tenant).create(tenant=tenant, points_per_unit=Decimal("1"), pending_days=14)
    program = LoyaltyProgram.objects.for_tenant(tenant).get()
    Tier.objects.for_tenant(tenant).create(tenant=tenant, program=program, name="Gold", threshold=Decimal("500"))
    Reward.objects.for_tenant(tenant).create(tenant=tenant, program=program, name="5 off", cost=80,
                                             kind=Reward.Kind.FIXED_DISCOUNT, value=Decimal("5"), currency="EUR")
    ReferralProgram.objects.for_tenant(tenant).create(tenant=tenant, store_url=f"https://{prefix}.example.com/")
    Survey.objects.for_tenant(tenant).create(tenant=tenant, key="nps", name="NPS", kind=Survey.Kind.NPS)
    make_journey(tenant, steps=(("PT1M", "Thanks"),))
    connection_ = store_connect(tenant=tenant, platform=StoreConnection.Platform.SHOPIFY,
                                address=f"{prefix}.myshopify.com", secret="s3cret-webhook")
    WebhookDelivery.objects.for_tenant(tenant).create(tenant=tenant, connection=connection_, topic="orders/create",
                                                      dedupe_key=f"{prefix}-1", body=b"{}",
                                                      received_at=NOW)
    OutboxMessage.objects.create(tenant=tenant, from_email="a@example.com", to="b@example.com", subject="hi")
    customer = {"external_id": f"{prefix}-c", "email": f"ada@{prefix}.example.com", "marketing_consent": True}
    assert api.post("/api/v1/orders", order_payload(external_id=f"{prefix}-1", customer=customer),
                    headers={"Idempotency-Key": f"{prefix}-key"}).status_code == 201
    assert api.post(f"/api/v1/orders/{prefix}-1/refunds", {"external_id": "r1", "amount": "1.00"}).status_code == 201
    process_events()
    referral_code_ensure(tenant=tenant, customer=Customer.objects.for_tenant(tenant).get(external_id=f"{prefix}-c"))


@pytest.fixture
def two_stores(api, other_api, tenant, other_tenant):
    with clock.frozen(NOW):
        store_data(api, tenant, prefix="a")
        store_data(other_api, other_tenant, prefix="b")
    return tenant, other_tenant


# --- the catalog: every tenant table is covered, and the role cannot get around it -------------


@pytest.mark.django_db
def test_every_tenant_table_has_forced_row_level_security_and_the_policy():
    tables = rls.tenant_tables()
    assert {"lifecycle_customer", "lifecycle_apikey", "lifecycle_membership", "journeys_delivery",
            "loyalty_ledgerentry", "referrals_referral", "feedback_surveyresponse"} <= set(tables)
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                      p.polname IS NOT NULL AND p.polcmd = '*' AND p.polpermissive,
                      coalesce(pg_get_expr(p.polqual, p.polrelid), ''), coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
               FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid AND p.polname = %s
               WHERE c.relname = ANY(%s) AND c.relkind = 'r'""",
            [rls.POLICY, tables],
        )
        rows = {name: rest for name, *rest in cursor.fetchall()}
    assert sorted(rows) == tables
    uncovered = sorted(name for name, (enabled, forced, has_policy, _, _) in rows.items()
                       if not (enabled and forced and has_policy))
    assert uncovered == [], (
        "tenant tables without FORCEd row-level security and the tenant_isolation policy: add a migration that "
        "runs TABLE_SQL (lifecycle/migrations/0005_row_level_security.py) for each")
    for name, (_, _, _, using, check) in rows.items():
        assert using == check, name
        assert "current_setting('app.tenant_id'::text, true)" in using, name
        assert "current_setting('app.scope'::text, true) = 'system'::text" in using, name


@pytest.mark.django_db
def test_the_application_role_neither_owns_the_tables_nor_bypasses_the_policies():
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s", [rls.ROLE])
        # On Citus it logs in to the workers (Citus connects as the current role: lifecycle/citus.py).
        assert cursor.fetchone() == (False, False, citus.enabled(connection))
        cursor.execute("SELECT count(*) FROM pg_tables WHERE tableowner = %s", [rls.ROLE])
        assert cursor.fetchone() == (0,)
        # Every table the application uses, tenant table or not (sessions, users, the tenants themselves).
        for table in sorted(connection.introspection.django_table_names(only_existing=True)):
            cursor.execute("SELECT has_table_privilege(%s, %s, 'SELECT, INSERT, UPDATE, DELETE'), "
                           "has_table_privilege(%s, %s, 'TRUNCATE')", [rls.ROLE, table, rls.ROLE, table])
            assert cursor.fetchone() == (True, False), table


# --- behaviour: what the role sees and may write ------------------------------------------------


@pytest.mark.django_db
def test_with_no_tenant_set_every_tenant_table_is_empty_and_refuses_inserts(two_stores):
    a, b = two_stores
    tables = rls.tenant_tables()
    as_owner = counts(tables)
    populated = sorted(t for t, n in as_owner.items() if n)
    # The stores above fill most tenant tables; the policy is the same text on all (checked above).
    assert len(populated) >= 25, populated

    with as_app_role():
        assert current_role() == rls.ROLE
        assert counts(tables) == dict.fromkeys(tables, 0)
        for table in tables:
            with (pytest.raises(DatabaseError, match="row-level security"), transaction.atomic(),
                  connection.cursor() as cursor):
                cursor.execute(f"INSERT INTO {connection.ops.quote_name(table)} (tenant_id) VALUES (%s)",  # noqa: S608
                               [a.pk])
        # The ORM's explicit escape hatch is no way around it either.
        assert Customer.all_tenants.count() == 0
        assert list(Event.all_tenants.values_list("pk", flat=True)) == []
    assert counts(tables) == as_owner


@pytest.mark.django_db
def test_with_tenant_a_set_only_a_rows_are_visible_and_writable(two_stores):
    a, b = two_stores
    tables = rls.tenant_tables()
    a_rows = counts(tables, f"WHERE tenant_id = {a.pk}")
    assert sum(a_rows.values()) > 0 and sum(counts(tables, f"WHERE tenant_id = {b.pk}").values()) > 0

    with as_app_role():
        with tenant_scope(a):
            assert counts(tables) == a_rows
            assert {c.email for c in Customer.all_tenants.all()} == {"ada@a.example.com"}
            # Writing a row for B while A is set is refused, and so is moving A's row to B.
            with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
                OutboxMessage.objects.create(tenant=b, from_email="x@example.com", to="y@example.com", subject="x")
            # (On Citus, Citus refuses it before the policy would: a row never changes tenant there.)
            with (pytest.raises(DatabaseError, match="row-level security|modifying the partition value"),
                  transaction.atomic()):
                Customer.all_tenants.filter(tenant=a).update(tenant=b)
            # B's rows are not there to change.
            assert Customer.all_tenants.filter(tenant=b).update(first_name="Mallory") == 0
            assert Customer.all_tenants.filter(tenant=b).delete()[0] == 0
        with system_scope():
            assert counts(tables) == counts(tables)  # noqa: PLR0124 - the same as below, as the role
            everything = counts(tables)
    assert everything == counts(tables)
    assert Customer.objects.for_tenant(b).get().first_name != "Mallory"


@pytest.mark.django_db(transaction=True)
def test_the_tenant_setting_ends_with_its_transaction_and_never_reaches_the_next(api, tenant):
    assert api.post("/api/v1/orders", order_payload(external_id="1")).status_code == 201
    raw = connection.connection

    with as_app_role():
        # set_config(…, true) by hand on a plain cursor (no ScopedCursor): it lasts until the commit,
        # then is gone. On Citus, lifecycle_scope(), whose SET LOCAL reaches the workers (set_config does not).
        with raw.cursor(cursor_factory=psycopg2.extensions.cursor) as cursor:
            cursor.execute("BEGIN")
            if citus.enabled(connection):
                cursor.execute("SELECT lifecycle_scope(%s, '')", [str(tenant.pk)])
            else:
                cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant.pk)])
            cursor.execute("SELECT count(*) FROM lifecycle_order")
            assert cursor.fetchone() == (1,)
            cursor.execute("COMMIT")
            cursor.execute("SELECT current_setting('app.tenant_id', true), count(*) FROM lifecycle_order")
            assert cursor.fetchone() == ("", 0)
        # Through Django, on the same (pooled) connection: a scoped query, then an unscoped one.
        with tenant_scope(tenant):
            assert Customer.all_tenants.count() == 1
        assert Customer.all_tenants.count() == 0
        with transaction.atomic():
            with tenant_scope(tenant):
                assert Customer.all_tenants.count() == 1
            # Same transaction, scope closed: the next statement resets the setting.
            assert Customer.all_tenants.count() == 0
        # A server-side cursor outside any transaction gets one of its own, scoped.
        with tenant_scope(tenant):
            assert [c.pk for c in Customer.all_tenants.iterator(chunk_size=1)] == [
                Customer.objects.for_tenant(tenant).get().pk]
        assert list(Customer.all_tenants.iterator(chunk_size=1)) == []
        with raw.cursor(cursor_factory=psycopg2.extensions.cursor) as cursor:
            cursor.execute("SELECT current_setting('app.tenant_id', true), current_setting('app.scope', true)")
            assert cursor.fetchone() == ("", "")


@pytest.mark.django_db
def test_django_logs_the_statement_without_the_scope_in_front(tenant):
    from django.test.utils import CaptureQueriesContext

    with as_app_role(), tenant_scope(tenant), CaptureQueriesContext(connection) as captured:
        assert Customer.all_tenants.filter(email="x@example.com").count() == 0
    # On Citus `all_tenants` names the scope's tenant too (lifecycle/tenancy.py), so the statement stays on its shard.
    where = (f'("lifecycle_customer"."tenant_id" = {tenant.pk} AND "lifecycle_customer"."email" = \'x@example.com\')'
             if citus.enabled(connection) else "\"lifecycle_customer\".\"email\" = 'x@example.com'")
    assert [q["sql"] for q in captured.captured_queries] == [
        f'SELECT COUNT(*) AS "__count" FROM "lifecycle_customer" WHERE {where}']  # noqa: S608 - the expected text of a logged query


@pytest.mark.django_db
def test_server_side_cursors_are_scoped_too(two_stores):
    a, _ = two_stores
    with as_app_role(), tenant_scope(a):
        assert [c.email for c in Customer.all_tenants.iterator(chunk_size=1)] == ["ada@a.example.com"]
        with transaction.atomic():
            assert [c.email for c in Customer.all_tenants.iterator(chunk_size=1)] == ["ada@a.example.com"]
    with as_app_role():
        assert list(Customer.all_tenants.iterator(chunk_size=1)) == []


@pytest.mark.django_db
def test_a_request_leaves_no_scope_behind_in_its_thread(api, tenant, app_role):
    assert current_scope() is None
    assert api.post("/api/v1/ping").status_code == 200
    assert current_scope() is None
    with tenant_scope(tenant):
        assert api.post("/api/v1/ping").status_code == 200
        assert current_scope() == ("tenant", tenant.pk)


@pytest.mark.django_db
def test_activate_belongs_to_requests():
    with pytest.raises(UnscopedQueryError):
        activate(1)
    with pytest.raises(UnscopedQueryError), tenant_scope(None):
        pass


@pytest.mark.django_db
def test_a_prefix_search_can_read_the_prefix_index_under_the_policy_where_like_cannot(tenant):
    for email in ("a_b@example.com", "axb@example.com", "a%c@example.com"):
        Customer.objects.for_tenant(tenant).create(tenant=tenant, email=email)
    # A store's worth of other addresses, so that the planner prefers a selective index range.
    Customer.objects.for_tenant(tenant).bulk_create(
        [Customer(tenant=tenant, email=f"z{n}@example.com") for n in range(3000)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE lifecycle_customer")
    customers = Customer.objects.for_tenant(tenant)
    with as_app_role(), tenant_scope(tenant), transaction.atomic():
        prefix_plan = customers.filter(email__prefix="a_b").explain()
        like_plan = customers.filter(email__startswith="a_b").explain()
        found = {q: sorted(customers.filter(email__prefix=q).values_list("email", flat=True))
                 for q in ("a_b", "a%", "a", "b")}
    # starts_with() becomes an index range (~>=~ … ~<~) on customer_email_prefix_idx; LIKE stays a filter.
    assert "customer_email_prefix_idx" in prefix_plan and "~>=~" in prefix_plan, prefix_plan
    assert "~>=~" not in like_plan, like_plan
    # The same matches as startswith: _ and % are plain characters.
    assert found == {"a_b": ["a_b@example.com"], "a%": ["a%c@example.com"],
                     "a": ["a%c@example.com", "a_b@example.com", "axb@example.com"], "b": []}


def test_the_order_read_finds_its_customer_by_index_under_the_policy(tenant):
    """The read every order POST starts with (services._order_seen), by external id or else a guest's
    email: under the policy a condition PostgreSQL cannot see into (COALESCE) read every customer."""
    from lifecycle.orders import _SEEN_BY

    Customer.objects.for_tenant(tenant).bulk_create(
        [Customer(tenant=tenant, external_id=f"c{n}", email=f"c{n}@example.com") for n in range(3000)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE lifecycle_customer")
    plans = {}
    with as_app_role(), tenant_scope(tenant), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a Seq Scan left in the plan is one it cannot avoid
        t = tenant.pk  # the order's, the customer's (then the lookup's) and the lines' tenant
        for kind, params in {"external_id_or_guest": [t, "o1", t, t, "c7", t, "c7@example.com", t],
                             "external_id": [t, "o1", t, t, "c7", t],
                             "email": [t, "o1", t, t, "c7@example.com", t]}.items():
            products = [tenant.pk, ["p-beans", "p-filter"]]  # the payload's products, by index too
            cursor.execute("EXPLAIN " + _SEEN_BY[kind], [*products, *params])
            plans[kind] = "\n".join(row[0] for row in cursor.fetchall())
    for kind, plan in plans.items():
        assert "Seq Scan" not in plan, f"{kind}:\n{plan}"
        # The customer by its id: the primary key, or (tenant_id, id), since the join names the tenant too.
        assert "lifecycle_customer_pkey" in plan or "customer_tenant_id_idx" in plan, f"{kind}:\n{plan}"


# --- the beat and worker code that spans tenants works as the role, in system_scope -------------


@pytest.mark.django_db
def test_the_event_sweep_and_the_dispatcher_work_as_the_role(api, other_api, tenant, other_tenant, monkeypatch):
    from config.celery import app
    from journeys.tasks import dispatch
    from journeys.tasks import send as send_task

    for store, client in ((tenant, api), (other_tenant, other_api)):
        make_journey(store, steps=(("PT1M", "Thanks"),))
        with clock.frozen(NOW):
            assert client.post("/api/v1/orders", order_payload(
                external_id="1", customer={"external_id": "c", "email": f"c@{store.slug}.example.com",
                                           "marketing_consent": True})).status_code == 201
    assert Event.all_tenants.filter(processed_at__isnull=True).count() == 6

    queued = []
    original = send_task.apply_async

    def apply_async(args=None, kwargs=None, **options):
        queued.append((list(args), kwargs))
        return original(args, kwargs, **options)

    monkeypatch.setattr(send_task, "apply_async", apply_async)
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    try:
        with as_app_role():
            with clock.frozen(NOW):
                assert process_events() == 6
            with clock.frozen(NOW + dt.timedelta(minutes=5)):
                assert dispatch() == 2
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = False, False

    # One send task per store, each naming it.
    deliveries = dict(Delivery.all_tenants.values_list("tenant_id", "pk"))
    assert sorted(queued, key=lambda q: q[1]["tenant_id"]) == [
        ([[deliveries[tenant.pk]]], {"tenant_id": tenant.pk}),
        ([[deliveries[other_tenant.pk]]], {"tenant_id": other_tenant.pk})]

    assert Event.all_tenants.filter(processed_at__isnull=True).count() == 0
    assert sorted(Delivery.all_tenants.values_list("tenant_id", "state")) == sorted(
        [(tenant.pk, "sent"), (other_tenant.pk, "sent")])


@pytest.mark.django_db
def test_the_operators_admin_sees_every_store_and_nobody_else_does(two_stores, app_role, client):
    from django.contrib.auth import get_user_model

    operator = get_user_model().objects.create_superuser("operator", "op@example.com", "pw-operator-1")
    member = get_user_model().objects.create_user("member", "m@example.com", "pw-member-1")

    client.force_login(member)  # not staff: the admin's login page, no rows
    page = client.get("/admin/lifecycle/customer/", follow=True)
    assert page.status_code == 200 and "ada@a.example.com" not in page.content.decode()

    client.force_login(operator)
    page = client.get("/admin/lifecycle/customer/")
    assert page.status_code == 200
    assert "ada@a.example.com" in page.content.decode() and "ada@b.example.com" in page.content.decode()


@pytest.mark.django_db
def test_the_api_rate_limit_key_names_the_tenant(api, tenant, app_role):
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    assert api.post("/api/v1/ping").status_code == 200
    keys = [key.decode() for key in client.keys("*ratelimit*")]
    assert len(keys) == 1 and keys[0].startswith(f"t:{tenant.pk}:ratelimit:"), keys


# --- where system_scope may appear --------------------------------------------------------------

# Every use of system_scope()/activate_system() in application code, by module: work across
# tenants (beat sweeps) and the lookups that find a request's tenant. A new one is a decision.
SYSTEM_SCOPE_USES = {
    # Lookups that find a request's tenant: an API key, a store connection, a bare referral code,
    # a user's memberships.
    "lifecycle/auth.py": 1,
    "lifecycle/webhooks.py": 2,
    "referrals/pages.py": 1,
    "workspace/access.py": 2,
    # The stores a person is in: their account's changes are audited in each, and the stores that require
    # two-factor of them.
    "lifecycle/two_factor.py": 1,
    "workspace/account.py": 1,
    # A team invitation's link: its token finds the store.
    "workspace/invitations.py": 1,
    # Is a shop domain connected to any store already? (It names one store.)
    "lifecycle/tenants.py": 1,
    # An ESP's tracking webhook: the delivery is found by the ESP's message id.
    "journeys/engagement.py": 1,
    # Beat and worker code: the event sweep, the dispatcher's claim, reclaim (and a send task
    # queued before send tasks named their tenant), the deliverability check, the loyalty,
    # referral and feedback sweeps, the settling of the dashboards' outcome buckets (and its command),
    # the date triggers and the segment refresh; the stores with an A/B test to auto-promote; the sweep that hands
    # out due webhook calls.
    "lifecycle/events.py": 1,
    "journeys/tasks.py": 11,
    "journeys/management/commands/refresh_rollups.py": 1,
    # seed_scale fills a store and its neighbour with set-based SQL (a benchmark's operator command).
    "demo/scale_seed.py": 1,
    "loyalty/tasks.py": 3,
    "referrals/tasks.py": 1,
    "feedback/tasks.py": 1,
}


def test_system_scope_is_used_only_where_listed():
    found = {}
    assert {"lifecycle", "journeys", "workspace", "demo"} <= set(project_packages())
    for app in project_packages():
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            if "/migrations/" in relative or relative == "lifecycle/tenancy.py":
                continue
            calls = [node for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
                     in ("system_scope", "activate_system")]
            if calls:
                found[relative] = len(calls)
    assert found == SYSTEM_SCOPE_USES
