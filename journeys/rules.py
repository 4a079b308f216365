"""The condition vocabulary: what a condition step, a segment and an entry or exit rule may test about a
customer, as JSON, validated once (journeys.conditions evaluates it, journeys.builder_checks words it).

A rule is {"field": …, "op": …, "value": …} and the qualifiers its field takes:

- bought: one of product / sku / collection; when: ever (default), this_order, within (+ days).
  value true (default) or false: bought it, or did not.
- opened_step / clicked_step: step (the position of an earlier email of the same journey).
- did_event: event (such as feature.used), data (fields the event's data must contain, such as
  {"name": "export"}), days (within the last N days; left out: ever). value false: did not.
- order_count, total_spent, days_since_last_order, points_balance, latest_nps, latest_csat,
  latest_ces, latest_review: a number, with ==, !=, >, >=, <, <=.
- tier, locale: a string; health_band: green, amber, red or unknown (journeys.health).
- marketing_consent, ordered_since_enrollment: true or false.
- trigger_data: key (a dotted path into the triggering event's data, such as topic or items.0.sku)
  compared with value.

Rules about the enrollment (this order, an earlier step, the triggering event) only make sense in a
journey: a segment, which is about the customer alone, refuses them (`JOURNEY_ONLY`).
"""

import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from lifecycle.inputs import EVENT_TYPE_PATTERN, Money

RuleField = Literal[
    "bought", "opened_step", "clicked_step", "did_event", "order_count", "total_spent", "days_since_last_order",
    "points_balance", "tier", "latest_nps", "latest_csat", "latest_ces", "latest_review", "health_band",
    "marketing_consent", "locale", "ordered_since_enrollment", "trigger_data"]
# The type of each field's value.
RULE_FIELDS: dict[str, str] = {
    "bought": "bool", "opened_step": "bool", "clicked_step": "bool", "did_event": "bool", "order_count": "int",
    "total_spent": "money", "days_since_last_order": "int", "points_balance": "int", "tier": "str",
    "latest_nps": "int", "latest_csat": "int", "latest_ces": "int", "latest_review": "int", "health_band": "band",
    "marketing_consent": "bool", "locale": "str", "ordered_since_enrollment": "bool", "trigger_data": "any",
}
HEALTH_BANDS = ("green", "amber", "red", "unknown")
# Fields that read the enrollment (its order, its steps, its trigger), not just the customer.
JOURNEY_ONLY = {"opened_step", "clicked_step", "ordered_since_enrollment", "trigger_data"}
Op = Literal["==", "!=", ">", ">=", "<", "<="]
MAX_RULES = 20
_MONEY = TypeAdapter(Money)
_WORDS = {"int": "a whole number", "bool": "true or false", "str": "a string", "money": 'an amount such as "50.00"',
          "band": "green, amber, red or unknown"}


def fail(errors: list[tuple[tuple[str | int, ...], str]], title: str) -> None:
    """Raise every problem at its exact location (pydantic prefixes the model's own path)."""
    if errors:
        raise ValidationError.from_exception_data(title, [
            InitErrorDetails(type=PydanticCustomError("journey_invalid", "{message}", {"message": message}),
                             loc=loc, input=None)
            for loc, message in errors
        ])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)


class RuleParts(_Strict):
    field: RuleField | None = None
    op: Op = "=="
    value: Any = None
    product: str | None = Field(default=None, min_length=1, max_length=255, description="bought: a product id.")
    sku: str | None = Field(default=None, min_length=1, max_length=255, description="bought: a SKU.")
    collection: str | None = Field(default=None, min_length=1, max_length=255, description="bought: a collection.")
    when: Literal["ever", "this_order", "within"] | None = Field(
        default=None, description="bought: ever (default), in the triggering order, or within `days`.")
    days: int | None = Field(default=None, ge=1, le=3650, description="bought, did_event: within the last N days.")
    step: int | None = Field(default=None, ge=1, description="opened_step, clicked_step: an earlier step's position.")
    event: str | None = Field(default=None, max_length=100, description="did_event: the event type.")
    data: dict[str, Any] | None = Field(default=None, description="did_event: fields its data must contain.")
    key: str | None = Field(default=None, max_length=200, pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$",
                            description="trigger_data: a dotted path into the triggering event's data.")

    @model_validator(mode="after")
    def _rule_fits(self) -> "RuleParts":
        if self.field is not None:
            fail(rule_problems(self), type(self).__name__)
        return self


def rule_problems(rule: "RuleParts") -> list[tuple[tuple[str | int, ...], str]]:
    """Where the rule is wrong, and why; normalises its value (a boolean rule with no value: true)."""
    field, errors = rule.field, []
    kind = RULE_FIELDS[field]
    allowed = {"bought": {"product", "sku", "collection", "when", "days"}, "did_event": {"event", "data", "days"},
               "opened_step": {"step"}, "clicked_step": {"step"}, "trigger_data": {"key"}}.get(field, set())
    for name in ("product", "sku", "collection", "when", "days", "step", "event", "data", "key"):
        if getattr(rule, name) is not None and name not in allowed:
            errors.append(((name,), f"is not used by {field}"))
    if kind == "bool" and rule.value is None:
        rule.value = True
    if field == "bought":
        named = [n for n in ("product", "sku", "collection") if getattr(rule, n)]
        if len(named) != 1:
            errors.append((("sku",), "name one of product, sku or collection: what the customer bought"))
        when = rule.when or ("within" if rule.days else "ever")
        if when == "within" and not rule.days:
            errors.append((("days",), "is required when 'when' is 'within': within how many days, such as 30"))
        if when != "within" and rule.days:
            errors.append((("days",), f"is only used when 'when' is 'within' (this rule's is '{when}')"))
        rule.when = when
    if field in ("opened_step", "clicked_step") and rule.step is None:
        errors.append((("step",), "is required: the position of the email step to look at"))
    if field == "did_event" and (not rule.event or not re.match(EVENT_TYPE_PATTERN, rule.event)):
        errors.append((("event",), "is required: an event type such as feature.used"))
    if field == "trigger_data" and not rule.key:
        errors.append((("key",), "is required: the field of the triggering event's data, such as topic"))
    value = rule.value
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "money": isinstance(value, str | int | Decimal) and not isinstance(value, bool),
        "band": value in HEALTH_BANDS,
        "any": value is not None,
    }[kind]
    if not ok:
        words = _WORDS.get(kind, "a value")
        errors.append((("value",), f"must be {words} to compare with {field}"))
    elif kind == "money":
        try:
            rule.value = str(_MONEY.validate_python(value))
        except ValidationError as exc:
            errors.append((("value",), exc.errors()[0]["msg"].removeprefix("Value error, ")))
    if kind in ("bool", "str", "band") and rule.op not in ("==", "!="):
        errors.append((("op",), f"must be '==' or '!=' for {field}"))
    return errors


class RuleIn(RuleParts):
    """One test of a customer (the module's docstring lists the fields)."""

    field: RuleField


class RuleSetIn(_Strict):
    """Several rules: all must hold, or any one."""

    match: Literal["all", "any"] = "all"
    rules: list[RuleIn] = Field(min_length=1, max_length=MAX_RULES)


def journey_only_problems(rules: list[RuleIn], where: str) -> list[tuple[tuple[str | int, ...], str]]:
    """Rules that read an enrollment, refused where there is none (a segment)."""
    problems = []
    for i, rule in enumerate(rules):
        if rule.field in JOURNEY_ONLY:
            problems.append((("rules", i, "field"), f"{rule.field} reads a journey's enrollment, which {where} has "
                                                    "not: test the customer instead"))
        elif rule.field == "bought" and rule.when == "this_order":
            problems.append((("rules", i, "when"), f"'this_order' needs a triggering order, which {where} has not: "
                                                   "use ever or within"))
    return problems
