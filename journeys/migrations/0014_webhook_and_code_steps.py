# Outbound webhook steps, their calls and attempts, and the values steps make for later emails (discount
# codes), under row-level security like every tenant table.

import importlib

import django.db.models.deletion
import django.db.models.manager
from django.db import migrations, models

RLS = importlib.import_module("lifecycle.migrations.0005_row_level_security")
TABLES = ("journeys_webhooksecret", "journeys_webhookcall", "journeys_webhookattempt", "journeys_enrollmentvariable")


def enable_rls(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(RLS.TABLE_SQL.format(table=table))


def disable_rls(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(RLS.TABLE_REVERSE_SQL.format(table=table))


class Migration(migrations.Migration):

    dependencies = [
        ('journeys', '0013_ab_tests'),
        ('lifecycle', '0012_tenant_require_two_factor'),
    ]

    operations = [
        migrations.AlterField(
            model_name='step',
            name='kind',
            field=models.CharField(choices=[('email', 'Email'), ('feedback_request', 'Feedback Request'), ('referral_invite', 'Referral Invite'), ('loyalty_invite', 'Loyalty Invite'), ('award_points', 'Award Points'), ('webhook', 'Webhook'), ('condition', 'Condition'), ('ab_split', 'Ab Split'), ('discount_code', 'Discount Code'), ('check_in', 'Check In'), ('community_invite', 'Community Invite')], default='email', max_length=20),
        ),
        migrations.CreateModel(
            name='WebhookCall',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('idempotency_key', models.CharField(max_length=100)),
                ('url', models.URLField(max_length=2000)),
                ('body', models.TextField()),
                ('state', models.CharField(choices=[('pending', 'Pending'), ('delivered', 'Delivered'), ('failed', 'Failed')], default='pending', max_length=16)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField()),
                ('lease_until', models.DateTimeField(blank=True, null=True)),
                ('give_up_at', models.DateTimeField()),
                ('last_error', models.CharField(blank=True, max_length=300)),
                ('created_at', models.DateTimeField()),
                ('delivered_at', models.DateTimeField(blank=True, null=True)),
                ('customer', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='lifecycle.customer')),
                ('delivery', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='webhook_call', to='journeys.delivery')),
                ('journey', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='journeys.journey')),
                ('step', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='journeys.step')),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='lifecycle.tenant')),
            ],
            managers=[
                ('all_tenants', django.db.models.manager.Manager()),
            ],
        ),
        migrations.CreateModel(
            name='WebhookAttempt',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveSmallIntegerField()),
                ('at', models.DateTimeField()),
                ('status_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('latency_ms', models.PositiveIntegerField(default=0)),
                ('error', models.CharField(blank=True, max_length=300)),
                ('response_snippet', models.CharField(blank=True, max_length=500)),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='lifecycle.tenant')),
                ('call', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='attempt_rows', to='journeys.webhookcall')),
            ],
            managers=[
                ('all_tenants', django.db.models.manager.Manager()),
            ],
        ),
        migrations.CreateModel(
            name='WebhookSecret',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('secret_encrypted', models.TextField()),
                ('previous_secret_encrypted', models.TextField(blank=True)),
                ('previous_valid_until', models.DateTimeField(blank=True, null=True)),
                ('rotated_at', models.DateTimeField()),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='lifecycle.tenant')),
            ],
            managers=[
                ('all_tenants', django.db.models.manager.Manager()),
            ],
        ),
        migrations.CreateModel(
            name='EnrollmentVariable',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=50)),
                ('value', models.CharField(max_length=200)),
                ('created_at', models.DateTimeField()),
                ('delivery', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='journeys.delivery')),
                ('enrollment', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='journeys.enrollment')),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='lifecycle.tenant')),
            ],
            options={
                'indexes': [models.Index(fields=['tenant', 'enrollment'], name='enrollmentvar_enrollment_idx')],
                'constraints': [models.UniqueConstraint(fields=('tenant', 'delivery', 'name'), name='enrollmentvar_uniq')],
            },
            managers=[
                ('all_tenants', django.db.models.manager.Manager()),
            ],
        ),
        migrations.AddIndex(
            model_name='webhookcall',
            index=models.Index(condition=models.Q(('state', 'pending')), fields=['next_attempt_at'], name='webhookcall_due_idx'),
        ),
        migrations.AddIndex(
            model_name='webhookcall',
            index=models.Index(fields=['tenant', 'customer', 'created_at'], name='webhookcall_customer_idx'),
        ),
        migrations.AddIndex(
            model_name='webhookcall',
            index=models.Index(fields=['tenant', 'step', 'created_at'], name='webhookcall_step_idx'),
        ),
        migrations.AddConstraint(
            model_name='webhookcall',
            constraint=models.UniqueConstraint(fields=('tenant', 'idempotency_key'), name='webhookcall_key_uniq'),
        ),
        migrations.AddIndex(
            model_name='webhookattempt',
            index=models.Index(fields=['tenant', 'call', 'number'], name='webhookattempt_call_idx'),
        ),
        migrations.AddConstraint(
            model_name='webhooksecret',
            constraint=models.UniqueConstraint(fields=('tenant',), name='webhooksecret_tenant_uniq'),
        ),
        migrations.RunPython(enable_rls, disable_rls),
    ]
