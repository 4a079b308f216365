"""Referral programs: a code per advocate, clicks on its link, referrals (click → order →
reward) and the rewards each side receives.

Money is Decimal + ISO 4217 currency. No raw IP address or user agent is stored: clicks
keep HMAC-SHA256 digests (keyed with SECRET_KEY), enough to compare, useless to read.
"""

import datetime as dt
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from lifecycle.citus import TenantForeignKey
from lifecycle.models import MoneyField, validate_currency
from lifecycle.tenancy import TenantModel


class RewardKind(models.TextChoices):
    POINTS = "points"
    DISCOUNT_CODE = "discount_code"
    STORE_CREDIT = "store_credit"


def default_tiers() -> list[dict]:
    # "More after the 3rd and the 10th friend": the advocate reward from that friend on.
    return [{"from_friend": 3, "amount": "15"}, {"from_friend": 10, "amount": "25"}]


class Program(TenantModel):
    """One per store. Amounts are in `currency`; a points reward's amount is whole points."""

    class OfferKind(models.TextChoices):
        PERCENT = "percent"
        AMOUNT = "amount"

    class AutoDecision(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    active = models.BooleanField(default=True)
    store_url = models.URLField(max_length=500, help_text="Where /r/<code> sends the friend (with ?ref=<code>).")
    currency = models.CharField(max_length=3, default="EUR", validators=[validate_currency])
    # The friend's offer: applied by the store at checkout on their first order.
    friend_offer_kind = models.CharField(max_length=16, choices=OfferKind.choices, default=OfferKind.PERCENT)
    friend_offer_value = MoneyField(default=Decimal("10"), validators=[MinValueValidator(0)])
    # Released with the advocate's, after the release delay; amount 0 gives the friend nothing more.
    friend_reward_kind = models.CharField(max_length=16, choices=RewardKind.choices, default=RewardKind.DISCOUNT_CODE)
    friend_reward_amount = MoneyField(default=Decimal("0"), validators=[MinValueValidator(0)])
    advocate_reward_kind = models.CharField(max_length=16, choices=RewardKind.choices,
                                            default=RewardKind.DISCOUNT_CODE)
    advocate_reward_amount = MoneyField(default=Decimal("10"), validators=[MinValueValidator(0)])
    advocate_tiers = models.JSONField(default=default_tiers, blank=True,
                                      help_text='[{"from_friend": 3, "amount": "15"}, …]: the Nth rewarded friend on.')
    new_customers_only = models.BooleanField(default=True)
    min_order_total = MoneyField(default=Decimal("0"), validators=[MinValueValidator(0)])
    # Longer than the store's refund window: a refunded order never pays out.
    release_delay_days = models.PositiveSmallIntegerField(default=30)
    advocate_monthly_cap = models.PositiveSmallIntegerField(default=10, help_text="Rewarded friends per advocate "
                                                            "per calendar month (UTC); 0 = no cap.")
    # Velocity: over these within VELOCITY_WINDOW, a referral waits for review.
    max_clicks_per_ip_per_day = models.PositiveSmallIntegerField(default=20)
    max_conversions_per_advocate_per_day = models.PositiveSmallIntegerField(default=5)
    review_deadline_hours = models.PositiveSmallIntegerField(default=72)
    review_auto_decision = models.CharField(max_length=8, choices=AutoDecision.choices, default=AutoDecision.REJECT)
    # Discount codes and store credit are issued by the store: we POST each reward here.
    reward_webhook_url = models.URLField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="referral_program_tenant_uniq")]

    def __str__(self) -> str:
        return f"Referral program of {self.tenant_id}"

    def advocate_amount(self, nth_friend: int) -> Decimal:
        """The advocate's reward for their nth rewarded friend (1-based), tiers included."""
        amount = self.advocate_reward_amount
        for tier in sorted(self.advocate_tiers or [], key=lambda t: int(t["from_friend"])):
            if nth_friend >= int(tier["from_friend"]):
                amount = Decimal(str(tier["amount"]))
        return amount


class ReferralCode(TenantModel):
    """An advocate's code. Stored upper-case; matched case-insensitively. One generated code
    per customer; vanity codes (set by the store) may be added beside it."""

    customer = TenantForeignKey("lifecycle.Customer", on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=32)
    vanity = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    disabled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "code"], name="referralcode_tenant_code_uniq"),
            models.UniqueConstraint(fields=["tenant", "customer"], condition=Q(vanity=False),
                                    name="referralcode_tenant_customer_uniq"),
        ]

    def __str__(self) -> str:
        return self.code


class Click(TenantModel):
    """One human-looking visit of /r/<code>. Bots and HEAD requests are never recorded."""

    code = TenantForeignKey(ReferralCode, on_delete=models.CASCADE, related_name="clicks")
    at = models.DateTimeField()
    ip_hash = models.CharField(max_length=64)
    device_hash = models.CharField(max_length=64, help_text="HMAC of IP + user agent.")
    # The advocate opened their own link (the signed link in their email): a fraud signal, not a click.
    by_advocate = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "code", "at"], name="referralclick_code_at_idx"),
            models.Index(fields=["tenant", "ip_hash", "at"], name="referralclick_ip_at_idx"),
            # Dashboards: a period's clicks, from the index alone.
            models.Index(fields=["tenant", "at"], include=["by_advocate"], name="referralclick_period_idx"),
        ]


class Invite(TenantModel):
    """A referral-invite email prepared for a customer by a journey step (one per delivery)."""

    customer = TenantForeignKey("lifecycle.Customer", on_delete=models.CASCADE, related_name="+")
    delivery_id = models.BigIntegerField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "delivery_id"], name="referralinvite_delivery_uniq")]


class Referral(TenantModel):
    """A friend's order that carried an advocate's code. One per order.

    review → converted | rejected; converted → rewarded | rejected. Each move is a
    conditional UPDATE on `state`, so a replay or a second worker changes nothing.
    """

    class State(models.TextChoices):
        REVIEW = "review"
        CONVERTED = "converted"
        REWARDED = "rewarded"
        REJECTED = "rejected"

    class Carrier(models.TextChoices):
        DISCOUNT_CODE = "discount_code"
        LANDING_SITE = "landing_site"
        NOTE_ATTRIBUTE = "note_attribute"
        API_FIELD = "api_field"

    code = TenantForeignKey(ReferralCode, on_delete=models.PROTECT, related_name="referrals")
    advocate = TenantForeignKey("lifecycle.Customer", on_delete=models.PROTECT, related_name="+")
    friend = TenantForeignKey("lifecycle.Customer", on_delete=models.PROTECT, related_name="+")
    order = TenantForeignKey("lifecycle.Order", on_delete=models.PROTECT, related_name="+")
    carrier = models.CharField(max_length=16, choices=Carrier.choices)
    state = models.CharField(max_length=16, choices=State.choices)
    reason = models.CharField(max_length=300, blank=True, help_text="Why it was rejected, or why it waits.")
    # Every fraud rule that fired: [{"rule": "self_referral_email", "reason": "…"}].
    flags = models.JSONField(default=list, blank=True)
    order_total = MoneyField()
    currency = models.CharField(max_length=3, validators=[validate_currency])
    converted_at = models.DateTimeField()
    release_at = models.DateTimeField()
    review_deadline = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=150, blank=True, help_text="Who approved or rejected: a user or 'auto'.")
    decided_at = models.DateTimeField(null=True, blank=True)
    rewarded_at = models.DateTimeField(null=True, blank=True)
    rejected_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "order"], name="referral_tenant_order_uniq"),
            # A friend converts once: their first qualifying order.
            models.UniqueConstraint(fields=["tenant", "friend"], condition=~Q(state="rejected"),
                                    name="referral_tenant_friend_live_uniq"),
        ]
        indexes = [
            models.Index(fields=["state", "release_at"], condition=Q(state="converted"), name="referral_due_idx"),
            models.Index(fields=["state", "review_deadline"], condition=Q(state="review"),
                         name="referral_review_idx"),
            models.Index(fields=["tenant", "advocate", "converted_at"], name="referral_advocate_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.code} → order {self.order_id} ({self.state})"


class Reward(TenantModel):
    """What one side of a referral receives, exactly once (unique per referral and side).

    It is also the outbound delivery: points go through loyalty; a discount code or store
    credit is POSTed to the program's reward webhook, with attempts and the last error.
    """

    class Side(models.TextChoices):
        ADVOCATE = "advocate"
        FRIEND = "friend"

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        ISSUED = "issued"
        FAILED = "failed"
        # Over the advocate's monthly cap: recorded, never issued.
        CAPPED = "capped"

    referral = TenantForeignKey(Referral, on_delete=models.PROTECT, related_name="rewards")
    customer = TenantForeignKey("lifecycle.Customer", on_delete=models.PROTECT, related_name="+")
    side = models.CharField(max_length=8, choices=Side.choices)
    kind = models.CharField(max_length=16, choices=RewardKind.choices)
    amount = MoneyField()
    currency = models.CharField(max_length=3, validators=[validate_currency])
    # The discount code we ask the store to create (discount_code rewards).
    code = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "referral", "side"], name="reward_tenant_referral_side_uniq"),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], condition=Q(state__in=["pending", "sending"]),
                                name="reward_retry_idx")]

    def __str__(self) -> str:
        return f"{self.side} {self.kind} {self.amount} ({self.state})"


VELOCITY_WINDOW = dt.timedelta(days=1)
