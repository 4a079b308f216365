# The workspace's customer and order lists: keyset pages, filters and searches by index.
#
# Customer and Order are the big tables (millions of rows), so on PostgreSQL each index is built
# with CREATE INDEX CONCURRENTLY: writers (orders arriving) are not blocked while it builds. That
# needs a migration outside a transaction (atomic = False). SQLite, the embedded profile, has no
# such statement and no concurrent writers worth protecting: it builds them the ordinary way.

from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.add_index(model, self.index, concurrently=True)
        else:
            schema_editor.add_index(model, self.index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.remove_index(model, self.index, concurrently=True)
        else:
            schema_editor.remove_index(model, self.index)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('lifecycle', '0003_tenant_deliverability_guardrails'),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name='customer',
            index=models.Index(fields=['tenant', 'id'], name='customer_tenant_id_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='customer',
            index=models.Index(fields=['tenant', 'marketing_consent', 'id'], name='customer_tenant_consent_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='customer',
            index=models.Index(condition=models.Q(('unsubscribed_at__isnull', False)), fields=['tenant', 'id'], name='customer_unsubscribed_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='customer',
            index=models.Index(condition=models.Q(('suppressed_at__isnull', False)), fields=['tenant', 'id'], name='customer_suppressed_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='customer',
            index=models.Index(condition=models.Q(('first_order_at__isnull', True)), fields=['tenant', 'id'], name='customer_no_orders_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='customer',
            index=models.Index(fields=['tenant', 'email'], name='customer_email_prefix_idx', opclasses=['int8_ops', 'varchar_pattern_ops']),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='order',
            index=models.Index(fields=['tenant', 'placed_at', 'id'], name='order_tenant_placed_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='order',
            index=models.Index(fields=['tenant', 'status', 'placed_at', 'id'], name='order_tenant_status_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='order',
            index=models.Index(fields=['tenant', 'number'], name='order_tenant_number_idx'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='order',
            index=models.Index(condition=models.Q(('placed_at__isnull', True)), fields=['tenant', 'id'], name='order_placeholder_idx'),
        ),
    ]
