# Store owners were made `is_staff` by tenant_create (create_tenant --owner-email) before the admin became
# an operators-only site (lifecycle.admin_site: active superusers only). `is_staff` no longer opens the
# admin or the all-stores scope, but a flag that once meant "may use the admin" should not linger on
# store users of existing databases, so it is cleared on every user who is not a superuser (operators
# keep theirs). Not reversed: which accounts were staff is not worth restoring.

from django.conf import settings
from django.db import migrations


def clear_staff_of_non_superusers(apps, schema_editor):
    user_model = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    user_model._default_manager.filter(is_staff=True, is_superuser=False).update(is_staff=False)


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0007_dashboard_covering_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(clear_staff_of_non_superusers, migrations.RunPython.noop, elidable=True),
    ]
