"""The event sweep's claim stays a short walk of an index whatever the backlog (lifecycle/events.py).

The unprocessed-events index covers the claim's whole order, (created_at, id), so the claim reads it in
order and stops after a batch instead of sorting every unprocessed event; and PostgreSQL keeps
statistics on the sweep key (the customer id modulo 64), so it knows that a sweep slot's share of the
backlog is a half, not the 0.5 % it assumes for an expression it has no statistics on. With that
guess it sorted the whole backlog for each batch of 500 (a sequential scan, then a sort spilled to
disk: 60-140 ms a batch at 100,000 events, growing with the table).
"""

from django.db import migrations, models

STATISTICS_SQL = ("CREATE STATISTICS lifecycle_event_sweep_key ON (mod(COALESCE(customer_id, 0), 64)) "
                  "FROM lifecycle_event; ANALYZE lifecycle_event")
STATISTICS_REVERSE_SQL = "DROP STATISTICS lifecycle_event_sweep_key"


def statistics_create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(STATISTICS_SQL)


def statistics_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(STATISTICS_REVERSE_SQL)


class Migration(migrations.Migration):

    dependencies = [
        ('lifecycle', '0012_tenant_require_two_factor'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='event',
            name='event_unprocessed_idx',
        ),
        migrations.AddIndex(
            model_name='event',
            index=models.Index(condition=models.Q(('processed_at__isnull', True)), fields=['created_at', 'id'], name='event_unprocessed_idx'),
        ),
        migrations.RunPython(statistics_create, statistics_drop),
    ]
