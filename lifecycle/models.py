"""Stores (tenants), who may use them, and what their storefronts tell us.

Every tenant-owned model inherits `TenantModel`; `tenant` leads every composite index
and unique constraint. Money is Decimal + ISO 4217 currency. Datetimes are UTC.
"""

import datetime as dt
import functools
import hashlib
import hmac
import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from . import crypto
from .citus import TenantForeignKey
from .money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, is_currency
from .tenancy import TenantModel

# Files in the tz database that are not zones: "localtime" is whatever this server's clock is
# set to, "Factory" means "zone not set", "posixrules" is a template.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@functools.cache
def time_zone_choices() -> frozenset[str]:
    # available_timezones() walks the tz database on disk: ~15 ms a call, so once per process.
    return frozenset(zone for zone in zoneinfo.available_timezones()
                     if zone not in _NOT_ZONES and not zone.startswith(("posix/", "right/")))


def is_time_zone(value: str) -> bool:
    return value in time_zone_choices()


def validate_time_zone(value: str) -> None:
    if not is_time_zone(value):
        raise ValidationError(f"{value!r} is not an IANA time zone, such as 'Europe/Berlin'.")


def validate_currency(value: str) -> None:
    if not is_currency(value):
        raise ValidationError(f"{value!r} is not an ISO 4217 currency code, such as 'EUR'.")


def MoneyField(**kwargs) -> models.DecimalField:  # noqa: N802 - reads as a field class
    kwargs.setdefault("default", 0)
    return models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, **kwargs)


def new_public_id() -> str:
    return secrets.token_urlsafe(16)


class Tenant(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=63, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    currency = models.CharField(max_length=3, default="USD", validators=[validate_currency])
    sender_name = models.CharField(max_length=200, blank=True)
    sender_email = models.EmailField(blank=True)
    reply_to = models.EmailField(blank=True)
    postal_address = models.TextField(blank=True, help_text="Printed in every marketing email's footer.")
    # No email lands between these local times (the customer's time zone, else the store's).
    quiet_hours_start = models.TimeField(default=dt.time(21, 0))
    quiet_hours_end = models.TimeField(default=dt.time(8, 0))
    # At most one marketing email per customer per this many hours, across all journeys.
    frequency_cap_hours = models.PositiveSmallIntegerField(default=16)
    # Deliverability guardrails (journeys/deliverability.py), set by a beat check of the last 24 h:
    # an alert the owner sees, and a pause of all marketing email until someone resumes it.
    deliverability_alert = models.CharField(max_length=300, blank=True, help_text="Why the last check warned.")
    deliverability_alert_at = models.DateTimeField(null=True, blank=True)
    marketing_paused_at = models.DateTimeField(null=True, blank=True)
    marketing_paused_reason = models.CharField(max_length=300, blank=True)
    # Rates are counted from here (at most 24 h back), so a resumed store is judged on what it sends next.
    marketing_resumed_at = models.DateTimeField(null=True, blank=True)
    # An owner's rule: every member signs in with a two-factor code; one without a device is sent to set it up
    # before any other page of this store (workspace/access.py). API keys are not people and are unaffected.
    require_two_factor = models.BooleanField(default=False)
    # The brand on every email and shopper page (workspace/store_settings.py validates the colours' contrast).
    brand_logo_url = models.URLField(max_length=500, blank=True)
    brand_color = models.CharField(max_length=7, default="#7a4b2a", help_text="Buttons, links and the store's name.")
    brand_background = models.CharField(max_length=7, default="#f4f1ec", help_text="Around the email's card.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SendingDomain(TenantModel):
    """The store's own sending domain (lifecycle/sending_domains.py): the DNS records it must publish, their last
    check, and the store's own ESP account, if it has one, whose credentials are encrypted (lifecycle/crypto.py)."""

    class State(models.TextChoices):
        UNVERIFIED = "unverified"
        VERIFIED = "verified"
        FAILING = "failing"

    domain = models.CharField(max_length=253)
    dkim_selector = models.CharField(max_length=63, default="lc")
    # What the ESP's DKIM set-up gave: a TXT value ("v=DKIM1; k=rsa; p=…") or a host name to point a CNAME at.
    dkim_value = models.TextField(blank=True)
    # "" sends through the platform's ESP (EMAIL_BACKEND); else one of sending_domains.ESPS with the store's account.
    esp = models.CharField(max_length=20, blank=True)
    credentials_encrypted = models.TextField(blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.UNVERIFIED)
    checked_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    check_results = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="sendingdomain_tenant_uniq")]

    def __str__(self) -> str:
        return f"{self.domain} ({self.state})"


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        MARKETER = "marketer"
        VIEWER = "viewer"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MARKETER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_tenant_user_uniq")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"


class Invitation(TenantModel):
    """An owner's invitation to a store's team: a link emailed to the address, which its holder accepts
    (workspace/invitations.py). Nobody joins a store without accepting; the token is in the link
    only, and the row keeps its SHA-256, as for API keys."""

    email = models.EmailField(max_length=150)
    role = models.CharField(max_length=16, choices=Membership.Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "email"], name="invitation_tenant_email")]

    def __str__(self) -> str:
        return f"{self.email} to {self.tenant_id} ({self.role})"

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def state(self, now: dt.datetime) -> str:
        """pending, accepted, revoked or expired."""
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "pending"


class ApiKey(TenantModel):
    """A storefront's credential: `lc_<prefix>_<secret>`, shown once, stored as SHA-256.

    The secret is 32 random bytes, so a fast hash is enough (a slow KDF protects
    guessable passwords, not random keys); the prefix finds the row without a scan.
    """

    PREFIX_LENGTH = 10

    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} (lc_{self.prefix}_…)"

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @staticmethod
    def generate() -> tuple[str, str, str]:
        """Return (full key, prefix, secret)."""
        prefix = secrets.token_hex(ApiKey.PREFIX_LENGTH // 2)
        secret = secrets.token_urlsafe(32)
        return f"lc_{prefix}_{secret}", prefix, secret

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.key_hash, self.hash_secret(secret))


class StoreConnection(TenantModel):
    class Platform(models.TextChoices):
        SHOPIFY = "shopify"
        WOOCOMMERCE = "woocommerce"
        CUSTOM = "custom"

    platform = models.CharField(max_length=16, choices=Platform.choices)
    # Opaque id in the WooCommerce webhook URL: not guessable, not sequential.
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    # Shopify: the *.myshopify.com domain (unique across tenants: it names the tenant).
    shop_domain = models.CharField(max_length=255, blank=True)
    # WooCommerce: the site URL as X-WC-Webhook-Source sends it.
    site_url = models.URLField(blank=True)
    webhook_secret_encrypted = models.TextField(blank=True)
    previous_webhook_secret_encrypted = models.TextField(blank=True)
    # A rotated-out secret still verifies until then (Shopify takes up to an hour to switch).
    previous_secret_valid_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    disabled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["shop_domain"],
                condition=~Q(shop_domain=""),
                name="storeconnection_shop_domain_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.platform}: {self.shop_domain or self.site_url or self.public_id}"

    def set_secret(self, secret: str) -> None:
        self.webhook_secret_encrypted = crypto.encrypt(secret)

    def verification_secrets(self, now) -> list[bytes]:
        found = []
        if self.webhook_secret_encrypted:
            found.append(crypto.decrypt(self.webhook_secret_encrypted).encode())
        if self.previous_webhook_secret_encrypted and (
            self.previous_secret_valid_until is None or self.previous_secret_valid_until > now
        ):
            found.append(crypto.decrypt(self.previous_webhook_secret_encrypted).encode())
        return found

    @property
    def webhook_path(self) -> str:
        if self.platform == self.Platform.SHOPIFY:
            return "/webhooks/shopify"
        if self.platform == self.Platform.WOOCOMMERCE:
            return f"/webhooks/woocommerce/{self.public_id}"
        return ""


class Customer(TenantModel):
    class ConsentSource(models.TextChoices):
        API = "api"
        SHOPIFY = "shopify"
        WOOCOMMERCE = "woocommerce"
        CHECKOUT = "checkout"
        UNSUBSCRIBE = "unsubscribe"
        ADMIN = "admin"
        PREFERENCES = "preferences"  # the customer, on the preference page an email's footer links to
        IMPORT = "import"  # the store's CSV import (lifecycle/csv_import.py)

    external_id = models.CharField(max_length=255, null=True, blank=True)
    email = models.CharField(max_length=254, blank=True, help_text="Normalized: trimmed and lower-cased.")
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    locale = models.CharField(max_length=35, blank=True)
    time_zone = models.CharField(max_length=64, blank=True, validators=[validate_time_zone])
    # None: the store never told us. Never inferred from an order.
    marketing_consent = models.BooleanField(null=True, blank=True)
    consent_updated_at = models.DateTimeField(null=True, blank=True)
    consent_source = models.CharField(max_length=16, choices=ConsentSource.choices, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    # The kinds of marketing email turned off on the preference page, {"offers": false}; null (and any
    # category not named) is on. lifecycle/preferences.py.
    email_preferences = models.JSONField(null=True, blank=True)
    suppressed_at = models.DateTimeField(null=True, blank=True)
    suppression_reason = models.CharField(max_length=64, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True)
    # Aggregates over paid, uncancelled orders in the tenant's currency, net of refunds;
    # recomputed from the orders on every change, so they never drift.
    first_order_at = models.DateTimeField(null=True, blank=True)
    last_order_at = models.DateTimeField(null=True, blank=True)
    order_count = models.PositiveIntegerField(default=0)
    total_spent = MoneyField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "external_id"],
                condition=Q(external_id__isnull=False),
                name="customer_tenant_external_id_uniq",
            ),
            # A guest (no external id) is one customer per email address.
            models.UniqueConstraint(
                fields=["tenant", "email"],
                condition=Q(external_id__isnull=True) & ~Q(email=""),
                name="customer_tenant_guest_email_uniq",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "email"], name="customer_tenant_email_idx"),
            # The workspace's customer list (workspace/customers.py): newest first, a page at a
            # time by id, and each filter an index of its own. The partial ones stay small, and their
            # predicates name columns that change once, so aggregate updates stay HOT.
            models.Index(fields=["tenant", "id"], name="customer_tenant_id_idx"),
            models.Index(fields=["tenant", "marketing_consent", "id"], name="customer_tenant_consent_idx"),
            models.Index(fields=["tenant", "id"], condition=Q(unsubscribed_at__isnull=False),
                         name="customer_unsubscribed_idx"),
            models.Index(fields=["tenant", "id"], condition=Q(suppressed_at__isnull=False),
                         name="customer_suppressed_idx"),
            models.Index(fields=["tenant", "id"], condition=Q(first_order_at__isnull=True),
                         name="customer_no_orders_idx"),
            # Email prefix search (LIKE 'ada@%') whatever the database's collation (PostgreSQL only).
            models.Index(fields=["tenant", "email"], opclasses=["int8_ops", "varchar_pattern_ops"],
                         name="customer_email_prefix_idx"),
            # The home dashboard's cohorts: new customers of a period (workspace/metrics.py).
            # Dashboards: a period's new customers and how many ordered again, from the index alone.
            models.Index(fields=["tenant", "first_order_at"], include=["order_count", "last_order_at", "id"],
                         name="customer_cohort_idx"),
        ]

    def __str__(self) -> str:
        return self.email or self.external_id or f"customer {self.pk}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class Product(TenantModel):
    external_id = models.CharField(max_length=255)
    sku = models.CharField(max_length=255, blank=True)
    title = models.CharField(max_length=500, blank=True)
    url = models.URLField(max_length=1000, blank=True)
    image_url = models.URLField(max_length=1000, blank=True)
    # Typical days until a customer runs out: drives replenishment reminders.
    replenishment_days = models.PositiveIntegerField(null=True, blank=True)
    # The store's collections (categories) the product is in, by name or handle: a journey's
    # condition and a segment can ask whether a customer bought from one.
    collections = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "external_id"], name="product_tenant_external_id_uniq")
        ]

    def __str__(self) -> str:
        return self.title or self.external_id


class Order(TenantModel):
    class Status(models.TextChoices):
        PENDING = "pending"
        PAID = "paid"
        FULFILLED = "fulfilled"
        DELIVERED = "delivered"
        REFUNDED = "refunded"
        CANCELLED = "cancelled"

    class Source(models.TextChoices):
        API = "api"
        SHOPIFY = "shopify"
        WOOCOMMERCE = "woocommerce"
        IMPORT = "import"

    external_id = models.CharField(max_length=255)
    number = models.CharField(max_length=64, blank=True)
    customer = TenantForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="orders")
    # Derived from the timestamps below, which are only ever set once: status cannot move backwards.
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    placed_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=255, blank=True)
    currency = models.CharField(max_length=3, validators=[validate_currency])
    subtotal = MoneyField()
    discount_total = MoneyField()
    total = MoneyField()
    refunded_total = MoneyField()
    discount_codes = models.JSONField(default=list, blank=True)
    landing_site = models.CharField(max_length=2000, blank=True)
    referring_site = models.CharField(max_length=2000, blank=True)
    referral_code = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    # The platform's own updated_at: an older payload never overwrites a newer one.
    source_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "external_id"], name="order_tenant_external_id_uniq"),
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_non_negative"),
            models.CheckConstraint(condition=Q(refunded_total__gte=0), name="order_refunded_non_negative"),
        ]
        indexes = [
            models.Index(fields=["tenant", "customer", "paid_at"], name="order_tenant_customer_idx"),
            # The workspace's order list (workspace/orders.py): newest placed first, a page at a
            # time, by date range and by status; an order number typed into the search box.
            models.Index(fields=["tenant", "placed_at", "id"], name="order_tenant_placed_idx"),
            models.Index(fields=["tenant", "status", "placed_at", "id"], name="order_tenant_status_idx"),
            models.Index(fields=["tenant", "number"], name="order_tenant_number_idx"),
            # Dashboards: the orders paid in a period with what the figures need, read from the index alone
            # (PostgreSQL; elsewhere the columns are simply not included).
            models.Index(fields=["tenant", "paid_at"], include=["customer", "total", "refunded_total", "currency",
                                                              "cancelled_at", "placed_at"],
                         name="order_tenant_paid_idx"),
            # Orders heard of only through a refund or a delivery, not yet placed: few, listed apart.
            models.Index(fields=["tenant", "id"], condition=Q(placed_at__isnull=True), name="order_placeholder_idx"),
        ]

    def __str__(self) -> str:
        return self.number or self.external_id

    def derive_status(self) -> str:
        if self.cancelled_at:
            return self.Status.CANCELLED
        if self.total > 0 and self.refunded_total >= self.total:
            return self.Status.REFUNDED
        if self.delivered_at:
            return self.Status.DELIVERED
        if self.fulfilled_at:
            return self.Status.FULFILLED
        if self.paid_at:
            return self.Status.PAID
        return self.Status.PENDING


class OrderLine(TenantModel):
    # Lines are read by their order (its index), never by tenant alone (RLS adds the tenant to each
    # query, which the order's lines all share): no index on tenant, nor on (tenant, order), which
    # duplicated the order's and no query read (pg_stat_user_indexes after the suite and bench/scale).
    tenant = models.ForeignKey("lifecycle.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    order = TenantForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = TenantForeignKey(Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    position = models.PositiveIntegerField(default=0)
    external_id = models.CharField(max_length=255, blank=True)
    product_external_id = models.CharField(max_length=255, blank=True)
    sku = models.CharField(max_length=255, blank=True)
    title = models.CharField(max_length=500, blank=True)
    quantity = models.PositiveIntegerField()
    unit_price = MoneyField()

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.title or self.sku}"


class Refund(TenantModel):
    order = TenantForeignKey(Order, on_delete=models.CASCADE, related_name="refunds")
    external_id = models.CharField(max_length=255)
    amount = MoneyField()
    currency = models.CharField(max_length=3, validators=[validate_currency])
    reason = models.CharField(max_length=500, blank=True)
    refunded_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "order", "external_id"], name="refund_tenant_order_ext_uniq"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} on {self.order_id}"


class Event(TenantModel):
    """The customer's timeline, append-only. It is also the outbox features react to."""

    type = models.CharField(max_length=100)
    occurred_at = models.DateTimeField()
    customer = TenantForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    order = TenantForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    data = models.JSONField(default=dict, blank=True)
    # Backfilled history lands on the timeline but never starts a journey.
    backfill = models.BooleanField(default=False)
    # Makes "this happened once" a database fact: order.paid per order, a refund per refund id.
    dedupe_key = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set once every feature that reacts to events has seen it (backfilled events: at once).
    processed_at = models.DateTimeField(null=True, blank=True)
    process_attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "dedupe_key"],
                condition=Q(dedupe_key__isnull=False),
                name="event_tenant_dedupe_uniq",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "customer", "occurred_at"], name="event_tenant_customer_idx"),
            # The sweep's claim walks this in its own order, (created_at, id), and stops after a batch
            # (lifecycle/events.py): no sort of the backlog, whatever its size.
            models.Index(fields=["created_at", "id"], condition=Q(processed_at__isnull=True),
                         name="event_unprocessed_idx"),
            # Dashboards: customers with a support.contacted / product.registered … event, and those
            # events per week, read from the index alone (workspace/metrics.py).
            models.Index(fields=["tenant", "type", "occurred_at", "customer"], name="event_tenant_type_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class IdempotencyRecord(TenantModel):
    """One `Idempotency-Key` request: its fingerprint, then its stored response."""

    class State(models.TextChoices):
        IN_FLIGHT = "in_flight"
        DONE = "done"

    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_FLIGHT)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    response_content_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_tenant_key_uniq")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]


class WebhookDelivery(TenantModel):
    """Every signed platform delivery we accepted, kept raw so nothing is ever lost."""

    class Status(models.TextChoices):
        PROCESSED = "processed"
        IGNORED = "ignored"
        FAILED = "failed"

    connection = TenantForeignKey(StoreConnection, on_delete=models.CASCADE, related_name="deliveries")
    topic = models.CharField(max_length=100)
    # Shopify: topic + X-Shopify-Event-Id. WooCommerce has no event id: topic + SHA-256 of the body.
    dedupe_key = models.CharField(max_length=255)
    delivery_id = models.CharField(max_length=255, blank=True)
    body = models.BinaryField()
    status = models.CharField(max_length=16, choices=Status.choices)
    detail = models.TextField(blank=True)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "connection", "dedupe_key"], name="webhookdelivery_dedupe_uniq"
            ),
        ]
        verbose_name_plural = "webhook deliveries"


class OutboxMessage(models.Model):
    """Email captured by the embedded profile's backend instead of leaving the machine."""

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    from_email = models.CharField(max_length=500)
    to = models.TextField()
    subject = models.CharField(max_length=998)
    text_body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)
    headers = models.JSONField(default=dict)
    message_id = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to}"
