# Delivery loses the single-column indexes Django gives a foreign key on tenant, enrollment and customer:
# the unique (tenant, enrollment, step) and (tenant, customer, sent_at) already serve every lookup by
# them, and each index is one more random page written whenever a row changes state (a claim of 500
# rows writes 500 entries into each). Dropped concurrently on PostgreSQL, so outside a transaction.

from django.db import migrations, models

# Django's names for the foreign keys' indexes (schema_editor._create_index_name(table, [column])).
INDEXES = {
    "tenant_id": "journeys_delivery_tenant_id_4eccc55c",
    "enrollment_id": "journeys_delivery_enrollment_id_ee73dd92",
    "customer_id": "journeys_delivery_customer_id_95a08ae9",
}


def drop(apps, schema_editor):
    concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    for name in INDEXES.values():
        schema_editor.execute(f"DROP INDEX{concurrently} IF EXISTS {schema_editor.quote_name(name)}")


def create(apps, schema_editor):
    concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    for column, name in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX{concurrently} IF NOT EXISTS {schema_editor.quote_name(name)} "
                              f"ON journeys_delivery ({schema_editor.quote_name(column)})")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("journeys", "0002_dashboard_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="delivery", name="customer",
                    field=models.ForeignKey(db_index=False, on_delete=models.deletion.CASCADE,
                                            related_name="deliveries", to="lifecycle.customer"),
                ),
                migrations.AlterField(
                    model_name="delivery", name="enrollment",
                    field=models.ForeignKey(db_index=False, on_delete=models.deletion.CASCADE,
                                            related_name="deliveries", to="journeys.enrollment"),
                ),
                migrations.AlterField(
                    model_name="delivery", name="tenant",
                    field=models.ForeignKey(db_index=False, on_delete=models.deletion.CASCADE, related_name="+",
                                            to="lifecycle.tenant"),
                ),
            ],
            database_operations=[migrations.RunPython(drop, create)],
        ),
    ]
