# A period's new customers and how many of them ordered again, read from the index alone: the cohort
# index carries order_count, last_order_at and id (the repeat rate, time to second order, and the joins of a cohort to its orders and events).
# The new index is built before the old one goes, both concurrently on PostgreSQL.

import importlib

from django.db import migrations, models

CONCURRENT = importlib.import_module("lifecycle.migrations.0006_dashboard_indexes")


class RemoveIndexConcurrentlyOnPostgres(migrations.RemoveIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        schema_editor.remove_index(model, index, **CONCURRENT.AddIndexConcurrentlyOnPostgres._concurrently(schema_editor))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        schema_editor.add_index(model, index, **CONCURRENT.AddIndexConcurrentlyOnPostgres._concurrently(schema_editor))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("lifecycle", "0006_dashboard_indexes"),
    ]

    operations = [
        CONCURRENT.AddIndexConcurrentlyOnPostgres(
            model_name="customer",
            index=models.Index(fields=["tenant", "first_order_at"], include=("order_count", "last_order_at", "id"),
                               name="customer_cohort_idx"),
        ),
        RemoveIndexConcurrentlyOnPostgres(model_name="customer", name="customer_first_order_idx"),
    ]
