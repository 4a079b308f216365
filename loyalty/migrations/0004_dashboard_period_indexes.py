# Points earned, redeemed and expired in a period, from the index alone: one range per kind, with the
# amount. The new index is built before the old one goes, both concurrently on PostgreSQL.

import importlib

from django.db import migrations, models

CONCURRENT = importlib.import_module("lifecycle.migrations.0007_dashboard_covering_indexes")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("loyalty", "0003_dashboard_indexes"),
        ("lifecycle", "0007_dashboard_covering_indexes"),
    ]

    operations = [
        CONCURRENT.CONCURRENT.AddIndexConcurrentlyOnPostgres(
            model_name="ledgerentry",
            index=models.Index(fields=["tenant", "kind", "created_at"], include=("amount",),
                               name="loyalty_entry_period_idx"),
        ),
        CONCURRENT.RemoveIndexConcurrentlyOnPostgres(model_name="ledgerentry", name="loyalty_entry_created_idx"),
    ]
