# The dashboards' index (lifecycle/workspace/metrics.py): points earned and redeemed in a period.
# Built concurrently on PostgreSQL, so outside a transaction; the ordinary way on SQLite.

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
        ("loyalty", "0002_remove_program_referral_bonus"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="ledgerentry",
            index=models.Index(fields=["tenant", "created_at"], name="loyalty_entry_created_idx"),
        ),
    ]
