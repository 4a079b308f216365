"""Evaluating the condition vocabulary (journeys.rules) and saying, in words, what decided.

Each rule becomes one SQL boolean over the customer row (an EXISTS over their order lines, events or
deliveries, a comparison of a column or of a subquery), so a condition step asks one query for all its
rules of one customer and a segment counts every matching customer with one query: the same
expression both ways, so a segment and a branch never disagree. Two rules are read in Python instead:
`health_band` (journeys.health, several reads per customer) and `trigger_data` (the triggering event's
data, already in memory).

A comparison with a fact the customer does not have (no NPS answer, no order yet) does not hold,
whatever the operator.
"""

import dataclasses
import datetime as dt
import functools
import operator
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db.models import (
    BooleanField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual, LessThan, LessThanOrEqual

from feedback.models import SurveyResponse
from lifecycle.models import Customer, Event, OrderLine
from lifecycle.numbers import whole_number
from loyalty.models import LoyaltyAccount

from .health import health_levels
from .models import Delivery, Enrollment

LOOKUPS = {"==": Exact, ">": GreaterThan, ">=": GreaterThanOrEqual, "<": LessThan, "<=": LessThanOrEqual}
PYTHON_FIELDS = ("health_band", "trigger_data")
OP_WORDS = {"==": "is", "!=": "is not", ">": "is above", ">=": "is at least", "<": "is below", "<=": "is at most"}
FIELD_WORDS = {
    "order_count": "order count", "total_spent": "total spent", "days_since_last_order": "days since the last order",
    "points_balance": "points balance", "tier": "loyalty tier", "latest_nps": "latest NPS",
    "latest_csat": "latest CSAT", "latest_ces": "latest CES", "latest_review": "latest review stars",
    "health_band": "health", "locale": "language", "marketing_consent": "marketing consent",
}


@dataclasses.dataclass(frozen=True)
class Context:
    """What a rule may read besides the customer: the moment, and in a journey the enrollment."""

    tenant_id: int
    now: dt.datetime
    order_id: int | None = None
    enrollment_id: int | None = None
    enrolled_at: dt.datetime | None = None
    trigger_data: dict[str, Any] | None = None


def enrollment_context(enrollment: Enrollment, now: dt.datetime) -> Context:
    event = enrollment.trigger_event
    return Context(tenant_id=enrollment.tenant_id, now=now, order_id=enrollment.order_id,
                   enrollment_id=enrollment.pk, enrolled_at=enrollment.enrolled_at,
                   trigger_data=(event.data if event is not None else None) or {})


# --- words ---------------------------------------------------------------------------


def _bought_what(rule: dict[str, Any]) -> str:
    for key, word in (("sku", "SKU"), ("product", "product"), ("collection", "from collection")):
        if rule.get(key):
            return f"{word} {rule[key]}"
    return "something"


def rule_words(rule: dict[str, Any]) -> str:
    """The rule as a marketer says it, in the positive or negative it tests."""
    field, op, value = rule.get("field", ""), rule.get("op", "=="), rule.get("value")
    negative = (op == "!=") != (value is False)
    if field == "bought":
        when = {"this_order": " in this order", "within": f" within {rule.get('days')} days"}.get(
            rule.get("when") or "ever", " ever")
        return f"{'did not buy' if negative else 'bought'} {_bought_what(rule)}{when}"
    if field in ("opened_step", "clicked_step"):
        verb = "opened" if field == "opened_step" else "clicked"
        return f"{'did not ' + verb[:-2] if negative else verb} step {rule.get('step')}"
    if field == "did_event":
        data = rule.get("data") or {}
        match = " with " + ", ".join(f"{k}={v}" for k, v in data.items()) if data else ""
        days = f" in the last {rule['days']} days" if rule.get("days") else ""
        return f"{'did not send' if negative else 'sent'} {rule.get('event')}{match}{days}"
    if field == "ordered_since_enrollment":
        return "has not ordered since entering" if negative else "ordered since entering"
    if field == "trigger_data":
        return f"the trigger's {rule.get('key')} {OP_WORDS.get(op, op)} {value}"
    if field == "marketing_consent":
        return "has no marketing consent" if negative else "has marketing consent"
    return f"{FIELD_WORDS.get(field, field)} {OP_WORDS.get(op, op)} {value}"


# --- SQL -------------------------------------------------------------------------------


def _not_equal(lhs: Any, value: Any) -> Q:
    """lhs != value, and lhs known (NOT (NULL = x) is NULL, which no WHERE keeps anyway)."""
    return ~Q(Exact(lhs, value))


def _holds(expression: Any, wanted: bool) -> Q:
    return Q(expression) if wanted else ~Q(expression)


def _latest_score(kind: str, ctx: Context) -> Subquery:
    return Subquery(SurveyResponse.objects.for_tenant(ctx.tenant_id).filter(
        customer_id=OuterRef("pk"), state=SurveyResponse.State.FINAL,
        score__isnull=False, survey__kind=kind).order_by("-finalized_at", "-pk").values("score")[:1])


def _account(ctx: Context) -> QuerySet:
    return LoyaltyAccount.objects.for_tenant(ctx.tenant_id).filter(customer_id=OuterRef("pk"))


def _days_since(op: str, days: int, now: dt.datetime) -> Q:
    """Whole days since the last order compared with `days`, as a range on last_order_at (indexable)."""
    def cut(n: int) -> dt.datetime:
        return now - dt.timedelta(days=n)
    ranges = {">=": Q(last_order_at__lte=cut(days)), ">": Q(last_order_at__lte=cut(days + 1)),
              "<=": Q(last_order_at__gt=cut(days + 1)), "<": Q(last_order_at__gt=cut(days)),
              "==": Q(last_order_at__gt=cut(days + 1), last_order_at__lte=cut(days))}
    if op == "!=":
        return Q(last_order_at__isnull=False) & ~ranges["=="]
    return Q(last_order_at__isnull=False) & ranges[op]


def rule_q(rule: dict[str, Any], ctx: Context) -> Q | None:
    """The rule as a condition on Customer rows (None: read in Python, `rule_python`)."""
    field, op, value = rule["field"], rule.get("op", "=="), rule.get("value")
    wanted = (op == "!=") != (value is not False)  # a yes/no rule: does it ask for yes?
    never = Q(pk__in=[])
    if field in PYTHON_FIELDS:
        return None
    if field == "bought":
        lines = OrderLine.objects.for_tenant(ctx.tenant_id).filter(order__customer_id=OuterRef("pk"),
                                         order__paid_at__isnull=False)
        lines = lines.filter(**{"sku": rule["sku"]} if rule.get("sku") else {"product_external_id": rule["product"]}
                             if rule.get("product") else {"product__collections__contains": [rule.get("collection")]})
        when = rule.get("when") or "ever"
        if when == "this_order":
            if ctx.order_id is None:
                return never if wanted else ~never
            lines = lines.filter(order_id=ctx.order_id)
        elif when == "within":
            lines = lines.filter(order__paid_at__gte=ctx.now - dt.timedelta(days=int(rule["days"])))
        return _holds(Exists(lines), wanted)
    if field in ("opened_step", "clicked_step"):
        if ctx.enrollment_id is None:
            return never if wanted else ~never
        seen = Q(clicked_at__isnull=False) if field == "clicked_step" else (
            Q(opened_at__isnull=False) | Q(clicked_at__isnull=False))  # a click is an open the pixel missed
        rows = Delivery.objects.for_tenant(ctx.tenant_id).filter(seen, enrollment_id=ctx.enrollment_id,
                                       step__position=rule["step"])
        return _holds(Exists(rows), wanted)
    if field == "did_event":
        events = Event.objects.for_tenant(ctx.tenant_id).filter(customer_id=OuterRef("pk"), type=rule["event"])
        if rule.get("data"):
            events = events.filter(data__contains=rule["data"])
        if rule.get("days"):
            events = events.filter(occurred_at__gte=ctx.now - dt.timedelta(days=int(rule["days"])))
        return _holds(Exists(events), wanted)
    if field == "ordered_since_enrollment":
        since = Q(last_order_at__gt=ctx.enrolled_at) if ctx.enrolled_at else never
        return since if wanted else ~since
    if field == "marketing_consent":
        return _holds(Exact(Coalesce(F("marketing_consent"), Value(False)), True), wanted)
    if field == "days_since_last_order":
        return _days_since(op, int(value), ctx.now)
    lhs: Any
    if field in ("order_count", "locale"):
        lhs = F(field)
    elif field == "total_spent":
        lhs, value = F("total_spent"), Decimal(str(value))
    elif field == "points_balance":
        lhs = Coalesce(Subquery(_account(ctx).values("balance")[:1]), Value(0))
    elif field == "tier":
        lhs = Coalesce(Subquery(_account(ctx).values("tier__name")[:1]), Value(""))
    elif field.startswith("latest_"):
        lhs = _latest_score(field.removeprefix("latest_"), ctx)
    else:
        raise ValueError(f"unknown condition field {field!r}")
    return _not_equal(lhs, value) if op == "!=" else Q(LOOKUPS[op](lhs, value))


# --- Python ----------------------------------------------------------------------------


def _path(data: Any, key: str) -> Any:
    for part in key.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and (index := whole_number(part, maximum=len(data) - 1)) is not None:
            data = data[index]
        else:
            return None
    return data


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def compare(left: Any, op: str, right: Any) -> bool:
    """A comparison as a rule makes it: numbers as numbers, anything else for (in)equality only."""
    if left is None:
        return False
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        left, right = a, b
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    try:
        return {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}[op](left, right)
    except TypeError:
        return False


def rule_python(rule: dict[str, Any], ctx: Context, customer: Customer, level: str | None = None) -> bool:
    """The rules read in Python (PYTHON_FIELDS). `level`: the customer's health level, when read already."""
    if rule["field"] == "health_band":
        if level is None:
            level = health_levels(tenant=ctx.tenant_id, customers=[customer], now=ctx.now)[customer.pk]
        return compare(level, rule.get("op", "=="), rule.get("value"))
    return compare(_path(ctx.trigger_data or {}, rule["key"]), rule.get("op", "=="), rule.get("value"))


# --- deciding --------------------------------------------------------------------------


def rules_of(config: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """("all" | "any", the rules) of a condition step's config or a segment's definition."""
    if config.get("field"):
        return "all", [{k: v for k, v in config.items() if k not in ("then", "else")}]
    if config.get("any"):
        return "any", list(config["any"])
    if config.get("rules"):
        return config.get("match") or "all", list(config["rules"])
    return "all", list(config.get("all") or [])


def rule_results_many(rules: Sequence[dict[str, Any]], ctx: Context,
                      customers: Sequence[Customer]) -> dict[int, list[bool]]:
    """Whether each rule holds, for each of these customers: one query for the SQL rules, three for the
    health band, whatever their number."""
    sql = {f"r{i}": q for i, rule in enumerate(rules) if (q := rule_q(rule, ctx)) is not None}
    rows: dict[int, dict[str, Any]] = {}
    if sql:
        rows = {row["pk"]: row for row in Customer.objects.for_tenant(ctx.tenant_id).filter(
            pk__in=[c.pk for c in customers]).annotate(**{
                name: ExpressionWrapper(q, output_field=BooleanField()) for name, q in sql.items()}).values("pk", *sql)}
    levels = (health_levels(tenant=ctx.tenant_id, customers=customers, now=ctx.now)
              if any(rule["field"] == "health_band" for rule in rules) else {})
    return {c.pk: [bool(rows.get(c.pk, {}).get(f"r{i}")) if f"r{i}" in sql
                   else rule_python(rule, ctx, c, levels.get(c.pk)) for i, rule in enumerate(rules)]
            for c in customers}


def rule_results(rules: Sequence[dict[str, Any]], ctx: Context, customer: Customer) -> list[bool]:
    """Whether each rule holds for the customer."""
    return rule_results_many(rules, ctx, [customer])[customer.pk]


def condition_decide(config: dict[str, Any], ctx: Context, customer: Customer) -> tuple[bool, str]:
    """(whether the condition holds, which rules decided it, in words)."""
    match, rules = rules_of(config)
    if not rules:
        return False, "no rule to test"
    results = rule_results(rules, ctx, customer)
    words = [rule_words(rule) for rule in rules]
    if len(rules) == 1:
        return results[0], f"{words[0]}: {'yes' if results[0] else 'no'}"
    if match == "any":
        held = [w for w, r in zip(words, results, strict=True) if r]
        return (True, f"{held[0]}: yes") if held else (False, "none of " + "; ".join(words) + ": no")
    failed = [w for w, r in zip(words, results, strict=True) if not r]
    return (False, f"{failed[0]}: no") if failed else (True, "all of " + "; ".join(words) + ": yes")


def customers_matching(*, tenant_id: int, match: str, rules: Sequence[dict[str, Any]],
                       now: dt.datetime) -> tuple[QuerySet, list[dict[str, Any]]]:
    """The tenant's customers the SQL rules select (the query), and the rules left to check in Python
    on each of them (`customer_holds`)."""
    ctx = Context(tenant_id=tenant_id, now=now)
    qs = [q for rule in rules if (q := rule_q(rule, ctx)) is not None]
    python = [rule for rule in rules if rule["field"] in PYTHON_FIELDS]
    customers = Customer.objects.for_tenant(tenant_id).filter(erased_at__isnull=True)
    if match == "any" and python:
        return customers, python  # any one rule: every customer is a candidate for the Python ones
    if qs:
        customers = customers.filter(functools.reduce(operator.or_ if match == "any" else operator.and_, qs))
    return customers, python


def customers_holding(customers: Sequence[Customer], *, tenant_id: int, match: str,
                      rules: Sequence[dict[str, Any]], now: dt.datetime) -> list[Customer]:
    """Those of the customers for whom every rule (all) or one (any) holds."""
    results = rule_results_many(rules, Context(tenant_id=tenant_id, now=now), customers)
    return [c for c in customers if (any if match == "any" else all)(results[c.pk])]


def customer_holds(customer: Customer, *, match: str, rules: Sequence[dict[str, Any]], now: dt.datetime) -> bool:
    """Every rule (all) or one (any) holds for the customer."""
    return bool(customers_holding([customer], tenant_id=customer.tenant_id, match=match, rules=rules, now=now))
