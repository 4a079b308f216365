"""Fail-closed tenant scoping, in the ORM and in the database.

`Model.objects` refuses to build a query until it is told the tenant:
`Model.objects.for_tenant(tenant)`. Code that really needs every tenant (migrations,
operator commands, the platform admin) says so with `Model.all_tenants`. An unscoped
query in a view is a bug, and this makes it a loud one.

Below the ORM, PostgreSQL row-level security hides other tenants' rows from the role the
web and worker processes assume (lifecycle/rls.py). The scopes at the end of this module
say which tenant that is: `tenant_scope`, `system_scope`, and `activate` for requests.
"""

import contextlib
import contextvars
from collections.abc import Iterator

from django.db import connections, models

from . import citus


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


class AllTenantsManager(models.Manager):
    """`Model.all_tenants`: every tenant's rows, as far as the database shows them. Inside a
    `tenant_scope` row-level security shows one tenant's only; on Citus the queryset also names that
    tenant, so that its statements go to the tenant's shard group instead of every shard
    (lifecycle/citus.py). Elsewhere it is Django's plain manager."""

    def get_queryset(self):
        queryset = super().get_queryset()
        tenant_id = current_tenant_id()
        if tenant_id is not None and citus.enabled(connections[queryset.db]):
            return queryset.filter(tenant_id=tenant_id)
        return queryset


class TenantModel(models.Model):
    """Base of every tenant-owned row. `tenant_id` leads its indexes and unique constraints."""

    tenant = models.ForeignKey("lifecycle.Tenant", on_delete=models.CASCADE, related_name="+")

    # The first manager is Django's default: related lookups, admin unique checks and
    # deletion use it. Application code uses `objects`, which is scoped.
    all_tenants = AllTenantsManager()
    objects = TenantManager()

    class Meta:
        abstract = True

    def _do_update(self, base_qs, using, pk_val, values, update_fields, forced_update):
        # `save()` of a row: on Citus the UPDATE names the row's tenant (its shard) and leaves tenant_id
        # alone, since Citus refuses any UPDATE that sets the distribution column.
        if citus.enabled(connections[using]):
            base_qs = base_qs.filter(tenant_id=self.tenant_id)
            values = [value for value in values if value[0].attname != "tenant_id"]
        return super()._do_update(base_qs, using, pk_val, values, update_fields, forced_update)


# --- The tenant of the work at hand, for row-level security (lifecycle/rls.py) ---------------
#
# `tenant_scope(tenant)` and `system_scope()` say whose rows the code inside may touch. They
# open no transaction: each statement inside carries the scope to PostgreSQL as a SET LOCAL
# of its own transaction (lifecycle/rls.py says why), so services keep their own transaction
# boundaries. Outside every scope the database shows no tenant row at all.
#
# - Requests: TenantScopeMiddleware opens an empty scope; the code that learns the tenant
#   (the API key, the webhook's store connection, the signed link, the workspace membership)
#   calls `activate(tenant)` for the rest of the request.
# - Lookups that find the tenant (an API key by its prefix, a store connection by its shop
#   domain, a user's memberships) run in `system_scope()`: one query, then `activate`.
# - Celery: beat sweeps that work across tenants run in `system_scope()`, named at each call;
#   a task that acts for one tenant takes its tenant_id and runs in `tenant_scope(tenant_id)`.

SYSTEM = "system"  # the scope kind of work across tenants (beat sweeps, admin, lookups)
# (kind, tenant id): ("tenant", 42) or ("system", None); None is no tenant at all.
Scope = tuple[str, int | None]
_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("lifecycle_tenancy_scope", default=None)
_in_request: contextvars.ContextVar[bool] = contextvars.ContextVar("lifecycle_tenancy_in_request", default=False)


def tenant_id_of(tenant) -> int:
    if tenant is None or isinstance(tenant, bool):
        raise UnscopedQueryError("a tenant scope needs a tenant, not None")
    return int(tenant if isinstance(tenant, int) else tenant.pk)


def current_scope() -> Scope | None:
    return _scope.get()


def current_tenant_id() -> int | None:
    scope = _scope.get()
    return scope[1] if scope is not None else None


@contextlib.contextmanager
def tenant_scope(tenant) -> Iterator[int]:
    """Everything inside reads and writes `tenant`'s rows only (and yields its id)."""
    tenant_id = tenant_id_of(tenant)
    token = _scope.set(("tenant", tenant_id))
    try:
        yield tenant_id
    finally:
        _scope.reset(token)


@contextlib.contextmanager
def system_scope() -> Iterator[None]:
    """Every tenant's rows: beat sweeps, the operators' admin, and the lookups that find a tenant."""
    token = _scope.set((SYSTEM, None))
    try:
        yield
    finally:
        _scope.reset(token)


@contextlib.contextmanager
def no_scope() -> Iterator[None]:
    token = _scope.set(None)
    try:
        yield
    finally:
        _scope.reset(token)


def activate(tenant) -> int:
    """Scope the rest of the current request to `tenant`. Only inside TenantScopeMiddleware,
    which ends the scope with the request; elsewhere use `with tenant_scope(tenant):`."""
    if not _in_request.get():
        raise UnscopedQueryError("activate() outside a request: use `with tenant_scope(tenant):`")
    tenant_id = tenant_id_of(tenant)
    _scope.set(("tenant", tenant_id))
    return tenant_id


def activate_system() -> None:
    """The operators' admin: the rest of the request sees every tenant."""
    if not _in_request.get():
        raise UnscopedQueryError("activate_system() outside a request: use `with system_scope():`")
    _scope.set((SYSTEM, None))


def is_operator(user) -> bool:
    """The platform's operators: active superusers, and nobody else. No path a store's users take
    (tenant_create, create_tenant, the workspace's team pages) makes a superuser, so this is the one
    flag no store user gets; `is_staff` alone opens nothing (lifecycle.admin_site)."""
    return bool(user is not None and user.is_active and user.is_superuser)


class TenantScopeMiddleware:
    """Each request starts with no tenant and ends with none, whatever its view activated.

    Operators (`is_operator`) on the admin site see every tenant; nobody else ever gets that scope
    from a request, and the admin site refuses everybody else before any view runs.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        in_request = _in_request.set(True)
        scope = _scope.set(None)
        try:
            if request.path.startswith("/admin/") and is_operator(getattr(request, "user", None)):
                _scope.set((SYSTEM, None))
            return self.get_response(request)
        finally:
            # Whatever the view activated ends here: the thread's next request starts from nothing.
            _scope.reset(scope)
            _in_request.reset(in_request)


def row_tenant_id(model: type[models.Model], pk: int) -> int | None:
    """The tenant of one row, looked up across tenants: for a task message queued before its task
    took a tenant_id (new messages name it)."""
    with system_scope():
        return model.all_tenants.filter(pk=pk).values_list("tenant_id", flat=True).first()
