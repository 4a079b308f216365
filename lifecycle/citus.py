"""Running on Citus: the database distributed by store.

Citus spreads a table over worker nodes by one column. Here that column is `tenant_id`, which every
store-owned row carries: all of one store's rows, in every table, live in one *shard group* on one node,
so a statement that names its store runs there alone, as on a single PostgreSQL (README, "When one
database is not enough").

The tables
----------
`DISTRIBUTED_TABLES` are distributed by tenant_id, all co-located (a store's customers, orders, events,
deliveries … share a node, so joins between them stay on it). `REFERENCE_TABLES` are copied to every
node: the stores themselves and what is looked up before the store is known (an API key by its prefix,
a shop by its domain, a user's memberships), plus auth_user and the tables a foreign key ties to it.
tests/lifecycle/test_citus.py fails when a model with a tenant column is in neither list, and, on
Citus, when a listed table is not distributed as listed: a new table needs both this list and a
migration calling `distribute` of lifecycle/migrations/0018_citus_distribution.py for it.

The schema (migration lifecycle 0018, only where the `citus` extension is installed): tenant_id in
every primary key and unique constraint of a distributed table (the database's key is (tenant_id, id),
Django's pk stays `id`), and in every foreign key between two of them.

The queries
-----------
A statement reaches one shard group only when it names the store (`tenant_id = …`) for every
distributed table in it. Three things here make that so:

- `Model.objects.for_tenant(t)` names it (lifecycle/tenancy.py) for the table queried;
- joins between two store-owned tables (`select_related`, `filter(order__status=…)`) add
  `a.tenant_id = b.tenant_id` to their ON clause on Citus (`SameTenant`, from `TenantForeignKey`), so
  Citus knows both sides are in one shard group; on plain PostgreSQL the join is as before;
- work that spans stores (beat's sweeps, the dispatcher's claim) runs per store: a multi-shard
  `FOR UPDATE` is refused by Citus, and would lock across nodes anyway (`tenants_with`).

Row-level security holds on the workers too: Citus copies the policies to every shard, and
lifecycle/rls.py sets the tenant with SET LOCAL (`lifecycle_scope()`), which Citus passes on to each
worker in the transaction.
"""

from __future__ import annotations

from django.db import connections
from django.db.backends.signals import connection_created
from django.db.models import ForeignKey, OneToOneField

DISTRIBUTION_COLUMN = "tenant_id"

DISTRIBUTED_TABLES = (
    "lifecycle_customer", "lifecycle_product", "lifecycle_order", "lifecycle_orderline", "lifecycle_refund",
    "lifecycle_event", "lifecycle_idempotencyrecord", "lifecycle_webhookdelivery",
    "journeys_emailtemplate", "journeys_journey", "journeys_step", "journeys_enrollment", "journeys_delivery",
    "journeys_duedelivery", "journeys_outcomebucket",
    "loyalty_program", "loyalty_tier", "loyalty_reward", "loyalty_loyaltyaccount", "loyalty_ledgerentry",
    "loyalty_pendingrelease", "loyalty_redemption", "loyalty_rewardcode", "loyalty_codewebhook",
    "referrals_program", "referrals_referralcode", "referrals_click", "referrals_invite", "referrals_referral",
    "referrals_reward",
    "feedback_survey", "feedback_surveyrequest", "feedback_surveyresponse", "feedback_answerattempt",
    "feedback_review", "feedback_feedbackalert",
    # Issue 17 and 18's tables: sending domains, segments, A/B tests, webhook calls, review settings.
    "lifecycle_sendingdomain", "journeys_segment", "journeys_segmentmember", "journeys_abtest",
    "journeys_webhooksecret", "journeys_webhookcall", "journeys_webhookattempt", "journeys_enrollmentvariable",
    "feedback_reviewsettings",
)

# The application's tables copied to every node; migration 0018 adds the tables a foreign key ties to
# them (auth_user's groups and permissions, content types, the two-factor devices, the admin log).
REFERENCE_TABLES = (
    "lifecycle_tenant", "lifecycle_membership", "lifecycle_apikey", "lifecycle_storeconnection",
    "lifecycle_invitation", "lifecycle_outboxmessage", "auth_user",
)

# Whether the database behind each connection (by its DSN) has Citus: asked once per new connection.
_citus_by_dsn: dict[str, bool] = {}


def enabled(connection) -> bool:
    """Is this Django connection's database a Citus coordinator? Connects first if need be: a query is
    compiled before its connection opens, and its joins depend on the answer."""
    if connection.vendor != "postgresql":
        return False
    if connection.connection is None:
        connection.ensure_connection()
    return _citus_by_dsn.get(connection.connection.dsn, False)


def enabled_for_raw(raw_connection) -> bool:
    """The same for a psycopg2 connection (lifecycle/rls.py's cursor has only that)."""
    return _citus_by_dsn.get(raw_connection.dsn, False)


def _on_connection_created(sender, connection, **kwargs) -> None:
    if connection.vendor != "postgresql":
        return
    raw = connection.connection
    if raw.dsn in _citus_by_dsn:
        if _citus_by_dsn[raw.dsn]:
            connection.features.allows_group_by_selected_pks = False
        return
    # On psycopg2's own cursor: below Django's query log, so no test counting queries sees it.
    with raw.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')")
        _citus_by_dsn[raw.dsn] = bool(cursor.fetchone()[0])
    if _citus_by_dsn[raw.dsn]:
        # The database's key is (tenant_id, id): GROUP BY id alone no longer covers a row's other columns.
        connection.features.allows_group_by_selected_pks = False


def install() -> None:
    """Called once from LifecycleConfig.ready: every new connection learns whether it is on Citus."""
    connection_created.connect(_on_connection_created, dispatch_uid="lifecycle.citus")


class SameTenant:
    """The extra ON condition of a join between two store-owned tables: the same tenant_id on both sides,
    on Citus (so the join is co-located); TRUE elsewhere, where the planner drops it."""

    contains_aggregate = False
    contains_over_clause = False

    def __init__(self, alias: str, related_alias: str):
        self.alias, self.related_alias = alias, related_alias

    def as_sql(self, compiler, connection):
        if not enabled(connection):
            return "TRUE", []
        alias, column = compiler.quote_name_unless_alias, connection.ops.quote_name(DISTRIBUTION_COLUMN)
        return f"{alias(self.alias)}.{column} = {alias(self.related_alias)}.{column}", []


def _is_tenant_owned(model) -> bool:
    return any(field.column == DISTRIBUTION_COLUMN for field in model._meta.concrete_fields)


class _SameTenantJoin:
    def get_extra_restriction(self, alias, related_alias):
        # No alias: Django's exclude() moving the condition into a subquery's WHERE; it filters by tenant anyway.
        if alias is None or related_alias is None:
            return None
        if _is_tenant_owned(self.model) and _is_tenant_owned(self.remote_field.model):
            return SameTenant(alias, related_alias)
        return None

    def get_extra_descriptor_filter(self, instance):
        # `delivery.customer` is fetched with its tenant named: one shard group on Citus.
        if _is_tenant_owned(self.model) and _is_tenant_owned(self.remote_field.model):
            return {DISTRIBUTION_COLUMN: getattr(instance, "tenant_id", None)}
        return {}

    def deconstruct(self):
        # Migrations see Django's own field: the join condition is behaviour, not schema.
        name, path, args, kwargs = super().deconstruct()
        return name, f"django.db.models.{type(self).__mro__[2].__name__}", args, kwargs


class TenantForeignKey(_SameTenantJoin, ForeignKey):
    """A foreign key from one store-owned table to another: joins along it stay in one shard group on Citus."""


class TenantOneToOneField(_SameTenantJoin, OneToOneField):
    """A one-to-one between two store-owned tables (see TenantForeignKey)."""



def locked_batch(queryset, limit: int, *, of: tuple[str, ...] = ()) -> list:
    """The first `limit` rows of the ordered `queryset`, locked FOR UPDATE SKIP LOCKED (those another
    transaction holds are skipped): a sweep's batch across stores.

    On Citus a FOR UPDATE must stay in one shard group: the batch's rows are found first, in order, by one
    read across the shards without a lock, then locked store by store, each with the queryset's conditions
    again (a row changed meanwhile is left out, as a locked one is)."""
    if not enabled(connections[queryset.db]):
        return list(queryset.select_for_update(skip_locked=True, of=of)[:limit])
    found = list(queryset.values_list(DISTRIBUTION_COLUMN, "pk")[:limit])
    place = {pk: i for i, (_, pk) in enumerate(found)}
    by_tenant: dict[int, list[int]] = {}
    for tenant_id, pk in found:
        by_tenant.setdefault(tenant_id, []).append(pk)
    rows = []
    for tenant_id, pks in by_tenant.items():
        rows += queryset.filter(**{DISTRIBUTION_COLUMN: tenant_id, "pk__in": pks}).select_for_update(
            skip_locked=True, of=of)
    return sorted(rows, key=lambda row: place[row.pk])
