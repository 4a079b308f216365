# The dashboards' indexes (lifecycle/workspace/metrics_journeys.py): a journey's enrollments and sent
# emails of a period. Built concurrently on PostgreSQL, so outside a transaction; the ordinary way on SQLite.

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
        ("journeys", "0001_initial"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="delivery",
            index=models.Index(condition=models.Q(("sent_at__isnull", False)), fields=["tenant", "journey", "sent_at"],
                               name="delivery_journey_sent_idx"),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="enrollment",
            index=models.Index(fields=["tenant", "journey", "enrolled_at"], name="enrollment_period_idx"),
        ),
    ]
