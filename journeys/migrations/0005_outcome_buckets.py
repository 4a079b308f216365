# The dashboards' outcome buckets (journeys/rollups.py), under row-level security like every tenant table.

import importlib

import django.db.models.deletion
import django.db.models.manager
from django.db import migrations, models

RLS = importlib.import_module("lifecycle.migrations.0005_row_level_security")
TABLE = "journeys_outcomebucket"


def enable_rls(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(RLS.TABLE_SQL.format(table=TABLE))


def disable_rls(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(RLS.TABLE_REVERSE_SQL.format(table=TABLE))


class Migration(migrations.Migration):

    dependencies = [
        ('journeys', '0004_enrollment_fewer_indexes'),
        ('lifecycle', '0006_dashboard_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='journey',
            name='outcomes_settled_until',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.CreateModel(
            name='OutcomeBucket',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('lift', 'Lift'), ('step', 'Step')], max_length=8)),
                ('bucket', models.DateTimeField()),
                ('held', models.BooleanField(default=False)),
                ('count', models.PositiveIntegerField(default=0)),
                ('converted', models.PositiveIntegerField(default=0)),
                ('revenue', models.DecimalField(decimal_places=2, default=0, max_digits=16)),
                ('revenue_squares', models.DecimalField(decimal_places=4, default=0, max_digits=30)),
                ('delivered', models.PositiveIntegerField(default=0)),
                ('opened', models.PositiveIntegerField(default=0)),
                ('clicked', models.PositiveIntegerField(default=0)),
                ('bounced', models.PositiveIntegerField(default=0)),
                ('complained', models.PositiveIntegerField(default=0)),
                ('journey', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='journeys.journey')),
                ('step', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='journeys.step')),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='lifecycle.tenant')),
            ],
            options={
                'constraints': [models.UniqueConstraint(condition=models.Q(('kind', 'lift')), fields=('tenant', 'journey', 'bucket', 'held'), name='outcomebucket_lift_uniq'), models.UniqueConstraint(condition=models.Q(('kind', 'step')), fields=('tenant', 'journey', 'step', 'bucket'), name='outcomebucket_step_uniq')],
            },
            managers=[
                ('all_tenants', django.db.models.manager.Manager()),
            ],
        ),
        migrations.RunPython(enable_rls, disable_rls),
    ]
