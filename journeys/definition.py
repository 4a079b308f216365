"""Journeys as code: the JSON a journey is exported to and imported from, validated once.

The API (POST /api/v1/journeys), `manage.py import_journey` and the built-in library
(journeys/library/*.json) all go through `JourneyIn`, so a mistake gets the same message
with the same path (`steps.2.template.body`) wherever it was made. Paths count list items
from 0 (pydantic's convention); step *positions* — what branches point at — are the
numbers written in each step's `position`.
"""

import datetime as dt
import json
import re
import urllib.parse
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from lifecycle.inputs import EVENT_TYPE_PATTERN, Money

from .durations import format_duration, parse_duration
from .graph import loop_problem
from .rules import MAX_RULES, RULE_FIELDS, RuleIn, RuleParts
from .template_checks import syntax_problem, template_problems

TriggerIn = Literal["order_paid", "first_order", "repeat_order", "order_delivered", "order_refunded",
                    "feedback_negative", "feedback_positive", "custom", "date", "segment_entered",
                    "support_contacted"]
StatusIn = Literal["draft", "active", "paused", "archived"]
EntryPolicyIn = Literal["once_per_customer", "once_per_order", "cooldown"]
MessageClassIn = Literal["marketing", "transactional"]
CategoryIn = Literal["tips", "reviews", "offers", "loyalty"]  # lifecycle.preferences.Category
WaitKindIn = Literal["after_previous", "after_anchor", "until_event"]
ANCHORS = ("enrolled_at", "placed_at", "paid_at", "fulfilled_at", "delivered_at")
# Step kinds the engine runs. The model knows one more, `loyalty_invite`: the engine has nothing to do
# for it yet, so it is refused rather than accepted and silently skipped.
KindIn = Literal["email", "feedback_request", "referral_invite", "award_points", "condition", "ab_split",
                 "webhook", "discount_code", "check_in", "community_invite"]
UNAVAILABLE_KINDS = {"loyalty_invite": "a loyalty invite step"}


def unavailable_kind_problem(kind: str) -> str | None:
    """Why a step kind the model knows cannot be used (yet), or None."""
    if kind in UNAVAILABLE_KINDS:
        return (f"'{kind}' is not available yet: {UNAVAILABLE_KINDS[kind]} would be accepted and then do nothing. "
                "Use an email step, or leave it out")
    return None


def _available_kind(value: Any) -> Any:
    problem = unavailable_kind_problem(value) if isinstance(value, str) else None
    if problem:
        raise ValueError(problem)
    return value

# Event types the platform records itself. Names under these prefixes are a closed set, so a
# misspelt exit event ("order.refund") is caught here instead of silently never matching.
PLATFORM_EVENTS = {
    "order.placed", "order.paid", "order.fulfilled", "order.delivered", "order.cancelled", "order.refunded",
    "customer.created", "customer.unsubscribed", "customer.suppressed", "customer.erased",
    "customer.preferences_changed",
}
CLOSED_EVENT_PREFIXES = ("order.", "customer.")
# What a condition step may test (journeys.rules), and the type of its value.
CONDITION_FIELDS = RULE_FIELDS
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
LOCALE_HINT = "is not a locale: use a language code such as de, or with a region such as fr-CA"
MAX_STEPS = 50
_MONEY = TypeAdapter(Money)


def _quoted(values) -> str:
    values = [f"'{v}'" for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def _duration(value: Any) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 duration string such as P3D (3 days), PT2H (2 hours) or PT90S")
    text = value.strip().upper()
    date_part = text.split("T", 1)[0]
    if re.search(r"\d+[MY]", date_part):
        raise ValueError(f"{value!r} uses months or years, which have no fixed length; "
                         "write days instead, such as P30D")
    return parse_duration(value)


# An ISO 8601 duration: weeks, days, hours, minutes, seconds (P3D, PT2H, P1DT12H, PT90S).
Duration = Annotated[
    dt.timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "examples": ["P3D", "PT2H"],
                    "description": "ISO 8601 duration: weeks, days, hours, minutes, seconds (no months or years)."}),
]


def event_name_problem(name: str) -> str | None:
    """Why an event type can never happen, or None when it can."""
    if not re.match(EVENT_TYPE_PATTERN, name):
        return f"{name!r} is not an event type: use a dotted lower-case name such as order.refunded or support.contacted"
    if name.startswith(CLOSED_EVENT_PREFIXES) and name not in PLATFORM_EVENTS:
        family = name.split(".")[0] + "."
        return f"{name!r} is not an event we record; use {_quoted(sorted(e for e in PLATFORM_EVENTS if e.startswith(family)))}"
    return None


def _event_name(value: str) -> str:
    problem = event_name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


EventName = Annotated[str, Field(max_length=100, examples=["order.refunded"])]


def _fail(errors: list[tuple[tuple[str | int, ...], str]], title: str) -> None:
    """Raise every problem at its exact location (pydantic prefixes the model's own path)."""
    if errors:
        errors = sorted(errors, key=lambda e: tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in e[0]))
        raise ValidationError.from_exception_data(title, [
            InitErrorDetails(type=PydanticCustomError("journey_invalid", "{message}", {"message": message}),
                             loc=loc, input=None)
            for loc, message in errors
        ])


def plain_value(value: Any) -> Any:
    """JSON-ready: numbers read as Decimal (the API never goes through float) become int or float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_value(item) for item in value]
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- templates ------------------------------------------------------------------------


def _compile_check(value: str | None) -> str | None:
    problem = syntax_problem(value) if value else None
    if problem:
        raise ValueError(problem)
    return value


class TranslationIn(Strict):
    """Any of the three fields for one locale; what is left out comes from the default text."""

    subject: str | None = Field(default=None, min_length=1, max_length=300)
    preheader: str | None = Field(default=None, max_length=300)
    body: str | None = Field(default=None, min_length=1, max_length=100_000)

    @field_validator("subject", "preheader", "body")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return _compile_check(value)


class TemplateIn(Strict):
    name: str | None = Field(
        default=None, max_length=200,
        description="Unique in the store. Defaults to '<journey name> · step <position>'.")
    subject: str = Field(min_length=1, max_length=300, examples=["How are you getting on, {{ first_name }}?"])
    preheader: str = Field(default="", max_length=300)
    body: str = Field(min_length=1, max_length=100_000,
                      description="An HTML fragment with {{ placeholders }}: first_name, customer.*, store.*, "
                                  "order.number, order.total, order.items, order.item_titles, unsubscribe_url.")
    signature: str = Field(default="", max_length=200, examples=["Mia, customer care"],
                           description="The team member who signs it.")
    translations: dict[str, TranslationIn] = Field(
        default_factory=dict, description='By locale ("de", "fr-CA"): subject, preheader and/or body.')
    versions: list[TranslationIn] = Field(
        default_factory=list, max_length=9,
        description="A content test: versions B, C… of this email (subject, preheader and/or body; what is left "
                    "out is version A's). Each customer gets one version; journeys/abtests.py compares them.")

    @field_validator("translations")
    @classmethod
    def _locales(cls, value: dict[str, TranslationIn]) -> dict[str, TranslationIn]:
        _fail([((locale,), LOCALE_HINT) for locale in value if not re.match(LOCALE_PATTERN, locale)], "TemplateIn")
        return value

    @field_validator("subject", "preheader", "body")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return _compile_check(value)


# --- step configuration, by kind -----------------------------------------------------


class EmailConfigIn(Strict):
    first_name_fallback: str = Field(default="there", max_length=50,
                                     description="Used for {{ first_name }} when the customer has none.")


ArmTarget = Annotated[int, Field(ge=1)] | Literal["end"] | None


class ConditionConfigIn(RuleParts):
    """A yes/no split: one rule (field, op, value and its qualifiers, journeys.rules), or `all` / `any` of
    several. `then` / `else`: the step a customer goes to when it holds / does not ("end" or left out:
    the journey ends)."""

    all: list[RuleIn] | None = Field(default=None, min_length=1, max_length=MAX_RULES)
    any: list[RuleIn] | None = Field(default=None, min_length=1, max_length=MAX_RULES)
    then: ArmTarget = None
    else_: ArmTarget = Field(default=None, alias="else")

    @model_validator(mode="after")
    def _one_test(self) -> "ConditionConfigIn":
        given = [name for name in ("field", "all", "any") if getattr(self, name) is not None]
        if len(given) != 1:
            _fail([((given[1] if len(given) > 1 else "field",),
                    "give one rule (field, op, value) or a list of rules under 'all' or 'any'")], "ConditionConfigIn")
        return self

    def rules(self) -> list[RuleIn]:
        return [RuleIn.model_validate(self.model_dump(include=set(RuleIn.model_fields)))] if self.field else (
            self.all or self.any or [])


class VariantIn(Strict):
    step: int = Field(ge=1, description="The position of the step this variant goes to.")
    weight: int = Field(default=1, ge=1, le=1000)


class AbSplitConfigIn(Strict):
    """Each customer gets exactly one variant's steps: a variant runs from its step up to the next variant's
    step; past it the customer goes on at `then`. Without `then`, every variant is its one step and the
    customer goes on at the step after the last variant's (or the journey ends)."""

    variants: list[VariantIn] = Field(min_length=2, max_length=10)
    then: int | None = Field(default=None, ge=1, description="The position where the variants meet again.")

    @model_validator(mode="after")
    def _then_after_variants(self) -> "AbSplitConfigIn":
        steps = [v.step for v in self.variants]
        errors: list[tuple[tuple[str | int, ...], str]] = []
        seen: dict[int, int] = {}
        for i, step in enumerate(steps):
            if step in seen:
                errors.append((("variants", i, "step"), f"is also variants.{seen[step]}'s step: each variant "
                                                          "needs a step of its own"))
            seen.setdefault(step, i)
        if self.then is not None and self.then <= max(steps):
            errors.append((("then",), f"must be after every variant's step (the last is {max(steps)})"))
        _fail(errors, "AbSplitConfigIn")
        return self


def _outbound_url(value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be a full http(s) address, such as https://example.com/hooks/lifecycle")
    if parts.username or parts.password:
        raise ValueError("must not carry a user name or password: the call is signed instead "
                         "(X-Lifecycle-Signature)")
    return value


OutboundUrl = Annotated[str, Field(min_length=1, max_length=2000, examples=["https://example.com/hooks/lifecycle"]),
                        AfterValidator(_outbound_url)]
# A webhook step's own data, sent as the payload's `data`: a few values the receiver needs (a template
# name for the SMS, a Slack channel), not a document.
MAX_WEBHOOK_DATA_CHARS = 4000


class WebhookConfigIn(Strict):
    """A signed JSON POST to the store's system (journeys/webhooks.py; the payload in README)."""

    url: OutboundUrl
    data: dict[str, Any] = Field(default_factory=dict, description="Sent as the payload's `data`, as written.")

    @field_validator("data")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(plain_value(value), default=str))
        if size > MAX_WEBHOOK_DATA_CHARS:
            raise ValueError(f"is {size} characters as JSON; keep it under {MAX_WEBHOOK_DATA_CHARS}")
        return value


class DiscountCodeConfigIn(Strict):
    """A unique code for the customer, for the emails after it ({{ discount_code }}): from a loyalty reward's
    pool of uploaded codes (`pool`: the reward's name), or from the store's webhook (`url`, answering
    {"code": "…"})."""

    source: Literal["pool", "webhook"] = "pool"
    pool: str | None = Field(default=None, min_length=1, max_length=200,
                             description="The name of a loyalty reward whose codes come from a pool.")
    url: OutboundUrl | None = None

    @model_validator(mode="after")
    def _source_named(self) -> "DiscountCodeConfigIn":
        errors: list[tuple[tuple[str | int, ...], str]] = []
        if self.source == "pool" and not self.pool:
            errors.append((("pool",), "is required when source is 'pool': the name of a reward with uploaded codes"))
        if self.source == "webhook" and not self.url:
            errors.append((("url",), "is required when source is 'webhook': the address that answers "
                                     '{"code": "…"}'))
        if self.source == "pool" and self.url:
            errors.append((("url",), "is only used when source is 'webhook'"))
        if self.source == "webhook" and self.pool:
            errors.append((("pool",), "is only used when source is 'pool'"))
        _fail(errors, "DiscountCodeConfigIn")
        return self


class CheckInConfigIn(EmailConfigIn):
    """An email signed by a team member: From shows their name, Reply-To is their address."""

    signer: str = Field(min_length=3, max_length=254, examples=["mia@acme.example"],
                        description="The email address of a member of the store's team.")

    @field_validator("signer")
    @classmethod
    def _address(cls, value: str) -> str:
        if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
            raise ValueError("must be a team member's email address, such as mia@acme.example")
        return value.lower()


class CommunityInviteConfigIn(EmailConfigIn):
    """An email inviting the customer to the store's community: {{ community_url }} is its link."""

    url: OutboundUrl


CONFIG_MODELS: dict[str, type[BaseModel]] = {"email": EmailConfigIn, "condition": ConditionConfigIn,
                                             "ab_split": AbSplitConfigIn, "webhook": WebhookConfigIn,
                                             "discount_code": DiscountCodeConfigIn, "check_in": CheckInConfigIn,
                                             "community_invite": CommunityInviteConfigIn}
SENDS_NOTHING = ("condition", "ab_split", "webhook", "discount_code")
NEEDS_TEMPLATE = ("email", "feedback_request", "check_in", "community_invite")


# --- steps and journeys ---------------------------------------------------------------


class StepIn(Strict):
    position: int = Field(ge=1, le=32767, description="Steps run in position order; branches point at positions.")
    name: str = Field(default="", max_length=200)
    wait_kind: WaitKindIn = Field(
        default="after_previous",
        description="after_previous: `wait` after the previous step; after_anchor: `wait` after the order's "
                    "`anchor` time; until_event: until `wait_event` happens, at most `wait_max` (or `wait`).")
    wait: Duration = dt.timedelta(0)
    anchor: Annotated[str, WithJsonSchema({"type": "string", "enum": ["", *ANCHORS]})] = Field(
        default="", validate_default=True, description="The order time an after_anchor wait counts from.")
    wait_event: EventName = Field(default="", validate_default=True)
    wait_max: Duration | None = Field(default=None, validate_default=True,
                                      description="Give up waiting for the anchor or event after this long.")
    kind: Annotated[KindIn, BeforeValidator(_available_kind)] = "email"
    config: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    template: TemplateIn | None = Field(default=None, validate_default=True)
    next: ArmTarget = Field(
        default=None, description='What comes after this step: a position, or "end". Left out: the next step by '
                                  "position. Condition and A/B steps branch through their config instead.")

    @field_validator("next")
    @classmethod
    def _next(cls, value: int | str | None, info: ValidationInfo) -> int | str | None:
        kind = info.data.get("kind")
        if value is not None and kind in SENDS_NOTHING:
            where = "then and else" if kind == "condition" else "each variant's step"
            raise ValueError(f"must be left out: a {kind} step goes on through its config's {where}")
        return value

    @field_validator("anchor")
    @classmethod
    def _anchor(cls, value: str, info: ValidationInfo) -> str:
        wait_kind = info.data.get("wait_kind")
        if value and value not in ANCHORS:
            raise ValueError(f"must be one of {_quoted(ANCHORS)}")
        if wait_kind == "after_anchor" and not value:
            raise ValueError(f"is required when wait_kind is 'after_anchor': one of {_quoted(ANCHORS)}")
        if wait_kind and wait_kind != "after_anchor" and value:
            raise ValueError(f"is only used when wait_kind is 'after_anchor' (this step's is '{wait_kind}')")
        return value

    @field_validator("wait_event")
    @classmethod
    def _wait_event(cls, value: str, info: ValidationInfo) -> str:
        wait_kind = info.data.get("wait_kind")
        if wait_kind == "until_event" and not value:
            raise ValueError("is required when wait_kind is 'until_event': the event type to wait for, "
                             "such as support.resolved")
        if wait_kind and wait_kind != "until_event" and value:
            raise ValueError(f"is only used when wait_kind is 'until_event' (this step's is '{wait_kind}')")
        return _event_name(value) if value else value

    @field_validator("wait_max")
    @classmethod
    def _wait_max(cls, value: dt.timedelta | None, info: ValidationInfo) -> dt.timedelta | None:
        wait_kind = info.data.get("wait_kind")
        if value is not None and wait_kind == "after_previous":
            raise ValueError("is only used when wait_kind is 'after_anchor' or 'until_event'")
        if value is not None and value <= dt.timedelta(0):
            raise ValueError("must be longer than zero")
        if wait_kind == "until_event" and value is None and "wait" in info.data and not info.data["wait"]:
            raise ValueError("is required when wait_kind is 'until_event' (or set wait): how long to wait for "
                             "the event at most, such as P7D")
        return value

    @field_validator("config")
    @classmethod
    def _config(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        model = CONFIG_MODELS.get(info.data.get("kind", ""))
        if model is None:
            return plain_value(value)  # a kind whose feature app defines its settings
        parsed = model.model_validate(value)
        return plain_value(parsed.model_dump(mode="json", by_alias=True, exclude_unset=True))

    @field_validator("template")
    @classmethod
    def _template(cls, value: TemplateIn | None, info: ValidationInfo) -> TemplateIn | None:
        kind = info.data.get("kind")
        if kind in NEEDS_TEMPLATE and value is None:
            raise ValueError(f"is required for {'an email' if kind == 'email' else 'a ' + kind} step: "
                             "give it a subject and a body")
        if kind in SENDS_NOTHING and value is not None:
            raise ValueError(f"must be left out: {kind} steps send nothing")
        if value is not None:
            # It compiles (TemplateIn checked); now its placeholders, against what this kind of step gets.
            sources: list[tuple[tuple[str | int, ...], str | None]] = [
                ((field,), getattr(value, field)) for field in ("subject", "preheader", "body")]
            for locale, translation in value.translations.items():
                sources += [(("translations", locale, field), getattr(translation, field))
                            for field in ("subject", "preheader", "body")]
            _fail([(loc, "; ".join(problems)) for loc, source in sources
                   if source and (problems := template_problems(source, kind=kind or "email"))], "TemplateIn")
        return value

    def targets(self) -> list[tuple[tuple[str | int, ...], int]]:
        """The positions this step branches to, with where each is written."""
        if self.kind == "condition":
            return [(("config", key), self.config[key]) for key in ("then", "else")
                    if isinstance(self.config.get(key), int)]
        if self.kind == "ab_split":
            then = [(("config", "then"), self.config["then"])] if self.config.get("then") is not None else []
            return [(("config", "variants", i, "step"), v["step"])
                    for i, v in enumerate(self.config.get("variants", []))] + then
        return [(("next",), self.next)] if isinstance(self.next, int) else []

    def looked_at(self) -> list[tuple[tuple[str | int, ...], int]]:
        """The earlier steps a condition asks about (opened / clicked), with where each is written."""
        if self.kind != "condition":
            return []
        config = self.config
        single = [(("config", "step"), config["step"])] if config.get("field") in ("opened_step", "clicked_step") \
            else []
        return single + [(("config", group, i, "step"), rule["step"]) for group in ("all", "any")
                         for i, rule in enumerate(config.get(group) or [])
                         if rule.get("field") in ("opened_step", "clicked_step")]


def _locale(value: str) -> str:
    if not re.match(LOCALE_PATTERN, value):
        raise ValueError(LOCALE_HINT)
    return value


class FiltersIn(Strict):
    """Who may enter: checked against the customer and the triggering order when the event arrives."""

    min_total: Money | None = None
    max_total: Money | None = None
    skus: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(default=None, max_length=500)
    product_ids: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(default=None, max_length=500)
    min_order_count: int | None = Field(default=None, ge=0)
    max_order_count: int | None = Field(default=None, ge=0)
    locales: list[Annotated[str, AfterValidator(_locale)]] | None = Field(default=None, max_length=50)
    consent: Literal["required", "any"] | None = None
    segment: int | None = Field(default=None, ge=1, description="Only customers in this segment (its id) enter.")
    exit_segment: int | None = Field(default=None, ge=1,
                                     description="A customer in this segment (its id) leaves before the next step.")

    @model_validator(mode="after")
    def _ranges(self) -> "FiltersIn":
        errors: list[tuple[tuple[str | int, ...], str]] = []
        if self.min_total is not None and self.max_total is not None and self.min_total > self.max_total:
            errors.append((("max_total",), f"must not be below min_total ({self.min_total})"))
        if (self.min_order_count is not None and self.max_order_count is not None
                and self.min_order_count > self.max_order_count):
            errors.append((("max_order_count",), f"must not be below min_order_count ({self.min_order_count})"))
        _fail(errors, "FiltersIn")
        return self


class DateTriggerIn(Strict):
    fact: Literal["birthday", "order_anniversary", "days_since_last_order"]
    days: int | None = Field(default=None, ge=1, le=3650)

    @model_validator(mode="after")
    def _days(self) -> "DateTriggerIn":
        if self.fact == "days_since_last_order" and self.days is None:
            _fail([(("days",), "is required for days_since_last_order: how many days, such as 60")], "DateTriggerIn")
        if self.fact != "days_since_last_order" and self.days is not None:
            _fail([(("days",), f"is only used with days_since_last_order (this trigger's fact is '{self.fact}')")],
                  "DateTriggerIn")
        return self


class SegmentTriggerIn(Strict):
    segment: int = Field(ge=1, description="The segment's id.")


class SupportTriggerIn(Strict):
    topics: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=50)


TRIGGER_CONFIG_MODELS: dict[str, type[BaseModel]] = {
    "date": DateTriggerIn, "segment_entered": SegmentTriggerIn, "support_contacted": SupportTriggerIn}


class JourneyIn(Strict):
    """One journey with its steps and their email templates, inline. Upserted by `name`."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    status: StatusIn | None = Field(
        default=None, description="Left out: a new journey starts as draft, an existing one keeps its status.")
    trigger: TriggerIn
    custom_event_type: EventName = Field(default="", validate_default=True,
                                         description="The event type that starts it, when trigger is 'custom'.")
    trigger_config: dict[str, Any] = Field(
        default_factory=dict, validate_default=True,
        description='date: {"fact": "birthday" | "order_anniversary" | "days_since_last_order", "days": N (the '
                    'last only)}; segment_entered: {"segment": <segment id>}; support_contacted: {"topics": '
                    '["shipping", …]} (left out: any topic).')
    filters: FiltersIn = Field(default_factory=FiltersIn)
    entry_policy: EntryPolicyIn = "once_per_order"
    cooldown: Duration | None = Field(default=None, validate_default=True)
    replace_running: bool = Field(default=False, description="A newer order ends the running instance.")
    exit_events: list[EventName] = Field(
        default_factory=list, max_length=20,
        description="Event types that end an enrollment, re-checked before every send: order.placed (another "
                    "order), order.refunded / order.cancelled (this order), customer.unsubscribed, your own types.")
    goal_event: EventName = "order.paid"
    attribution_window: Duration = dt.timedelta(days=7)
    holdout_percent: int = Field(default=0, ge=0, le=100)
    message_class: MessageClassIn = "marketing"
    category: CategoryIn | None = Field(
        default=None, description="What customers turn on or off on their preference page: tips (and how-to), "
                                  "reviews (and surveys), offers, loyalty (and referral news). Left out: chosen from "
                                  "what the journey does (a survey step: reviews; a referral or loyalty invite: "
                                  "loyalty; win-back or replenishment words: offers; else tips).")
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher wins when messages compete for the cap.")
    steps: list[StepIn] = Field(min_length=1, max_length=MAX_STEPS)

    @field_validator("custom_event_type")
    @classmethod
    def _custom_event_type(cls, value: str, info: ValidationInfo) -> str:
        trigger = info.data.get("trigger")
        if trigger == "custom" and not value:
            raise ValueError("is required when trigger is 'custom': the event type that starts the journey, "
                             "such as support.resolved")
        if trigger and trigger != "custom" and value:
            raise ValueError(f"is only used when trigger is 'custom' (this journey's is '{trigger}')")
        return _event_name(value) if value else value

    @field_validator("trigger_config")
    @classmethod
    def _trigger_config(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        trigger = info.data.get("trigger")
        model = TRIGGER_CONFIG_MODELS.get(trigger or "")
        if model is None:
            if value:
                raise ValueError(f"is only used when trigger is 'date', 'segment_entered' or 'support_contacted' "
                                 f"(this journey's is '{trigger}')")
            return value
        return model.model_validate(value).model_dump(mode="json", exclude_none=True)

    @field_validator("cooldown")
    @classmethod
    def _cooldown(cls, value: dt.timedelta | None, info: ValidationInfo) -> dt.timedelta | None:
        policy = info.data.get("entry_policy")
        if policy == "cooldown" and not value:
            raise ValueError("is required when entry_policy is 'cooldown', such as P30D")
        if policy and policy != "cooldown" and value is not None:
            raise ValueError(f"is only used when entry_policy is 'cooldown' (this journey's is '{policy}')")
        return value

    @field_validator("exit_events")
    @classmethod
    def _exit_events(cls, value: list[str]) -> list[str]:
        errors = [((i,), problem) for i, name in enumerate(value) if (problem := event_name_problem(name))]
        seen: dict[str, int] = {}
        for i, name in enumerate(value):
            if name in seen:
                errors.append(((i,), f"repeats exit_events.{seen[name]} ({name})"))
            seen.setdefault(name, i)
        _fail(errors, "JourneyIn")
        return value

    @field_validator("goal_event")
    @classmethod
    def _goal_event(cls, value: str) -> str:
        return _event_name(value) if value else value

    @model_validator(mode="after")
    def _steps_fit_together(self) -> "JourneyIn":
        errors: list[tuple[tuple[str | int, ...], str]] = []
        first_at: dict[int, int] = {}
        for i, step in enumerate(self.steps):
            if step.position in first_at:
                errors.append((("steps", i, "position"),
                               f"{step.position} is already the position of steps.{first_at[step.position]}"))
            first_at.setdefault(step.position, i)
        for i, step in enumerate(self.steps):
            for loc, target in step.targets():
                if target not in first_at:
                    errors.append((("steps", i, *loc), f"points at position {target}, and no step has that position"))
                elif target == step.position:
                    errors.append((("steps", i, *loc), f"points at this step itself ({target}): a step runs at most "
                                                       "once for a customer"))
            for loc, target in step.looked_at():
                looked = self.steps[first_at[target]] if target in first_at else None
                if looked is None or looked.kind not in NEEDS_TEMPLATE + ("referral_invite",):
                    errors.append((("steps", i, *loc), f"must be the position of an email step of this journey; "
                                                       f"{target} is {'not one' if looked else 'no step'}"))
        if not errors and (closing := loop_problem(self.steps)):
            position, target, message = closing
            closer = self.steps[first_at[position]]
            loc = next((loc for loc, t in closer.targets() if t == target), ("next",))
            errors.append((("steps", first_at[position], *loc), message))
        template_names: dict[str, int] = {}
        for i, step in enumerate(self.steps):
            if step.template is not None and step.template.name:
                if step.template.name in template_names:
                    errors.append((("steps", i, "template", "name"),
                                   f"is also the name of steps.{template_names[step.template.name]}'s template; "
                                   "each step's template needs its own name"))
                template_names.setdefault(step.template.name, i)
        _fail(errors, "JourneyIn")
        return self

    def template_name(self, step: StepIn) -> str:
        if step.template is not None and step.template.name:
            return step.template.name
        return f"{self.name[:180]} · step {step.position}"
