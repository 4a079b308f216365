from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class LifecycleConfig(AppConfig):
    name = "lifecycle"
    verbose_name = "Stores, customers and orders"

    def ready(self) -> None:
        from django.db.models import CharField, TextField

        from . import citus, extreme_times
        from .api import openapi  # noqa: F401 - registers the OpenAPI auth extension
        from .rls import Prefix

        extreme_times.install()
        citus.install()

        # `field__prefix=…`: a prefix match that can use an index under row-level security.
        CharField.register_lookup(Prefix)
        TextField.register_lookup(Prefix)


class OperatorAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the operators-only site (lifecycle.admin_site) as `admin.site`."""

    default = False  # not the `lifecycle` app's config: INSTALLED_APPS names it in place of django.contrib.admin
    default_site = "lifecycle.admin_site.OperatorAdminSite"
