# Each journey's email category (journeys/categories.py), for the customer's preference page. Existing
# journeys get the category journeys.categories.category_default would give them; self-contained (a
# migration imports no app code), so the rule is written out here as it stood when this was written.

import re

from django.db import migrations, models

LOYALTY_VALUES = re.compile(r"\{\{\s*(loyalty_url|points_balance|tier|referral_url|referral_code)\b")
OFFER_WORDS = re.compile(r"\b(offers?|discounts?|coupons?|sale|% off|win[- ]?back|replenish\w*|restock\w*|"
                         r"running low|re-?order\w*|miss you)\b", re.I)


def categorize(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SET LOCAL app.scope = 'system'")  # every store's journeys (row-level security)
    Journey, Step = apps.get_model("journeys", "Journey"), apps.get_model("journeys", "Step")
    for journey in Journey._default_manager.all().iterator():
        steps = list(Step._default_manager.filter(journey_id=journey.pk).select_related("template"))
        kinds = {step.kind for step in steps}
        texts = [journey.name, journey.description] + [
            text for step in steps if step.template is not None for text in (step.template.subject, step.template.body)]
        if "feedback_request" in kinds:
            category = "reviews"
        elif kinds & {"referral_invite", "loyalty_invite", "award_points"} or any(LOYALTY_VALUES.search(t or "")
                                                                                  for t in texts):
            category = "loyalty"
        elif any(OFFER_WORDS.search(t or "") for t in texts):
            category = "offers"
        else:
            continue
        Journey._default_manager.filter(pk=journey.pk).update(category=category)


class Migration(migrations.Migration):

    dependencies = [
        ('journeys', '0008_delivery_drop_journey_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='journey',
            name='category',
            field=models.CharField(choices=[('tips', 'Tips and how-to'), ('reviews', 'Reviews and surveys'), ('offers', 'Offers'), ('loyalty', 'Loyalty and referral news')], default='tips', max_length=16),
        ),
        migrations.RunPython(categorize, migrations.RunPython.noop),
    ]
