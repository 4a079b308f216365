"""Fail-closed tenant scoping.

`Model.objects` refuses to build a query until it is told the tenant:
`Model.objects.for_tenant(tenant)`. Code that really needs every tenant (migrations,
operator commands, the platform admin) says so with `Model.all_tenants`. An unscoped
query in a view is a bug, and this makes it a loud one.
"""

from django.db import models


class UnscopedQueryError(RuntimeError):
    pass


class TenantManager(models.Manager):
    def get_queryset(self):
        raise UnscopedQueryError(
            f"{self.model.__name__}.objects needs a tenant: use .for_tenant(tenant), "
            f"or {self.model.__name__}.all_tenants where every tenant is meant."
        )

    def for_tenant(self, tenant) -> models.QuerySet:
        if tenant is None:
            raise UnscopedQueryError(f"{self.model.__name__}.objects.for_tenant() was given no tenant")
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        return super().get_queryset().filter(tenant_id=tenant_id)


class TenantModel(models.Model):
    """Base of every tenant-owned row. `tenant_id` leads its indexes and unique constraints."""

    tenant = models.ForeignKey("lifecycle.Tenant", on_delete=models.CASCADE, related_name="+")

    # The first manager is Django's default: related lookups, admin unique checks and
    # deletion use it. Application code uses `objects`, which is scoped.
    all_tenants = models.Manager()
    objects = TenantManager()

    class Meta:
        abstract = True
