# The dashboards' indexes (lifecycle/workspace/metrics*.py): new customers of a period, customers with an
# event of a type, and the orders paid in a period (covering, so read from the index alone on PostgreSQL). Built concurrently on PostgreSQL (big tables, writers not blocked), so outside a
# transaction; the ordinary way on SQLite.

from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        schema_editor.add_index(model, self.index, **self._concurrently(schema_editor))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        schema_editor.remove_index(model, self.index, **self._concurrently(schema_editor))

    @staticmethod
    def _concurrently(schema_editor) -> dict:
        return {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("lifecycle", "0005_row_level_security"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="customer",
            index=models.Index(fields=["tenant", "first_order_at"], name="customer_first_order_idx"),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="event",
            index=models.Index(fields=["tenant", "type", "occurred_at", "customer"], name="event_tenant_type_idx"),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="order",
            index=models.Index(fields=["tenant", "paid_at"], include=["customer", "total", "refunded_total", "currency",
                                                                      "cancelled_at", "placed_at"],
                               name="order_tenant_paid_idx"),
        ),
    ]
