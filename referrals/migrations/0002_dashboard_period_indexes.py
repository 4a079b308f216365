# A period's referral clicks for the dashboards, from the index alone; built concurrently on PostgreSQL.

import importlib

from django.db import migrations, models

CONCURRENT = importlib.import_module("lifecycle.migrations.0007_dashboard_covering_indexes")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("referrals", "0001_initial"),
        ("lifecycle", "0007_dashboard_covering_indexes"),
    ]

    operations = [
        CONCURRENT.CONCURRENT.AddIndexConcurrentlyOnPostgres(
            model_name="click",
            index=models.Index(fields=["tenant", "at"], include=("by_advocate",), name="referralclick_period_idx"),
        ),
    ]
