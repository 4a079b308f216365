"""Stores, their API keys and their storefront connections."""

import datetime as dt

from django.contrib.auth import get_user_model
from django.db import transaction

from . import clock
from .auth import forget_key
from .errors import Conflict, ServiceError
from .models import (
    ApiKey,
    Membership,
    StoreConnection,
    Tenant,
)
from .tenancy import system_scope


def tenant_create(
    *, slug: str, name: str, owner_email: str | None = None, time_zone: str = "UTC", currency: str = "USD"
) -> tuple[Tenant, str]:
    """Create a tenant, its owner membership and a first API key. Returns the key, shown once.

    The owner is a store user, never staff or superuser: the store is run from the workspace (/app/),
    and the operators' admin (/admin/) is closed to every store user (lifecycle.admin_site)."""
    tenant = Tenant(slug=slug, name=name, time_zone=time_zone, currency=currency, sender_name=name)
    tenant.full_clean()
    with transaction.atomic():
        tenant.save()
        if owner_email:
            user_model = get_user_model()
            user, _ = user_model.objects.get_or_create(
                username=owner_email.lower(), defaults={"email": owner_email.lower()}
            )
            Membership.objects.create(tenant=tenant, user=user, role=Membership.Role.OWNER)
        _, key = api_key_create(tenant=tenant, name="default")
    return tenant, key


def api_key_create(*, tenant: Tenant, name: str) -> tuple[ApiKey, str]:
    full, prefix, secret = ApiKey.generate()
    api_key = ApiKey.objects.for_tenant(tenant).create(
        tenant=tenant, name=name, prefix=prefix, key_hash=ApiKey.hash_secret(secret)
    )
    return api_key, full


def api_key_revoke(*, tenant: Tenant, prefix: str) -> bool:
    """Revoke a key: refused at once by this process, within auth.KEY_CACHE_SECONDS by every worker."""
    revoked = bool(
        ApiKey.objects.for_tenant(tenant).filter(prefix=prefix, revoked_at__isnull=True).update(revoked_at=clock.now())
    )
    forget_key(prefix)
    return revoked


def store_connect(*, tenant: Tenant, platform: str, address: str, secret: str) -> StoreConnection:
    """Connect a storefront. Shopify is addressed by its shop domain, WooCommerce by site URL."""
    if platform not in StoreConnection.Platform.values:
        raise ServiceError("stores.unknown_platform", f"platform must be one of {', '.join(StoreConnection.Platform.values)}")
    if len(secret) < 8:
        raise ServiceError("stores.weak_secret", "the webhook secret must be at least 8 characters long")
    conn = StoreConnection(tenant=tenant, platform=platform)
    if platform == StoreConnection.Platform.SHOPIFY:
        domain = address.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
        if not domain or "/" in domain or "." not in domain:
            raise ServiceError("stores.bad_shop_domain", f"{address!r} is not a shop domain such as my-shop.myshopify.com")
        with system_scope():  # a shop domain names one store, whichever it is
            taken = StoreConnection.all_tenants.filter(shop_domain=domain).exists()
        if taken:
            raise Conflict("stores.shop_taken", f"{domain} is already connected")
        conn.shop_domain = domain
    else:
        url = address.strip()
        if not url.startswith(("http://", "https://")):
            raise ServiceError("stores.bad_site_url", f"{address!r} is not a site URL such as https://shop.example.com")
        conn.site_url = url
    conn.set_secret(secret)
    conn.save()
    return conn


def store_rotate_secret(*, connection_: StoreConnection, secret: str, grace: dt.timedelta) -> StoreConnection:
    """Install a new webhook secret; the old one keeps verifying for `grace`."""
    if len(secret) < 8:
        raise ServiceError("stores.weak_secret", "the webhook secret must be at least 8 characters long")
    with transaction.atomic():
        conn = StoreConnection.all_tenants.select_for_update().get(pk=connection_.pk)
        conn.previous_webhook_secret_encrypted = conn.webhook_secret_encrypted
        conn.previous_secret_valid_until = clock.now() + grace
        conn.set_secret(secret)
        conn.save()
    return conn
