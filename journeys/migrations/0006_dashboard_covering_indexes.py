# A journey's enrollments of a period with their state and customer, read from the index alone (the
# funnel's counts, the lift's open part). Built before the old index goes, both concurrently on PostgreSQL.

import importlib

from django.db import migrations, models

CONCURRENT = importlib.import_module("lifecycle.migrations.0007_dashboard_covering_indexes")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("journeys", "0005_outcome_buckets"),
        ("lifecycle", "0007_dashboard_covering_indexes"),
    ]

    operations = [
        CONCURRENT.CONCURRENT.AddIndexConcurrentlyOnPostgres(
            model_name="enrollment",
            index=models.Index(fields=["tenant", "journey", "enrolled_at"], include=("state", "customer", "id"),
                               name="enrollment_period_state_idx"),
        ),
        CONCURRENT.RemoveIndexConcurrentlyOnPostgres(model_name="enrollment", name="enrollment_period_idx"),
    ]
