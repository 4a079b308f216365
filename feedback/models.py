"""Surveys (NPS, CSAT, CES, product reviews, free text), who was asked, what they answered.

A `SurveyRequest` is one question put to one customer (about an order, or one product of
it), usually by a journey's feedback step; its signed link carries the request's id. A
`SurveyResponse` is the answer: one per request (a unique constraint), editable for
`EDIT_WINDOW`. Every POST that tried to answer is kept as an `AnswerAttempt`, so the
scanner defence can be audited. Feedback never imports journeys: a request keeps the
delivery's and journey's ids as plain integers.
"""

import datetime as dt

from django.db import models
from django.db.models import Q

from lifecycle.citus import TenantForeignKey
from lifecycle.models import Customer, Order, Product
from lifecycle.tenancy import TenantModel

# A response may be changed by its customer for this long after they first answered.
EDIT_WINDOW = dt.timedelta(days=7)
# Different scores for one request arriving within this many seconds of each other were not
# chosen by a person (a person clicks one button; a link-checking sandbox "clicks" them all).
BURST_WINDOW = dt.timedelta(seconds=10)


class Survey(TenantModel):
    class Kind(models.TextChoices):
        NPS = "nps", "Net Promoter Score (0–10)"
        CSAT = "csat", "Customer satisfaction (1–5)"
        CES = "ces", "Customer effort (1–7)"
        REVIEW = "review", "Product review (1–5 stars)"
        TEXT = "text", "Free text"

    # The scale of each kind, lowest and highest score. CES asks how much effort it took:
    # 1 is "very little", 7 "a great deal", so a high CES is bad.
    SCALES = {Kind.NPS: (0, 10), Kind.CSAT: (1, 5), Kind.CES: (1, 7), Kind.REVIEW: (1, 5)}
    # (negative when, positive when): detractors NPS ≤ 6, CSAT ≤ 2, CES ≥ 5 (the rule);
    # promoters NPS ≥ 9, satisfied CSAT ≥ 4, easy CES ≤ 3; stars as CSAT.
    CATEGORY_RULES = {
        Kind.NPS: (lambda s: s <= 6, lambda s: s >= 9),
        Kind.CSAT: (lambda s: s <= 2, lambda s: s >= 4),
        Kind.CES: (lambda s: s >= 5, lambda s: s <= 3),
        Kind.REVIEW: (lambda s: s <= 2, lambda s: s >= 4),
    }

    key = models.SlugField(max_length=50, help_text='What a journey step names in its config: {"survey": "nps"}.')
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    question = models.CharField(max_length=300, blank=True, help_text="Blank: the standard question for the kind.")
    follow_up_question = models.CharField(max_length=300, blank=True)
    thank_you_text = models.CharField(max_length=500, blank=True)
    # {"de": {"question": …, "follow_up_question": …, "thank_you_text": …}}
    translations = models.JSONField(default=dict, blank=True)
    # At most one survey per customer per this many days; a throttled step is deferred, never
    # dropped. 0: no throttle. Review requests are never throttled (every buyer is asked).
    throttle_days = models.PositiveSmallIntegerField(default=30)
    alert_email = models.EmailField(blank=True, help_text="Negative answers are sent here (else the store's reply-to).")
    alert_webhook_url = models.URLField(blank=True, help_text="Negative answers are POSTed here as JSON.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="survey_tenant_key_uniq")]

    def __str__(self) -> str:
        return self.name or self.key

    @property
    def scale(self) -> tuple[int, int] | None:
        return self.SCALES.get(self.kind)

    def category(self, score: int | None) -> str:
        rules = self.CATEGORY_RULES.get(self.kind)
        if score is None or rules is None:
            return SurveyResponse.Category.NONE
        negative, positive = rules
        if negative(score):
            return SurveyResponse.Category.NEGATIVE
        if positive(score):
            return SurveyResponse.Category.POSITIVE
        return SurveyResponse.Category.NEUTRAL


class SurveyRequest(TenantModel):
    """One question put to one customer. Its link's token carries this row's id."""

    survey = TenantForeignKey(Survey, on_delete=models.PROTECT, related_name="requests")
    customer = TenantForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    order = TenantForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    product = TenantForeignKey(Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # journeys.Delivery / Journey ids: plain integers, because feedback never imports journeys.
    delivery_id = models.BigIntegerField(null=True, blank=True)
    journey_id = models.BigIntegerField(null=True, blank=True)
    # Why this customer was asked, in words, so "who was asked" can be audited (no review gating).
    asked_because = models.CharField(max_length=300)
    asked_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "delivery_id", "product"],
                                    condition=Q(delivery_id__isnull=False, product__isnull=False),
                                    name="surveyrequest_delivery_product_uniq"),
            models.UniqueConstraint(fields=["tenant", "delivery_id"],
                                    condition=Q(delivery_id__isnull=False, product__isnull=True),
                                    name="surveyrequest_delivery_uniq"),
        ]
        indexes = [
            models.Index(fields=["tenant", "customer", "asked_at"], name="surveyrequest_customer_idx"),
            models.Index(fields=["tenant", "survey", "asked_at"], name="surveyrequest_survey_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.survey} → {self.customer} ({self.asked_because})"


class SurveyResponse(TenantModel):
    """The answer to one request.

    provisional: recorded by a one-click link, settles into final at `settles_at` unless
    different scores for the same request arrive within BURST_WINDOW (then it is removed:
    a scanner clicked every button). final: the answer; follow-ups run once, on finalizing.
    """

    class State(models.TextChoices):
        PROVISIONAL = "provisional"
        FINAL = "final"

    class Category(models.TextChoices):
        NEGATIVE = "negative"
        NEUTRAL = "neutral"
        POSITIVE = "positive"
        NONE = "none"

    request = TenantForeignKey(SurveyRequest, on_delete=models.CASCADE, related_name="responses")
    survey = TenantForeignKey(Survey, on_delete=models.PROTECT, related_name="responses")
    customer = TenantForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    order = TenantForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    product = TenantForeignKey(Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    journey_id = models.BigIntegerField(null=True, blank=True)
    score = models.SmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    category = models.CharField(max_length=8, choices=Category.choices, default=Category.NONE)
    state = models.CharField(max_length=12, choices=State.choices)
    answered_at = models.DateTimeField()
    settles_at = models.DateTimeField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    edits = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "request"], name="surveyresponse_request_uniq")]
        indexes = [
            models.Index(fields=["tenant", "customer", "finalized_at"], name="surveyresponse_customer_idx"),
            models.Index(fields=["tenant", "survey", "answered_at"], name="surveyresponse_survey_idx"),
            models.Index(fields=["settles_at"], condition=Q(state="provisional"), name="surveyresponse_settle_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.survey}: {self.score} ({self.state})"

    @property
    def editable_until(self) -> dt.datetime:
        return self.answered_at + EDIT_WINDOW


class AnswerAttempt(TenantModel):
    """Every POST that tried to answer a request, kept for audit (GETs never write)."""

    class Mode(models.TextChoices):
        AUTO = "auto", "one-click (the page's script)"
        CONFIRM = "confirm", "confirmed by a person (a button)"

    request = TenantForeignKey(SurveyRequest, on_delete=models.CASCADE, related_name="attempts")
    score = models.SmallIntegerField(null=True, blank=True)
    mode = models.CharField(max_length=8, choices=Mode.choices)
    at = models.DateTimeField()
    automated = models.BooleanField(default=False)
    outcome = models.CharField(max_length=200, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "request", "at"], name="answerattempt_request_idx")]


class Review(TenantModel):
    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"

    response = TenantForeignKey(SurveyResponse, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="reviews")
    product = TenantForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    customer = TenantForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    order = TenantForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rating = models.SmallIntegerField()
    title = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    # The product is on one of this customer's orders.
    verified_purchase = models.BooleanField(default=False)
    author_name = models.CharField(max_length=150, blank=True, help_text="As shown on the storefront.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    rejection_reason = models.CharField(max_length=300, blank=True)
    store_reply = models.TextField(blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)
    moderated_at = models.DateTimeField(null=True, blank=True)
    moderated_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "response"], condition=Q(response__isnull=False),
                                    name="review_tenant_response_uniq"),
            models.CheckConstraint(condition=Q(rating__gte=1, rating__lte=5), name="review_rating_1_to_5"),
        ]
        indexes = [models.Index(fields=["tenant", "product", "status", "created_at"], name="review_product_idx")]

    def __str__(self) -> str:
        return f"{self.rating}★ {self.title or self.product}"


class ReviewSettings(TenantModel):
    """One per store (none: every review waits for a person). With moderation off every review is published
    as it arrives; with it on, a review that meets the auto-publish rules is published, the rest wait."""

    moderation = models.BooleanField(default=True)
    # A review of this many stars or more is published without a person; None: no rating publishes alone.
    auto_publish_min_rating = models.PositiveSmallIntegerField(null=True, blank=True)
    # …and only if its title and text carry no web address (links are where spam lives).
    auto_publish_without_links = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="reviewsettings_tenant_uniq"),
            models.CheckConstraint(condition=Q(auto_publish_min_rating__isnull=True)
                                   | Q(auto_publish_min_rating__gte=1, auto_publish_min_rating__lte=5),
                                   name="reviewsettings_rating_1_to_5"),
        ]


class FeedbackAlert(TenantModel):
    """The store's heads-up about a negative answer: email and/or webhook, once per response."""

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"
        SKIPPED = "skipped"

    response = TenantForeignKey(SurveyResponse, on_delete=models.CASCADE, related_name="alerts")
    email_to = models.CharField(max_length=254, blank=True)
    webhook_url = models.URLField(max_length=1000, blank=True)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "response"], name="feedbackalert_response_uniq")]
        indexes = [models.Index(fields=["created_at"], condition=Q(state="pending"), name="feedbackalert_pending_idx")]
