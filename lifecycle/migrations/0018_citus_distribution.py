# Citus (lifecycle/citus.py): the store-owned tables distributed by tenant_id in one co-location group,
# the tables they share (stores, users, API keys, …) as reference tables on every node.
#
# Only where the database has the `citus` extension: on plain PostgreSQL and on SQLite it does nothing.
# Self-contained on purpose (migrations import no app code): the tables are frozen here as they are at this
# point of the history. A store-owned table added later needs a migration calling `distribute` for it
# (tests/lifecycle/test_citus.py fails until lifecycle/citus.py lists it, and on Citus until it is distributed).
#
# What Citus asks of the schema, and what this does about it:
# - Every primary key and unique constraint of a distributed table includes the distribution column:
#   PRIMARY KEY (id) becomes PRIMARY KEY (tenant_id, id) in the database (Django keeps `id` as the pk:
#   ids stay unique, the sequence gives them), a one-to-one's UNIQUE (x_id) becomes UNIQUE (tenant_id, x_id).
# - A foreign key between two distributed tables includes the distribution column:
#   (order_id) REFERENCES lifecycle_order (id) becomes (tenant_id, order_id) REFERENCES lifecycle_order
#   (tenant_id, id), so a row can only point into its own store. Foreign keys to reference tables stay.
# - A reference table may only point at reference tables: so auth_user (invitations and memberships point
#   at it) is one, and with it every table connected to these by a foreign key (the closure, from the
#   catalog), e.g. auth_group, django_content_type, the two-factor devices.
# - The due-queue triggers (journeys 0010) run on the shards (citus.enable_unsafe_triggers): their
#   statements name the delivery's tenant, so each touches its own co-located shard, on the same node.
# - Row-level security (lifecycle 0005): Citus copies the policies to every shard; the workers see the
#   tenant through SET LOCAL, which Citus passes on (citus.propagate_set_commands): lifecycle_scope() below
#   is what lifecycle/rls.py prefixes statements with on Citus. The role the application assumes must be
#   able to log in to the workers, since Citus connects to them as the current user.

from django.db import migrations

DISTRIBUTED = [
    # The first table is the co-location group's anchor: every other one is colocated with it.
    "lifecycle_customer",
    "lifecycle_product", "lifecycle_order", "lifecycle_orderline", "lifecycle_refund", "lifecycle_event",
    "lifecycle_idempotencyrecord", "lifecycle_webhookdelivery",
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
]
# Small, read by every store, looked up before the store is known (a key by its prefix, a shop by its
# domain, a user's memberships): a copy on every node.
REFERENCE = [
    "lifecycle_tenant", "lifecycle_membership", "lifecycle_apikey", "lifecycle_storeconnection",
    "lifecycle_invitation", "lifecycle_outboxmessage", "auth_user",
]

DISTRIBUTION_COLUMN = "tenant_id"
ROLE = "lifecycle_app"

# The queue triggers of journeys 0010 with the tenant in every statement: the conflict target is the
# queue's key on Citus, (tenant_id, delivery_id), and the DELETE names its shard. The INSERT trigger goes
# row by row: a statement trigger's transition table ("inserted") is out of the reach of the query Citus
# plans on the shard.
QUEUE_FUNCTIONS_SQL = """
DROP TRIGGER delivery_queue_insert ON journeys_delivery;
DROP FUNCTION journeys_delivery_queue_insert();
CREATE FUNCTION journeys_delivery_queue_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO journeys_duedelivery (delivery_id, tenant_id, due_at, lease_until)
    VALUES (NEW.id, NEW.tenant_id, NEW.due_at, NULL)
    ON CONFLICT (tenant_id, delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at, lease_until = NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER delivery_queue_insert AFTER INSERT ON journeys_delivery FOR EACH ROW
    WHEN (NEW.state IN ('pending', 'deferred') AND NEW.due_at IS NOT NULL)
    EXECUTE FUNCTION journeys_delivery_queue_insert();
CREATE OR REPLACE FUNCTION journeys_delivery_queue_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IN ('pending', 'deferred') AND NEW.due_at IS NOT NULL THEN
        INSERT INTO journeys_duedelivery (delivery_id, tenant_id, due_at, lease_until)
        VALUES (NEW.id, NEW.tenant_id, NEW.due_at, NULL)
        ON CONFLICT (tenant_id, delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at, lease_until = NULL;
    ELSE
        DELETE FROM journeys_duedelivery WHERE tenant_id = NEW.tenant_id AND delivery_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
"""

# What lifecycle/rls.py's ScopedCursor puts in front of each statement on Citus, in place of two
# set_config() calls: SET LOCAL, which Citus sends to every worker taking part in the transaction. It sets
# nothing when the transaction already has this scope, so a transaction's later statements cost no
# round trip to the workers.
SCOPE_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION lifecycle_scope(tenant text, kind text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('app.tenant_id', true) IS DISTINCT FROM tenant
       OR current_setting('app.scope', true) IS DISTINCT FROM kind THEN
        PERFORM set_config('citus.propagate_set_commands', 'local', true);
        EXECUTE format('SET LOCAL app.tenant_id = %L', tenant);
        EXECUTE format('SET LOCAL app.scope = %L', kind);
    END IF;
END $$;
"""

ROLE_LOGIN_SQL = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
        CREATE ROLE {ROLE} NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    -- Only when needed: two databases of one cluster migrating at once would both update the role's row.
    IF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = '{ROLE}') THEN
        ALTER ROLE {ROLE} LOGIN;
    END IF;
END $$;
"""


PROPAGATE_SQL = """
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET citus.propagate_set_commands = %L', current_database(), 'local');
END $$;
"""


def has_citus(cursor) -> bool:
    cursor.execute("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')")
    return cursor.fetchone()[0]


def _rows(cursor, sql, params=None):
    cursor.execute(sql, params)
    return cursor.fetchall()


def _foreign_keys(cursor, tables):
    """(table, name, columns, referenced table, referenced columns, definition) of every foreign key
    from or to one of `tables`."""
    return _rows(cursor, """
        SELECT c.conrelid::regclass::text, c.conname,
               ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
               c.confrelid::regclass::text,
               ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),
               pg_get_constraintdef(c.oid)
        FROM pg_constraint c
        WHERE c.contype = 'f' AND (c.conrelid::regclass::text = ANY(%s) OR c.confrelid::regclass::text = ANY(%s))
        ORDER BY 1, 2""", [list(tables), list(tables)])


def _keys_without_tenant(cursor, table):
    """(name, kind p|u, columns) of the primary key and unique constraints of `table` that lack tenant_id."""
    return _rows(cursor, """
        SELECT c.conname, c.contype,
               ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i)
        FROM pg_constraint c
        WHERE c.conrelid = %s::regclass AND c.contype IN ('p', 'u')
          AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.conrelid
                          AND a.attname = %s AND a.attnum = ANY(c.conkey))""", [table, DISTRIBUTION_COLUMN])


def _unique_indexes_without_tenant(cursor, table):
    """Unique indexes that are not constraints (Django's conditional UniqueConstraint) lacking tenant_id:
    Citus refuses them, and there is no way to keep their meaning, so the migration stops."""
    return [row[0] for row in _rows(cursor, """
        SELECT i.indexrelid::regclass::text FROM pg_index i
        WHERE i.indrelid = %s::regclass AND i.indisunique
          AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)
          AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = i.indrelid
                          AND a.attname = %s AND a.attnum = ANY(i.indkey))""", [table, DISTRIBUTION_COLUMN])]


def _citus_tables(cursor) -> set[str]:
    return {row[0] for row in _rows(cursor, "SELECT logicalrelid::regclass::text FROM pg_dist_partition")}


def distribute(schema_editor, distributed, reference) -> None:
    """Distribute `distributed` by tenant_id (colocated with the first table already distributed, else with
    the first of the list) and make `reference` and every table connected to these by a foreign key
    reference tables. Idempotent: tables Citus already has are left as they are."""
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        # In one transaction with DDL, Citus must use one connection per worker (its docs say so).
        cursor.execute("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
        cursor.execute("SET LOCAL citus.enable_unsafe_triggers TO on")
        known = _citus_tables(cursor)
        anchor = next((t for t in DISTRIBUTED if t in known), None)
        distributed = [t for t in distributed if t not in known]
        reference = [t for t in reference if t not in known]
        # The closure: whatever shares a foreign key with a table Citus will hold becomes a reference table.
        held = set(distributed) | set(reference) | known
        while True:
            linked = {t for fk in _foreign_keys(cursor, held) for t in (fk[0], fk[3])} - held
            if not linked:
                break
            reference += sorted(linked)
            held |= linked
        if "journeys_delivery" in distributed:
            cursor.execute(QUEUE_FUNCTIONS_SQL)
        # 1. No foreign key may stand while its tables change kind: drop them, then put them back.
        fks = [fk for fk in _foreign_keys(cursor, set(distributed) | set(reference))]
        for table, name, *_ in fks:
            cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
        # 2. tenant_id in every key of a distributed table.
        for table in distributed:
            for name, kind, columns in _keys_without_tenant(cursor, table):
                cols = ", ".join(quote(c) for c in [DISTRIBUTION_COLUMN, *columns])
                cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}, "
                               f"ADD CONSTRAINT {quote(name)} {'PRIMARY KEY' if kind == 'p' else 'UNIQUE'} ({cols})")
            if bad := _unique_indexes_without_tenant(cursor, table):
                raise RuntimeError(f"{table}: unique indexes without {DISTRIBUTION_COLUMN} {bad}: "
                                   "Citus cannot enforce them per shard; add the column to them first.")
        # 3. The tables change kind.
        for table in reference:
            cursor.execute("SELECT create_reference_table(%s)", [table])
        for table in distributed:
            if anchor is None:
                cursor.execute("SELECT create_distributed_table(%s, %s)", [table, DISTRIBUTION_COLUMN])
                anchor = table
            else:
                cursor.execute("SELECT create_distributed_table(%s, %s, colocate_with => %s)",
                               [table, DISTRIBUTION_COLUMN, anchor])
        # 4. The foreign keys back; between two distributed tables with tenant_id in front.
        is_distributed = set(distributed) | (known - set(_reference_tables(cursor)))
        for table, name, columns, target, target_columns, definition in fks:
            if table in is_distributed and target in is_distributed and DISTRIBUTION_COLUMN not in columns:
                tail = definition[definition.index(")", definition.index("REFERENCES")) + 1:]
                definition = (f"FOREIGN KEY ({', '.join(quote(c) for c in [DISTRIBUTION_COLUMN, *columns])}) "
                              f"REFERENCES {quote(target)} "
                              f"({', '.join(quote(c) for c in [DISTRIBUTION_COLUMN, *target_columns])}){tail}")
            cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")


def _reference_tables(cursor) -> list[str]:
    return [row[0] for row in _rows(cursor, "SELECT logicalrelid::regclass::text FROM pg_dist_partition "
                                            "WHERE partmethod = 'n'")]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if not has_citus(cursor):
            return
        cursor.execute(SCOPE_FUNCTION_SQL)
        # Citus passes CREATE ROLE and ALTER ROLE on to the workers.
        cursor.execute(ROLE_LOGIN_SQL)
        # A SET LOCAL of the application (the dashboards' work_mem and jit) reaches the workers that run
        # the transaction's statements, in every new session.
        cursor.execute(PROPAGATE_SQL)
    distribute(schema_editor, DISTRIBUTED, REFERENCE)


class Migration(migrations.Migration):

    dependencies = [
        ("lifecycle", "0017_consent_source_import"),
        # Every app with store-owned tables, at its latest migration, and the apps whose tables the
        # foreign-key closure reaches (users and what points at them).
        ("journeys", "0014_webhook_and_code_steps"),
        ("loyalty", "0006_codes_issued_by_journeys"),
        ("referrals", "0002_dashboard_period_indexes"),
        ("feedback", "0002_review_settings"),
        ("auth", "__latest__"),
        ("admin", "__latest__"),
        ("contenttypes", "__latest__"),
        ("otp_static", "__latest__"),
        ("otp_totp", "__latest__"),
    ]

    # Forwards only: leaving Citus is a dump and load into plain PostgreSQL (README).
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)]
