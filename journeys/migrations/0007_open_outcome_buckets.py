# Funnels read the sends still in their attribution window from "open" buckets beat refreshes (journeys/rollups.py).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('journeys', '0006_dashboard_covering_indexes'),
        ('lifecycle', '0007_dashboard_covering_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='journey',
            name='outcomes_open_until',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(
            model_name='outcomebucket',
            name='kind',
            field=models.CharField(choices=[('lift', 'Lift'), ('step', 'Step'), ('open', 'Open')], max_length=8),
        ),
        migrations.AddConstraint(
            model_name='outcomebucket',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'open')), fields=('tenant', 'journey', 'step', 'bucket'), name='outcomebucket_open_uniq'),
        ),
    ]
