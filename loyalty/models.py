"""Loyalty: a store's program (earning rules, tiers, rewards) and each customer's points.

The ledger is the truth: `LedgerEntry` rows are only ever inserted. `LoyaltyAccount` holds
the running sums (balance, pending, debt) for fast reads; every change to it happens in the
transaction that inserts its entry, with F() under the account's row lock, and
`manage.py check_ledgers` proves the two agree.

Points are integers. Money is Decimal with the tenant's ISO 4217 currency.
"""

from decimal import Decimal

from django.db import models
from django.db.models import Q

from lifecycle.citus import TenantForeignKey, TenantOneToOneField
from lifecycle.models import Customer, MoneyField, Order
from lifecycle.tenancy import TenantModel


class Program(TenantModel):
    """One per store. Orders in another currency than the store's earn nothing (no FX guessing)."""

    class TierBasis(models.TextChoices):
        POINTS = "points", "Points earned in the last 12 months"
        SPEND = "spend", "Spend in the last 12 months"

    class Downgrade(models.TextChoices):
        NEVER = "never", "Never: a tier once reached is kept"
        ROLLING = "rolling", "Rolling: re-qualify over the last 12 months, checked daily"

    enabled = models.BooleanField(default=True)
    # Points per 1 unit of currency paid (net of discounts and refunds), before the tier multiplier.
    points_per_unit = models.DecimalField(max_digits=9, decimal_places=4, default=Decimal("1"))
    # Order points stay pending this long (the return window) before they can be spent.
    pending_days = models.PositiveSmallIntegerField(default=14)
    first_order_bonus = models.PositiveIntegerField(default=0)
    review_bonus = models.PositiveIntegerField(default=0)
    # Once a year, on the birthday the customer gave on their loyalty page (referral points are
    # the referral program's to set: it awards them through points_award).
    birthday_bonus = models.PositiveIntegerField(default=0)
    # {"event type": points}: a storefront's custom event (POST /api/v1/events) earns these once per event.
    event_bonuses = models.JSONField(default=dict, blank=True)
    tier_basis = models.CharField(max_length=16, choices=TierBasis.choices, default=TierBasis.POINTS)
    tier_downgrade = models.CharField(max_length=16, choices=Downgrade.choices, default=Downgrade.ROLLING)
    # Points expire after this many months without activity (earning or redeeming); 0 = never.
    expiry_months = models.PositiveSmallIntegerField(default=0)
    # The points_expiring warning goes out this many days before; expiry waits at least as long after it.
    expiry_warning_days = models.PositiveSmallIntegerField(default=30)
    # Generated codes are POSTed here (HMAC-signed with code_webhook_secret) so the store can create them.
    code_webhook_url = models.URLField(blank=True)
    code_webhook_secret = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="loyalty_program_tenant_uniq")]

    def __str__(self) -> str:
        return f"loyalty program of tenant {self.tenant_id}"


class Tier(TenantModel):
    program = TenantForeignKey(Program, on_delete=models.CASCADE, related_name="tiers")
    name = models.CharField(max_length=100)
    # Points earned (tier_basis=points) or money spent (tier_basis=spend) over a rolling 12 months.
    threshold = models.DecimalField(max_digits=19, decimal_places=4)
    multiplier = models.DecimalField(max_digits=6, decimal_places=3, default=Decimal("1"))
    perks = models.TextField(blank=True, help_text="Shown on the customer's loyalty page.")

    class Meta:
        ordering = ["threshold"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "program", "name"], name="loyalty_tier_name_uniq"),
            models.UniqueConstraint(fields=["tenant", "program", "threshold"], name="loyalty_tier_threshold_uniq"),
            models.CheckConstraint(condition=Q(multiplier__gte=0), name="loyalty_tier_multiplier_non_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class Reward(TenantModel):
    class Kind(models.TextChoices):
        FIXED_DISCOUNT = "fixed_discount"
        PERCENT_DISCOUNT = "percent_discount"
        FREE_SHIPPING = "free_shipping"
        FREE_PRODUCT = "free_product"

    class CodeSource(models.TextChoices):
        POOL = "pool", "From codes the store uploaded"
        GENERATED = "generated", "Generated here and sent to the store's webhook"

    program = TenantForeignKey(Program, on_delete=models.CASCADE, related_name="rewards")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    cost = models.PositiveIntegerField(help_text="Points it takes.")
    # fixed_discount: an amount in `currency`; percent_discount: a percentage; otherwise unused.
    value = MoneyField()
    currency = models.CharField(max_length=3, blank=True)
    product_external_id = models.CharField(max_length=255, blank=True)
    code_source = models.CharField(max_length=16, choices=CodeSource.choices, default=CodeSource.GENERATED)
    code_prefix = models.CharField(max_length=20, blank=True, default="REWARD")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cost", "pk"]
        constraints = [models.CheckConstraint(condition=Q(cost__gt=0), name="loyalty_reward_cost_positive")]
        indexes = [models.Index(fields=["tenant", "program", "cost"], name="loyalty_reward_cost_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.cost} points)"


class LoyaltyAccount(TenantModel):
    """A customer's running sums. Only loyalty.services writes here, always with its ledger entry."""

    customer = TenantForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    balance = models.IntegerField(default=0, help_text="Available: can be spent now.")
    pending = models.IntegerField(default=0, help_text="Earned, still inside the return window.")
    debt = models.IntegerField(default=0, help_text="Clawed back after it was spent; repaid by future points.")
    lifetime_earned = models.IntegerField(default=0, help_text="Earned, net of clawbacks, ever.")
    tier = TenantForeignKey(Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tier_changed_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    # The last_activity_at the expiry warning was sent for: one warning per period of inactivity.
    expiry_warned_for = models.DateTimeField(null=True, blank=True)
    expiry_warned_at = models.DateTimeField(null=True, blank=True)
    # Given once by the customer on their page (only the store changes it after), for the birthday bonus.
    birthday = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer"], name="loyalty_account_customer_uniq"),
            models.CheckConstraint(condition=Q(balance__gte=0), name="loyalty_account_balance_non_negative"),
            models.CheckConstraint(condition=Q(pending__gte=0), name="loyalty_account_pending_non_negative"),
            models.CheckConstraint(condition=Q(debt__gte=0), name="loyalty_account_debt_non_negative"),
        ]
        indexes = [
            models.Index(fields=["last_activity_at"], condition=Q(balance__gt=0), name="loyalty_account_active_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.balance} points (customer {self.customer_id})"


class LedgerEntry(TenantModel):
    """One movement of points, never updated or deleted.

    `amount` is the movement as the customer reads it (+100 earned, −40 clawed back); the
    three deltas say which running sum it moved: `points` the balance, `pending_points` the
    pending sum, `debt_points` the debt. The account's sums equal the sums of these columns.
    """

    class Kind(models.TextChoices):
        EARN = "earn"
        RELEASE = "release", "Pending → available"
        CLAWBACK = "clawback"
        REDEEM = "redeem"
        EXPIRE = "expire"
        ADJUST = "adjust"

    account = TenantForeignKey(LoyaltyAccount, on_delete=models.CASCADE, related_name="entries")
    customer = TenantForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # What caused it, unique per (customer, kind): "order:123", "refund:123:R-1", "delivery:9", "review:4".
    source = models.CharField(max_length=200)
    reason = models.CharField(max_length=200)
    amount = models.IntegerField()
    points = models.IntegerField(default=0)
    pending_points = models.IntegerField(default=0)
    debt_points = models.IntegerField(default=0)
    order = TenantForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # An order's earn keeps what it was computed on, so a refund claws back at the same rate.
    rate = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True,
                               help_text="Points per unit of currency, multiplier included.")
    base_amount = models.DecimalField(max_digits=19, decimal_places=4, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    available_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer", "kind", "source"], name="loyalty_entry_source_uniq"),
        ]
        indexes = [
            models.Index(fields=["tenant", "account", "created_at"], name="loyalty_entry_account_idx"),
            models.Index(fields=["tenant", "account", "order"], condition=Q(order__isnull=False),
                         name="loyalty_entry_order_idx"),
            # Dashboards: points earned and redeemed in a period.
            models.Index(fields=["tenant", "kind", "created_at"], include=["amount"], name="loyalty_entry_period_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount:+d} ({self.source})"


class PendingRelease(TenantModel):
    """The queue of order points still in their return window: deleted when released.

    A small table the release sweep scans, instead of every earn entry ever written.
    """

    account = TenantForeignKey(LoyaltyAccount, on_delete=models.CASCADE, related_name="+")
    entry = TenantOneToOneField(LedgerEntry, on_delete=models.CASCADE, related_name="+")
    release_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["release_at"], name="loyalty_pending_due_idx")]


class Redemption(TenantModel):
    class State(models.TextChoices):
        ISSUED = "issued", "Code issued"
        AWAITING_STORE = "awaiting_store", "Code sent to the store's webhook, not yet confirmed"

    account = TenantForeignKey(LoyaltyAccount, on_delete=models.CASCADE, related_name="redemptions")
    customer = TenantForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    reward = TenantForeignKey(Reward, on_delete=models.PROTECT, related_name="redemptions")
    entry = TenantOneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="redemption")
    points = models.PositiveIntegerField()
    code = models.CharField(max_length=100)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ISSUED)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="loyalty_redemption_code_uniq")]
        indexes = [models.Index(fields=["tenant", "customer", "created_at"], name="loyalty_redeem_customer_idx")]

    def __str__(self) -> str:
        return f"{self.code} ({self.points} points)"


class RewardCode(TenantModel):
    """A discount code the store uploaded for a pool reward; taken by at most one redemption."""

    reward = TenantForeignKey(Reward, on_delete=models.CASCADE, related_name="codes")
    code = models.CharField(max_length=100)
    redemption = TenantOneToOneField(Redemption, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Given away without points by a journey's discount-code step ("journey-delivery:<id>"): taken as well.
    issued_for = models.CharField(max_length=100, blank=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "reward", "code"], name="loyalty_code_uniq"),
                       models.UniqueConstraint(fields=["tenant", "issued_for"], condition=~Q(issued_for=""),
                                               name="loyalty_code_issued_for_uniq")]
        indexes = [models.Index(fields=["tenant", "reward"], condition=Q(redemption__isnull=True),
                                name="loyalty_code_free_idx")]


class CodeWebhook(TenantModel):
    """A generated code on its way to the store (outbound webhook), kept with its attempts."""

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    redemption = TenantOneToOneField(Redemption, on_delete=models.CASCADE, related_name="webhook")
    url = models.URLField()
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(state="pending"),
                                name="loyalty_webhook_due_idx")]
