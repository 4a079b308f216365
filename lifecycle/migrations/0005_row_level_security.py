# Row-level security on every tenant table, and the role the application assumes (lifecycle/rls.py).
#
# PostgreSQL only: SQLite, the embedded profile, has no RLS and no roles, so both steps do nothing
# there. Self-contained on purpose (migrations import no app code): the tables are the historical
# models with a tenant_id column at this point of the history. A tenant table added later needs
# its own migration running TABLE_SQL for it; tests/lifecycle/test_rls.py fails until it has one.

from django.db import migrations

ROLE = "lifecycle_app"

# Idempotent: the role is cluster-wide, so another database of the same server (a second
# environment, a test database) may have created it already, or be creating it right now.
ROLE_SQL = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
        BEGIN
            CREATE ROLE {ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    -- A superuser may SET ROLE to anyone; any other migrating role needs the membership.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, '{ROLE}', 'MEMBER') THEN
        EXECUTE format('GRANT {ROLE} TO %I', current_user);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO {ROLE}', current_schema());
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO {ROLE}', current_schema());
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO {ROLE}', current_schema());
    -- Tables and sequences later migrations create (as this same role) get the same grants.
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ROLE}',
                   current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO {ROLE}',
                   current_schema());
END $$;
"""

# No tenant set ('' or never set): NULL, so no row matches and no row may be written.
TENANT_MATCHES = ("tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint "
                  "OR current_setting('app.scope', true) = 'system'")

TABLE_SQL = f"""
ALTER TABLE {{table}} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {{table}} FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON {{table}};
CREATE POLICY tenant_isolation ON {{table}} USING ({TENANT_MATCHES}) WITH CHECK ({TENANT_MATCHES});
"""

TABLE_REVERSE_SQL = """
DROP POLICY IF EXISTS tenant_isolation ON {table};
ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;
"""


def tenant_tables(apps) -> list[str]:
    return sorted({model._meta.db_table for model in apps.get_models(include_auto_created=True)
                   if model._meta.managed and not model._meta.proxy
                   and any(field.column == "tenant_id" for field in model._meta.concrete_fields)})


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(ROLE_SQL, params=None)
    for table in tenant_tables(apps):
        schema_editor.execute(TABLE_SQL.format(table=schema_editor.quote_name(table)), params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in tenant_tables(apps):
        schema_editor.execute(TABLE_REVERSE_SQL.format(table=schema_editor.quote_name(table)), params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("lifecycle", "0004_workspace_list_indexes"),
        # Every app with tenant tables, at its latest migration: their tables exist by now.
        ("journeys", "0001_initial"),
        ("loyalty", "0002_remove_program_referral_bonus"),
        ("referrals", "0001_initial"),
        ("feedback", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
