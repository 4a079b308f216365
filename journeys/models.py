"""Journeys: a trigger, then timed steps. The schedule lives here, in PostgreSQL, never in the broker.

A `Delivery` row is one (enrollment, step): the durable schedule and the send ledger at
once. Its unique (enrollment, step) constraint is what "at most one send per step" means.
"""

import datetime as dt
import random
import string

from django.db import models
from django.db.models import Q

from lifecycle.citus import TenantForeignKey, TenantOneToOneField
from lifecycle.models import Customer, Event, Order
from lifecycle.preferences import Category
from lifecycle.tenancy import TenantModel

# A content test's versions: A is the template itself, B to J its `versions`.
VERSION_LABELS = string.ascii_uppercase[:10]


class EmailTemplate(TenantModel):
    """Marketer-written content. `translations` maps a locale ("de", "fr-CA") to the same three fields."""

    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=300)
    preheader = models.CharField(max_length=300, blank=True)
    body = models.TextField(help_text="Markdown-free HTML fragment with {{ placeholders }}.")
    translations = models.JSONField(default=dict, blank=True)
    signature = models.CharField(max_length=200, blank=True, help_text="The team member who signs it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="emailtemplate_tenant_name_uniq")]

    def __str__(self) -> str:
        return self.name

    # A content test (journeys/abtests.py): other versions of this email, [{"subject", "preheader", "body"}], each
    # replacing the fields it sets (in every language). The template itself is version A. Each customer gets one
    # version, the same every time (`version_for`), until one is promoted: then everyone gets it.
    versions = models.JSONField(default=list, blank=True)
    promoted_version = models.CharField(max_length=1, blank=True)

    def version_for(self, step_id: int, customer_id: int) -> str:
        """The version ("A", "B", …) a customer gets at a step: the promoted one, else a seeded pick."""
        if not self.versions:
            return "A"
        if self.promoted_version:
            return self.promoted_version
        return self.version_drawn(step_id, customer_id)

    def version_drawn(self, step_id: int, customer_id: int) -> str:
        """The version the seeded pick gives a customer at a step, promoted or not (what the test counts)."""
        rng = random.Random(f"version:{step_id}:{customer_id}")  # assignment, not security
        return VERSION_LABELS[rng.randrange(len(self.versions) + 1)]

    def version_fields(self, label: str, locale: str) -> dict[str, str]:
        """The fields of one version for a locale: the translation's, with the version's own fields over them."""
        fields = self.variant(locale)
        index = VERSION_LABELS.index(label) if label in VERSION_LABELS else 0
        if 1 <= index <= len(self.versions) and isinstance(self.versions[index - 1], dict):
            own = self.versions[index - 1]
            fields.update({k: own[k] for k in ("subject", "preheader", "body") if isinstance(own.get(k), str) and own[k]})
        return fields

    def variant(self, locale: str) -> dict[str, str]:
        """The best translation for a locale: exact, then language only, then the default."""
        base = {"subject": self.subject, "preheader": self.preheader, "body": self.body}
        for candidate in (locale, locale.split("-")[0] if locale else ""):
            if candidate and candidate in self.translations:
                return {**base, **self.translations[candidate]}
        return base


class Journey(TenantModel):
    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        PAUSED = "paused"
        ARCHIVED = "archived"

    class Trigger(models.TextChoices):
        ORDER_PAID = "order_paid"
        FIRST_ORDER = "first_order"
        REPEAT_ORDER = "repeat_order"
        ORDER_DELIVERED = "order_delivered"
        ORDER_REFUNDED = "order_refunded"
        FEEDBACK_NEGATIVE = "feedback_negative"
        FEEDBACK_POSITIVE = "feedback_positive"
        CUSTOM = "custom"
        # journeys.triggers: a date relative to a customer fact, a customer entering a segment, a
        # support contact (its topic in the event's data). Their settings are in `trigger_config`.
        DATE = "date"
        SEGMENT_ENTERED = "segment_entered"
        SUPPORT_CONTACTED = "support_contacted"

    class EntryPolicy(models.TextChoices):
        ONCE_PER_CUSTOMER = "once_per_customer"
        ONCE_PER_ORDER = "once_per_order"
        COOLDOWN = "cooldown"

    class MessageClass(models.TextChoices):
        MARKETING = "marketing"
        TRANSACTIONAL = "transactional"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    custom_event_type = models.CharField(max_length=100, blank=True)
    # date: {"fact": "birthday" | "order_anniversary" | "days_since_last_order", "days": N};
    # segment_entered: {"segment": id}; support_contacted: {"topics": [...]} (none: any topic).
    trigger_config = models.JSONField(default=dict, blank=True)
    # {"min_total": "50", "max_total": …, "skus": […], "product_ids": […], "min_order_count": 1,
    #  "max_order_count": …, "locales": ["de"], "consent": "required"|"any"}
    filters = models.JSONField(default=dict, blank=True)
    entry_policy = models.CharField(max_length=20, choices=EntryPolicy.choices, default=EntryPolicy.ONCE_PER_ORDER)
    cooldown = models.DurationField(null=True, blank=True)
    replace_running = models.BooleanField(default=False, help_text="A newer order ends the running instance.")
    # Event types that end an enrollment, re-checked before every send: "order.placed" (another
    # order), "order.refunded" / "order.cancelled" (this order), "customer.unsubscribed", custom types.
    exit_events = models.JSONField(default=list, blank=True)
    goal_event = models.CharField(max_length=100, blank=True, default="order.paid")
    attribution_window = models.DurationField(default=dt.timedelta(days=7))
    holdout_percent = models.PositiveSmallIntegerField(default=0)
    message_class = models.CharField(max_length=16, choices=MessageClass.choices, default=MessageClass.MARKETING)
    # What a customer turns off on the preference page; the gate holds back this journey's marketing
    # email from those who did (transactional email is never held back). journeys/categories.py.
    category = models.CharField(max_length=16, choices=Category.choices, default=Category.TIPS)
    priority = models.SmallIntegerField(default=0, help_text="Higher wins when messages compete for the cap.")
    library_key = models.CharField(max_length=64, blank=True, help_text="Set when installed from the library.")
    # The dashboards' outcome buckets (OutcomeBucket) are complete for everything before this
    # instant: enrollments and sends whose attribution window has closed. journeys/rollups.py.
    outcomes_settled_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Sends after outcomes_settled_until, still in their window, as of the last refresh: kind "open"
    # buckets cover [outcomes_settled_until, outcomes_open_until).
    outcomes_open_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="journey_tenant_name_uniq"),
            models.CheckConstraint(condition=Q(holdout_percent__lte=100), name="journey_holdout_percent_lte_100"),
        ]
        indexes = [models.Index(fields=["tenant", "status", "trigger"], name="journey_tenant_status_idx")]

    def __str__(self) -> str:
        return self.name


class Step(TenantModel):
    class WaitKind(models.TextChoices):
        AFTER_PREVIOUS = "after_previous"
        AFTER_ANCHOR = "after_anchor"
        UNTIL_EVENT = "until_event"

    class Anchor(models.TextChoices):
        ENROLLED = "enrolled_at"
        PLACED = "placed_at"
        PAID = "paid_at"
        FULFILLED = "fulfilled_at"
        DELIVERED = "delivered_at"

    class Kind(models.TextChoices):
        EMAIL = "email"
        FEEDBACK_REQUEST = "feedback_request"
        REFERRAL_INVITE = "referral_invite"
        LOYALTY_INVITE = "loyalty_invite"
        AWARD_POINTS = "award_points"
        WEBHOOK = "webhook"
        CONDITION = "condition"
        AB_SPLIT = "ab_split"
        DISCOUNT_CODE = "discount_code"
        CHECK_IN = "check_in"
        COMMUNITY_INVITE = "community_invite"

    journey = TenantForeignKey(Journey, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200, blank=True)
    wait_kind = models.CharField(max_length=16, choices=WaitKind.choices, default=WaitKind.AFTER_PREVIOUS)
    wait = models.DurationField(default=dt.timedelta(0))
    anchor = models.CharField(max_length=16, choices=Anchor.choices, blank=True)
    wait_event = models.CharField(max_length=100, blank=True)
    # For anchors that have not happened yet and events that never come: give up after this long.
    wait_max = models.DurationField(null=True, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.EMAIL)
    template = TenantForeignKey(EmailTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    config = models.JSONField(default=dict, blank=True)
    # The journey graph (journeys.graph): what a step that does not branch leads to. Neither set: the
    # next step by position (a linear journey, as every journey was before graphs); `next_position`: that
    # step; `ends`: the journey ends after it. Condition and A/B steps branch through their config.
    next_position = models.PositiveSmallIntegerField(null=True, blank=True)
    ends = models.BooleanField(default=False)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "journey", "position"], name="step_journey_position_uniq"),
            models.CheckConstraint(condition=Q(next_position__isnull=True) | Q(ends=False),
                                   name="step_next_or_ends"),
        ]

    def __str__(self) -> str:
        return f"{self.journey.name} #{self.position} {self.kind}"


class Enrollment(TenantModel):
    """A customer's pass through a journey, or the record of why they were not let in."""

    class State(models.TextChoices):
        ACTIVE = "active"
        COMPLETED = "completed"
        EXITED = "exited"
        HOLDOUT = "holdout"
        REJECTED = "rejected"

    # An enrollment's state changes when it ends (each of its index entries written again): no index of
    # its own for tenant, journey or customer, which lead the composite indexes below, all per tenant.
    tenant = models.ForeignKey("lifecycle.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    journey = TenantForeignKey(Journey, on_delete=models.CASCADE, related_name="enrollments", db_index=False)
    customer = TenantForeignKey(Customer, on_delete=models.CASCADE, related_name="enrollments", db_index=False)
    order = TenantForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    trigger_event = TenantForeignKey(Event, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices)
    reason = models.CharField(max_length=300, blank=True)
    enrolled_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One decision per (journey, trigger event): handling an event twice is a no-op.
            models.UniqueConstraint(fields=["tenant", "journey", "trigger_event"], name="enrollment_journey_event_uniq"),
        ]
        indexes = [
            models.Index(fields=["tenant", "journey", "customer", "state"], name="enrollment_customer_idx"),
            models.Index(fields=["tenant", "customer", "state"], name="enrollment_active_idx"),
            # Dashboards: a journey's enrollments of a period, for its funnel and its lift.
            models.Index(fields=["tenant", "journey", "enrolled_at"], include=["state", "customer", "id"],
                         name="enrollment_period_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer} in {self.journey} ({self.state})"


class Delivery(TenantModel):
    class State(models.TextChoices):
        WAITING = "waiting"  # for an anchor or an event; due_at unknown yet
        PENDING = "pending"
        DEFERRED = "deferred"  # quiet hours or the frequency cap: due again at due_at
        CLAIMED = "claimed"
        SENDING = "sending"
        SENT = "sent"
        SKIPPED = "skipped"
        FAILED = "failed"
        # Handed to an ESP without an idempotency key, then the worker died before recording
        # the answer: maybe sent, maybe not. Never resent silently; shown for a person to decide.
        AMBIGUOUS = "ambiguous"

    CLAIMABLE = (State.PENDING, State.DEFERRED)
    FINAL = (State.SENT, State.SKIPPED, State.FAILED, State.AMBIGUOUS)

    # Every state change rewrites the row and adds an entry to each of the table's indexes (state is in
    # the partial indexes' predicates, so no update is HOT): 500 rows sent touch 500 random pages of
    # every index (the claim itself writes only DueDelivery, below). So no index of its own for tenant, enrollment, customer or journey: the
    # unique (tenant, enrollment, step), (tenant, customer, sent_at) and (tenant, journey, sent_at)
    # serve every lookup by them (all are per tenant; by journey only sent emails are read), and
    # deliveries are never deleted by customer, enrollment or journey (erasure anonymizes; journeys
    # are archived, never deleted). A step's own index stays: removing a step checks its history.
    tenant = models.ForeignKey("lifecycle.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    enrollment = TenantForeignKey(Enrollment, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    step = TenantForeignKey(Step, on_delete=models.CASCADE, related_name="deliveries")
    journey = TenantForeignKey(Journey, on_delete=models.CASCADE, related_name="+", db_index=False)
    customer = TenantForeignKey(Customer, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    message_class = models.CharField(max_length=16, choices=Journey.MessageClass.choices)
    priority = models.SmallIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    reason = models.CharField(max_length=300, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    waiting_for = models.CharField(max_length=100, blank=True)
    wait_deadline = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    esp_message_id = models.CharField(max_length=255, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Engagement heard back from the ESP.
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)
    # Every skip, defer and retry with its reason, oldest first: [{"at", "state", "reason"}].
    history = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "enrollment", "step"], name="delivery_enrollment_step_uniq"),
        ]
        indexes = [
            models.Index(fields=["lease_until"], condition=Q(state__in=["claimed", "sending"]),
                         name="delivery_lease_idx"),
            models.Index(fields=["tenant", "customer", "sent_at"], name="delivery_customer_sent_idx"),
            models.Index(fields=["esp_message_id"], condition=~Q(esp_message_id=""), name="delivery_esp_id_idx"),
            models.Index(fields=["tenant", "enrollment", "waiting_for"], condition=Q(state="waiting"),
                         name="delivery_waiting_idx"),
            # Dashboards: a journey's emails sent in a period, for its funnel per step.
            models.Index(fields=["tenant", "journey", "sent_at"], condition=Q(sent_at__isnull=False),
                         name="delivery_journey_sent_idx"),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.step} → {self.customer} ({self.state})"


class DueDelivery(TenantModel):
    """The dispatcher's queue: one narrow row per delivery that may be claimed (pending or deferred), with
    its due time, and the claim's lease while a send task has it (PostgreSQL only; the embedded SQLite
    profile claims on the delivery row itself, journeys/schedule.py).

    Why a table of its own: a claim written on the wide delivery row changed `state`, which the partial
    indexes name, so no claim was a HOT update and each of 500 claimed rows added an entry to every big
    index of a 10 M-row table (pages read, dirtied and evicted through a small buffer pool: 37-47 ms a
    claim, bench/claim). A claim now writes 500 rows of about 50 bytes here, in a table the size of the
    backlog, and leaves the delivery 'pending' until the send task takes it (`deliveries_begin_sending`).
    Other ways were weighed: a HOT claim on the wide row needs every index there to stay clear of `state`
    and `lease_until`, and its claimed rows would stay in the due index, scanned again by every claim
    until they are sent.

    Kept right by PostgreSQL itself, not by the code paths that write deliveries (migration
    0010_due_delivery_queue): a trigger after every INSERT into journeys_delivery (one statement for a
    bulk insert) adds the rows that are pending or deferred with a due time; a row trigger after any
    UPDATE that changes a delivery's state or due_at adds, moves (clearing a lease) or removes its row.
    So `schedule_step`, a bulk_create of `step_delivery` rows, a released wait, an exit, a defer, a retry
    and the reclaim all keep it true without calling anything. Leases are the only thing the code
    writes here: the claim sets them, the reclaim clears expired ones, the send task deletes them."""

    delivery = TenantOneToOneField(Delivery, primary_key=True, on_delete=models.CASCADE, related_name="+")
    # Read to group a claim by tenant; never looked up by, so no index of its own.
    tenant = models.ForeignKey("lifecycle.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    due_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The claim: unleased rows by due time.
            models.Index(fields=["due_at"], condition=Q(lease_until__isnull=True), name="duedelivery_due_idx"),
            # The reclaim (expired leases) and the count of rows claimed and waiting for a send task.
            models.Index(fields=["lease_until"], condition=Q(lease_until__isnull=False),
                         name="duedelivery_lease_idx"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.delivery_id} due {self.due_at:%Y-%m-%d %H:%M}"


class OutcomeBucket(TenantModel):
    """What a journey's enrollments or sends of one quarter hour came to, once their window closed.

    The dashboards add these up instead of joining every enrollment and email of a period to the
    store's orders (journeys/rollups.py settles them; workspace/metrics_journeys.py reads
    them). A quarter hour because every time zone's day starts on one, so a period of whole days in
    the store's zone is a whole number of buckets.

    kind "lift": enrollments by `enrolled_at`, `held` for the holdout group, step empty.
    kind "step": emails sent by `sent_at`, per step, `held` false, with their engagement.
    kind "open": the same for emails still in their window, recomputed by beat every few minutes
    (replaced wholesale), so a funnel's last attribution window is at most that old.
    Revenue is net of refunds as it stood when the window closed, in the store's currency.
    """

    class Kind(models.TextChoices):
        LIFT = "lift"
        STEP = "step"
        OPEN = "open"

    journey = TenantForeignKey(Journey, on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    step = TenantForeignKey(Step, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False)
    bucket = models.DateTimeField()
    held = models.BooleanField(default=False)
    count = models.PositiveIntegerField(default=0)
    converted = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=16, decimal_places=2, default=0)
    revenue_squares = models.DecimalField(max_digits=30, decimal_places=4, default=0)
    delivered = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    clicked = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    complained = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "journey", "bucket", "held"], condition=Q(kind="lift"),
                                    name="outcomebucket_lift_uniq"),
            models.UniqueConstraint(fields=["tenant", "journey", "step", "bucket"], condition=Q(kind="step"),
                                    name="outcomebucket_step_uniq"),
            models.UniqueConstraint(fields=["tenant", "journey", "step", "bucket"], condition=Q(kind="open"),
                                    name="outcomebucket_open_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.journey_id} {self.kind} {self.bucket:%Y-%m-%d %H:%M}"


class Segment(TenantModel):
    """A saved audience: the customers the rules select (journeys.rules, the conditions' vocabulary).

    Counted and sampled live (journeys.segments); `SegmentMember` keeps who was in it at the last
    refresh, so that entering it can start a journey."""

    name = models.CharField(max_length=200)
    description = models.CharField(max_length=500, blank=True)
    builtin = models.CharField(max_length=32, blank=True, help_text="The built-in it was installed from.")
    match = models.CharField(max_length=3, choices=[("all", "all"), ("any", "any")], default="all")
    rules = models.JSONField(default=list)
    # The first refresh records who is in it without starting anything: a segment made today does not
    # "enter" every customer it already holds.
    refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="segment_tenant_name_uniq")]

    def __str__(self) -> str:
        return self.name


class SegmentMember(TenantModel):
    tenant = models.ForeignKey("lifecycle.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    segment = TenantForeignKey(Segment, on_delete=models.CASCADE, related_name="members", db_index=False)
    customer = TenantForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    entered_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "segment", "customer"],
                                               name="segmentmember_uniq")]


class AbTest(TenantModel):
    """What an A/B split (or an email step's content test) is testing for, when it stops, and the arm it
    promoted (journeys/abtests.py).

    One per split step (or email step with versions), made when the marketer first sets its goal. The arms are the split's variants,
    each named by the step it starts at (`winner` points at that step, so moving steps keeps it).
    Promoting sends every customer who reaches the split from then on down the winner's arm; customers
    already in an arm finish it. A split without a row is still an A/B test: goal and rule by default."""

    class Goal(models.TextChoices):
        ORDER = "order", "placed an order"
        CLICK = "click", "clicked the arm's email"

    class Rule(models.TextChoices):
        SAMPLE = "sample", "a fixed number of customers in each arm"
        SIGNIFICANCE = "significance", "a significant difference, after a minimum number in each arm"

    journey = TenantForeignKey(Journey, on_delete=models.CASCADE, related_name="+", db_index=False)
    step = TenantForeignKey(Step, on_delete=models.CASCADE, related_name="+", db_index=False)
    goal = models.CharField(max_length=16, choices=Goal.choices, default=Goal.ORDER)
    window = models.DurationField(default=dt.timedelta(days=7), help_text="How long after the split a goal counts.")
    rule = models.CharField(max_length=16, choices=Rule.choices, default=Rule.SIGNIFICANCE)
    sample_size = models.PositiveIntegerField(default=1000)
    min_sample = models.PositiveIntegerField(default=100)
    confidence = models.PositiveSmallIntegerField(default=95, help_text="Percent: 90, 95 or 99.")
    auto_promote = models.BooleanField(default=False)
    winner = TenantForeignKey(Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               db_index=False)
    # A content test (an email step whose template has versions): the promoted version's label, and when the
    # test (re)started: changing the versions restarts it, so only emails sent since count.
    winner_version = models.CharField(max_length=1, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    promoted_by = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "step"], name="abtest_tenant_step_uniq"),
            models.CheckConstraint(condition=Q(confidence__in=[90, 95, 99]), name="abtest_confidence_choices"),
        ]
        indexes = [
            # The auto-promote sweep: the undecided tests of every store that asked for it.
            models.Index(fields=["tenant", "journey"], condition=Q(auto_promote=True, promoted_at__isnull=True),
                         name="abtest_auto_idx"),
        ]

    def __str__(self) -> str:
        return f"A/B test at step {self.step_id}"


class WebhookSecret(TenantModel):
    """The store's secret for signing its journeys' outbound webhooks (journeys/webhooks.py).

    Encrypted, not hashed: we must read it back to sign (lifecycle/crypto.py, keys from the environment).
    Shown once, when made; a rotation keeps the previous one signing beside it for a grace period, so a
    receiver can switch without dropping a call."""

    secret_encrypted = models.TextField()
    previous_secret_encrypted = models.TextField(blank=True)
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="webhooksecret_tenant_uniq")]

    def __str__(self) -> str:
        return f"webhook secret of tenant {self.tenant_id}"


class WebhookCall(TenantModel):
    """One webhook step's POST for one delivery: the outbox row, its fixed body and idempotency key, retried
    with backoff until `give_up_at` (Saleor's EventDelivery). Its attempts are `WebhookAttempt` rows."""

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    delivery = TenantOneToOneField(Delivery, on_delete=models.CASCADE, related_name="webhook_call")
    journey = TenantForeignKey(Journey, on_delete=models.CASCADE, related_name="+", db_index=False)
    step = TenantForeignKey(Step, on_delete=models.CASCADE, related_name="+", db_index=False)
    customer = TenantForeignKey(Customer, on_delete=models.CASCADE, related_name="+", db_index=False)
    idempotency_key = models.CharField(max_length=100)
    url = models.URLField(max_length=2000)
    # The exact bytes POSTed on every attempt: a retry sends the same body (only the signature's time changes).
    body = models.TextField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # Held by the worker POSTing it; past it the worker died mid-call and the sweep tries again (same key).
    lease_until = models.DateTimeField(null=True, blank=True)
    give_up_at = models.DateTimeField()
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "idempotency_key"], name="webhookcall_key_uniq")]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(state="pending"), name="webhookcall_due_idx"),
            models.Index(fields=["tenant", "customer", "created_at"], name="webhookcall_customer_idx"),
            models.Index(fields=["tenant", "step", "created_at"], name="webhookcall_step_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key} → {self.url} ({self.state})"


class WebhookAttempt(TenantModel):
    """One POST of a webhook call: what came back, how long it took, or why it did not."""

    call = TenantForeignKey(WebhookCall, on_delete=models.CASCADE, related_name="attempt_rows", db_index=False)
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    response_snippet = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "call", "number"], name="webhookattempt_call_idx")]

    def __str__(self) -> str:
        return f"attempt {self.number} of call {self.call_id}: {self.status_code or self.error}"


class EnrollmentVariable(TenantModel):
    """A value a step made for the rest of its enrollment (a discount step's code): the later emails'
    templates read it as {{ discount_code }}. One per (delivery, name): a step run twice makes it once."""

    enrollment = TenantForeignKey(Enrollment, on_delete=models.CASCADE, related_name="+", db_index=False)
    delivery = TenantForeignKey(Delivery, on_delete=models.CASCADE, related_name="+", db_index=False)
    name = models.CharField(max_length=50)
    value = models.CharField(max_length=200)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "delivery", "name"], name="enrollmentvar_uniq")]
        indexes = [models.Index(fields=["tenant", "enrollment"], name="enrollmentvar_enrollment_idx")]

    def __str__(self) -> str:
        return f"{self.name}={self.value}"
