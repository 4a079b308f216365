# Enrollment loses the single-column indexes Django gives its tenant, journey and customer foreign keys:
# (tenant, journey, customer, state), (tenant, customer, state) and (tenant, journey, enrolled_at) serve
# every lookup by them, and each index is one more entry written when an enrollment ends. Dropped
# concurrently on PostgreSQL, so outside a transaction.

from django.db import migrations, models

# Django's names for the foreign keys' indexes (schema_editor._create_index_name(table, [column])).
INDEXES = {
    "tenant_id": "journeys_enrollment_tenant_id_fea89c1f",
    "journey_id": "journeys_enrollment_journey_id_20cfd3aa",
    "customer_id": "journeys_enrollment_customer_id_1bdb59b7",
}


def drop(apps, schema_editor):
    concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    for name in INDEXES.values():
        schema_editor.execute(f"DROP INDEX{concurrently} IF EXISTS {schema_editor.quote_name(name)}")


def create(apps, schema_editor):
    concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    for column, name in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX{concurrently} IF NOT EXISTS {schema_editor.quote_name(name)} "
                              f"ON journeys_enrollment ({schema_editor.quote_name(column)})")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("journeys", "0003_delivery_fewer_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="enrollment", name="customer",
                    field=models.ForeignKey(db_index=False, on_delete=models.deletion.CASCADE,
                                            related_name="enrollments", to="lifecycle.customer"),
                ),
                migrations.AlterField(
                    model_name="enrollment", name="journey",
                    field=models.ForeignKey(db_index=False, on_delete=models.deletion.CASCADE,
                                            related_name="enrollments", to="journeys.journey"),
                ),
                migrations.AlterField(
                    model_name="enrollment", name="tenant",
                    field=models.ForeignKey(db_index=False, on_delete=models.deletion.CASCADE, related_name="+",
                                            to="lifecycle.tenant"),
                ),
            ],
            database_operations=[migrations.RunPython(drop, create)],
        ),
    ]
