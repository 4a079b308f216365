"""What the journey builder says about a journey: its trigger and steps in words, its timeline,
and what must be fixed before it may go live.

Reads only. `journey_problems` is the gate `builder.journey_set_status` runs before activating;
the builder page shows the same list, each problem linked to its step.
"""

import dataclasses
import datetime as dt
import functools
import re
from decimal import Decimal
from typing import Any

from babel.numbers import format_currency
from django.template import TemplateSyntaxError
from pydantic import ValidationError

from feedback.selectors import survey_for_config
from lifecycle.models import Tenant

from .conditions import rule_words, rules_of
from .definition import (
    CONDITION_FIELDS,
    AbSplitConfigIn,
    CheckInConfigIn,
    CommunityInviteConfigIn,
    ConditionConfigIn,
    DiscountCodeConfigIn,
    FiltersIn,
    JourneyIn,
    WebhookConfigIn,
    event_name_problem,
)
from .enrollment import DEFAULT_ANCHOR_WAIT_MAX
from .graph import loop_problem, split_join, topological
from .graph import successors as graph_successors
from .io import journey_export
from .models import EmailTemplate, Journey, Segment, Step
from .rendering import SandboxEngine
from .step_refs import has_webhook_secret, reference_problems
from .template_checks import template_problems

# A step due more than this long after the customer entered is refused at activation. A
# post-purchase journey a year on is no longer about that purchase, and the unsubscribe link
# of an email is honoured for 365 days (lifecycle.links), so nothing should outlive it.
HORIZON = dt.timedelta(days=365)

# Kinds whose step sends an email, and so needs a subject and a body.
EMAIL_KINDS = (Step.Kind.EMAIL, Step.Kind.FEEDBACK_REQUEST, Step.Kind.REFERRAL_INVITE, Step.Kind.CHECK_IN,
               Step.Kind.COMMUNITY_INVITE)
# Kinds the engine accepts but that have nothing to send yet (journeys.dispatch.skip_before_sending).
UNSUPPORTED_KINDS = (Step.Kind.LOYALTY_INVITE,)
BRANCH_KINDS = (Step.Kind.CONDITION, Step.Kind.AB_SPLIT)

TRIGGERS = {
    Journey.Trigger.ORDER_PAID: ("an order is paid", "paid"),
    Journey.Trigger.FIRST_ORDER: ("a customer's first order is paid", "first order"),
    Journey.Trigger.REPEAT_ORDER: ("a repeat order is paid", "repeat order"),
    Journey.Trigger.ORDER_DELIVERED: ("an order is delivered", "delivered"),
    Journey.Trigger.ORDER_REFUNDED: ("an order is refunded", "refunded"),
    Journey.Trigger.FEEDBACK_NEGATIVE: ("a customer gives negative feedback", "negative feedback"),
    Journey.Trigger.FEEDBACK_POSITIVE: ("a customer gives positive feedback", "positive feedback"),
    Journey.Trigger.CUSTOM: ("a custom event happens", "event"),
    Journey.Trigger.DATE: ("a date comes: birthday, order anniversary or days since the last order", "date"),
    Journey.Trigger.SEGMENT_ENTERED: ("a customer enters a segment", "entered segment"),
    Journey.Trigger.SUPPORT_CONTACTED: ("a customer contacts support", "support contact"),
}
# The order time each trigger happens at: an anchor equal to it counts from the moment of entry.
TRIGGER_ANCHOR = {
    Journey.Trigger.ORDER_PAID: "paid_at", Journey.Trigger.FIRST_ORDER: "paid_at",
    Journey.Trigger.REPEAT_ORDER: "paid_at", Journey.Trigger.ORDER_DELIVERED: "delivered_at",
}
ANCHOR_WORDS = {"enrolled_at": "the customer enters", "placed_at": "the order is placed", "paid_at": "payment",
                "fulfilled_at": "the order ships", "delivered_at": "delivery"}
KIND_WORDS = {
    Step.Kind.EMAIL: "Email", Step.Kind.FEEDBACK_REQUEST: "Survey email", Step.Kind.REFERRAL_INVITE: "Referral invite",
    Step.Kind.AWARD_POINTS: "Award points", Step.Kind.CONDITION: "Yes/no split", Step.Kind.AB_SPLIT: "A/B split",
    Step.Kind.LOYALTY_INVITE: "Loyalty invite (not available yet)", Step.Kind.WEBHOOK: "Webhook",
    Step.Kind.DISCOUNT_CODE: "Discount code", Step.Kind.CHECK_IN: "Signed check-in",
    Step.Kind.COMMUNITY_INVITE: "Community invitation",
}
EVENT_WORDS = {
    "order.placed": "another order is placed", "order.paid": "another order is paid",
    "order.refunded": "the order is refunded", "order.cancelled": "the order is cancelled",
    "order.fulfilled": "the order ships", "order.delivered": "the order is delivered",
    "customer.unsubscribed": "the customer unsubscribes",
}
FIELD_WORDS = {"order_count": "orders placed", "total_spent": "total spent", "marketing_consent": "marketing consent",
               "locale": "language", "ordered_since_enrollment": "ordered since entering",
               "latest_nps": "latest NPS score", "latest_csat": "latest CSAT score", "latest_ces": "latest CES score",
               "latest_review": "latest review stars", "points_balance": "points balance", "tier": "loyalty tier",
               "bought": "bought a product, SKU or collection", "opened_step": "opened an earlier email",
               "clicked_step": "clicked an earlier email", "did_event": "sent an event (such as feature.used)",
               "days_since_last_order": "days since the last order", "health_band": "health (green, amber, red)",
               "trigger_data": "a field of the triggering event"}


@dataclasses.dataclass(frozen=True)
class Problem:
    """Something that keeps a journey from going live. `position` names the step (None: the journey)."""

    message: str
    position: int | None = None
    field: str = ""
    line: int | None = None

    @property
    def anchor(self) -> str:
        return f"step-{self.position}" if self.position is not None else "settings"


# --- words ------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def duration_words(delta: dt.timedelta | None) -> str:
    """14 days, 1 day 4 hours, 90 minutes; "no time" for zero. Days, not weeks: marketers count
    "day 14", and the timeline does too."""
    if not delta:
        return "no time"
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [_plural(days, "day") if days else "", _plural(hours, "hour") if hours else "",
             _plural(minutes, "minute") if minutes else "", _plural(seconds, "second") if seconds else ""]
    return " ".join(p for p in parts if p)


def money_words(amount: Any, currency: str) -> str:
    try:
        return format_currency(Decimal(str(amount)), currency, locale="en")
    except Exception:  # noqa: BLE001 - an odd stored value is still shown, as written
        return f"{amount} {currency}"


def event_words(name: str) -> str:
    return EVENT_WORDS.get(name, f"“{name}” happens")


def trigger_sentence(journey: Journey, tenant: Tenant) -> str:
    """When an order is delivered, for orders over €50.00 containing SKU X, once per customer."""
    when, _ = TRIGGERS.get(journey.trigger, (journey.trigger, ""))
    if journey.trigger == Journey.Trigger.CUSTOM:
        when = f"the event “{journey.custom_event_type or '?'}” happens"
    config = journey.trigger_config or {}
    if journey.trigger == Journey.Trigger.DATE:
        when = {"birthday": "it is the customer's birthday",
                "order_anniversary": "it is the anniversary of the customer's first order",
                "days_since_last_order": f"{config.get('days')} days have passed since the customer's last order",
                }.get(config.get("fact"), when)
    if journey.trigger == Journey.Trigger.SEGMENT_ENTERED:
        name = Segment.objects.for_tenant(journey.tenant_id).filter(pk=config.get("segment")).values_list(
            "name", flat=True).first()
        when = f"a customer enters the segment “{name or '?'}”"
    if journey.trigger == Journey.Trigger.SUPPORT_CONTACTED and config.get("topics"):
        when = f"a customer contacts support about {_or(config['topics'])}"
    parts = [f"When {when}"]
    f = journey.filters or {}
    low, high = f.get("min_total"), f.get("max_total")
    if low not in (None, "") and high not in (None, ""):
        parts.append(f"for orders between {money_words(low, tenant.currency)} and {money_words(high, tenant.currency)}")
    elif low not in (None, ""):
        parts.append(f"for orders of {money_words(low, tenant.currency)} or more")
    elif high not in (None, ""):
        parts.append(f"for orders up to {money_words(high, tenant.currency)}")
    things = [f"SKU {s}" for s in f.get("skus") or []] + [f"product {p}" for p in f.get("product_ids") or []]
    if things:
        parts.append("containing " + _or(things))
    low_n, high_n = f.get("min_order_count"), f.get("max_order_count")
    if low_n is not None and high_n is not None:
        parts.append(f"from customers with {low_n} to {high_n} orders")
    elif low_n is not None:
        parts.append(f"from customers with at least {_plural(int(low_n), 'order')}")
    elif high_n is not None:
        parts.append(f"from customers with at most {_plural(int(high_n), 'order')}")
    if f.get("locales"):
        parts.append("who speak " + _or(f["locales"]))
    if f.get("consent") == "required":
        parts.append("who agreed to marketing email")
    named = dict(Segment.objects.for_tenant(journey.tenant_id).filter(
        pk__in=[f[k] for k in ("segment", "exit_segment") if f.get(k)]).values_list("pk", "name"))
    if f.get("segment"):
        parts.append(f"in the segment “{named.get(f['segment'], '?')}”")
    policy = {Journey.EntryPolicy.ONCE_PER_ORDER: "once per order",
              Journey.EntryPolicy.ONCE_PER_CUSTOMER: "once per customer"}.get(journey.entry_policy)
    if journey.entry_policy == Journey.EntryPolicy.COOLDOWN:
        policy = f"at most once every {duration_words(journey.cooldown)} per customer"
    parts.append(policy or journey.entry_policy)
    sentence = ", ".join(parts) + "."
    stops = [event_words(e) for e in journey.exit_events or []]
    if f.get("exit_segment"):
        stops.append(f"the customer is in the segment “{named.get(f['exit_segment'], '?')}”")
    if stops:
        sentence += " It stops when " + _or(stops) + "."
    return sentence


def _or(items: list[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def wait_words(step: Step) -> str:
    """When a step runs, relative to what: "2 days after the previous step", "14 days after delivery"."""
    if step.wait_kind == Step.WaitKind.AFTER_ANCHOR:
        anchor = ANCHOR_WORDS.get(step.anchor, step.anchor or "?")
        return f"{duration_words(step.wait)} after {anchor}" if step.wait else f"at {anchor}"
    if step.wait_kind == Step.WaitKind.UNTIL_EVENT:
        limit = step.wait_max or step.wait
        return f"as soon as {event_words(step.wait_event or '?')}, at most {duration_words(limit)}"
    return f"{duration_words(step.wait)} after the previous step" if step.wait else "right after the previous step"


def step_title(step: Step) -> str:
    """The name a marketer gave the step, else what it does."""
    if step.name:
        return step.name
    template = step.template  # select_related on saved steps; an unsaved one carries its own
    if step.kind in EMAIL_KINDS and template is not None and template.subject:
        return template.subject
    return KIND_WORDS.get(step.kind, step.kind)


def step_does(step: Step, by_position: dict[int, Step]) -> str:
    """What a step does, in words: "sends “How are you finding…”", "splits 50/50 between steps 3 and 4"."""
    config = step.config or {}
    if step.kind in EMAIL_KINDS:
        subject = step.template.subject if step.template is not None else ""
        what = {Step.Kind.EMAIL: "sends an email", Step.Kind.FEEDBACK_REQUEST: "asks for feedback",
                Step.Kind.REFERRAL_INVITE: "invites to refer a friend",
                Step.Kind.CHECK_IN: f"sends a check-in signed by {config.get('signer') or '(nobody yet)'}",
                Step.Kind.COMMUNITY_INVITE: "invites to the community"}[step.kind]
        return f"{what}: “{subject}”" if subject else f"{what} (no subject yet)"
    if step.kind == Step.Kind.AWARD_POINTS:
        return f"awards {config.get('points', '?')} points"
    if step.kind == Step.Kind.WEBHOOK:
        return f"calls the store's webhook {config.get('url') or '(no address yet)'}"
    if step.kind == Step.Kind.DISCOUNT_CODE:
        source = (f"the store's webhook {config.get('url') or ''}".rstrip() if config.get("source") == "webhook"
                  else f"the pool of “{config.get('pool') or '?'}”")
        return f"gives a discount code from {source} for the emails after it"
    if step.kind == Step.Kind.CONDITION:
        match, rules = rules_of(config)
        joined = f" {'and' if match == 'all' else 'or'} ".join(rule_words(r) for r in rules if r.get("field"))
        then, else_ = config.get("then"), config.get("else")
        then, else_ = (t if isinstance(t, int) else None for t in (then, else_))
        return (f"if {joined or '?'}: "
                f"{f'go to step {then}' if then else 'end'}; otherwise {f'go to step {else_}' if else_ else 'end'}")
    if step.kind == Step.Kind.AB_SPLIT:
        variants = config.get("variants") or []
        total = sum(int(v.get("weight", 1)) for v in variants) or 1
        join = split_join(step, list(by_position))
        return ("splits " + ", ".join(f"{round(100 * int(v.get('weight', 1)) / total)}% to step {v.get('step')}"
                                      for v in variants)
                + ("" if not by_position  # the steps around it unknown here: where it goes on is too
                   else f"; each customer gets one branch, then goes on at step {join}" if join is not None
                   else "; each customer gets one branch, then the journey ends"))
    return "sends nothing yet"


# --- the timeline -------------------------------------------------------------------


@dataclasses.dataclass
class TimelineNode:
    label: str  # "Day 14", "Day 0 + 2 h", or words when the time depends on the order
    title: str
    step: Step | None = None
    reachable: bool = True


def successors(step: Step, by_position: dict[int, Step]) -> list[int]:
    """The positions a step can lead to, as journeys.enrollment.next_step walks them."""
    targets = graph_successors(step, list(by_position.values()))
    return [t for t in targets if t is not None and t in by_position and t != step.position]


def _due(step: Step, previous: dt.timedelta, trigger: str) -> tuple[dt.timedelta, bool]:
    """(latest time after entry the step can be due, whether that time is exact)."""
    if step.wait_kind == Step.WaitKind.AFTER_ANCHOR:
        if step.anchor in ("enrolled_at", TRIGGER_ANCHOR.get(trigger)):
            return max(previous, step.wait), True
        # An order time that may still come: due at most when the wait for it gives up.
        return max(previous, (step.wait_max or DEFAULT_ANCHOR_WAIT_MAX) + step.wait), False
    if step.wait_kind == Step.WaitKind.UNTIL_EVENT:
        return previous + (step.wait_max or step.wait), False
    return previous + step.wait, True


def schedule(steps: list[Step], trigger: str) -> tuple[dict[int, tuple[dt.timedelta, bool]], set[int]]:
    """Per reachable position: (latest due time after entry, exact?), and the reachable positions."""
    by_position = {s.position: s for s in steps}
    if not steps:
        return {}, set()
    first = min(by_position)
    due = {first: _due(by_position[first], dt.timedelta(0), trigger)}
    for position in [s.position for s in topological(steps)]:
        if position not in due:
            continue
        at, exact = due[position]
        for target in successors(by_position[position], by_position):
            candidate, candidate_exact = _due(by_position[target], at, trigger)
            known = due.get(target)
            if known is None or candidate > known[0]:
                due[target] = (candidate, candidate_exact and exact and (known is None or known[1]))
    return due, set(due)


def day_label(offset: dt.timedelta) -> str:
    days, rest = divmod(int(offset.total_seconds()), 86400)
    if not rest:
        return f"Day {days}"
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"Day {days} + {f'{hours} h' if hours else ''}{' ' if hours and minutes else ''}{f'{minutes} min' if minutes else ''}"


def timeline(journey: Journey, steps: list[Step]) -> list[TimelineNode]:
    """Day 0 delivered → Day 1 setup tips → Day 7 check-in → Day 14 review request."""
    due, reachable = schedule(steps, journey.trigger)
    _, short = TRIGGERS.get(journey.trigger, (journey.trigger, journey.trigger))
    if journey.trigger == Journey.Trigger.CUSTOM:
        short = journey.custom_event_type or "event"
    nodes = [TimelineNode(label="Day 0", title=short)]
    for step in sorted(steps, key=lambda s: s.position):
        if step.position not in due:
            nodes.append(TimelineNode(label="never", title=step_title(step), step=step, reachable=False))
            continue
        at, exact = due[step.position]
        label = day_label(at) if exact else wait_words(step)
        nodes.append(TimelineNode(label=label, title=step_title(step), step=step))
    return nodes


# --- templates ------------------------------------------------------------------------


@functools.cache
def _debug_sandbox() -> SandboxEngine:
    """The sending sandbox's twin with debug on: only to learn the line a syntax error is on."""
    return SandboxEngine(dirs=[], app_dirs=False, loaders=[], libraries={}, autoescape=True, string_if_invalid="",
                         debug=True)


def _line_of(source: str, needle: str) -> int | None:
    at = source.find(needle)
    return source.count("\n", 0, at) + 1 if at >= 0 else None


_PLACEHOLDER = re.compile(r"^\{\{ ([^ ]+) \}\}")


def template_field_problems(source: str, *, kind: str) -> list[tuple[int | None, str]]:
    """[(line, what to fix)] for one template field; [] when it is fine."""
    if not source:
        return []
    try:
        _debug_sandbox().from_string(source)
    except TemplateSyntaxError as exc:
        info = getattr(exc, "template_debug", None) or {}
        message = str(exc).replace(" Did you forget to register or load this tag?", "")
        return [(info.get("line"), f"is not a valid template: {message}")]
    found = []
    for problem in template_problems(source, kind=kind):
        line = None
        match = _PLACEHOLDER.match(problem)
        if match:
            name = match.group(1)
            hit = re.search(r"\{\{-?\s*" + re.escape(name), source) or re.search(re.escape(name), source)
            line = source.count("\n", 0, hit.start()) + 1 if hit else None
        found.append((line, problem))
    return found


def content_problems(*, subject: str, preheader: str, body: str, kind: str, position: int | None = None
                     ) -> list[Problem]:
    """What keeps this email content from being sent, per field, with the line to look at."""
    problems = []
    if not subject.strip():
        problems.append(Problem("The subject is empty: write one.", position, "subject"))
    if not body.strip():
        problems.append(Problem("The body is empty: write the email.", position, "body"))
    for field, source in (("subject", subject), ("preheader", preheader), ("body", body)):
        for line, message in template_field_problems(source, kind=kind):
            where = f"The {field}" + (f", line {line}," if line and field == "body" else "")
            problems.append(Problem(f"{where} {message}", position, field, line))
    return problems


# --- the gate before activation ---------------------------------------------------------


def _config_problem(model, config: dict[str, Any]) -> str | None:
    try:
        model.model_validate(config)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        return f"{where + ': ' if where else ''}{error['msg'].removeprefix('Value error, ')}"
    return None


def _step_problems(step: Step, by_position: dict[int, Step], tenant_id: int) -> list[Problem]:
    n, config = step.position, step.config or {}
    problems: list[Problem] = []
    if step.kind in UNSUPPORTED_KINDS:
        problems.append(Problem(f"A {KIND_WORDS[step.kind].split(' (')[0].lower()} step is not available yet "
                                "(it would do nothing): change it to an email or remove it.", n, "kind"))
    if step.kind in EMAIL_KINDS:
        template: EmailTemplate | None = step.template if step.template_id else None
        if template is None:
            problems.append(Problem("This step has no email yet: write a subject and a body.", n, "body"))
        else:
            problems += content_problems(subject=template.subject, preheader=template.preheader, body=template.body,
                                         kind=step.kind, position=n)
            for locale, texts in (template.translations or {}).items():
                for field in ("subject", "preheader", "body"):
                    for line, message in template_field_problems(str(texts.get(field) or ""), kind=step.kind):
                        problems.append(Problem(f"The {locale} {field}{f', line {line},' if line else ''} {message}",
                                                n, field, line))
    if step.kind == Step.Kind.FEEDBACK_REQUEST and survey_for_config(tenant=tenant_id, config=config) is None:
        problems.append(Problem("Choose which survey this email asks.", n, "survey"))
    for kind, model, words in ((Step.Kind.WEBHOOK, WebhookConfigIn, "The webhook"),
                               (Step.Kind.DISCOUNT_CODE, DiscountCodeConfigIn, "The discount code's source"),
                               (Step.Kind.CHECK_IN, CheckInConfigIn, "The check-in"),
                               (Step.Kind.COMMUNITY_INVITE, CommunityInviteConfigIn, "The community link")):
        if step.kind == kind and (problem := _config_problem(model, config)):
            problems.append(Problem(f"{words} is incomplete: {problem}.", n, "config"))
    for key, problem in reference_problems(tenant_id, step.kind, config).items():
        problems.append(Problem(problem[0].upper() + problem[1:] + ".", n, key))
    if step.kind in (Step.Kind.WEBHOOK, Step.Kind.DISCOUNT_CODE) and (
            step.kind == Step.Kind.WEBHOOK or config.get("source") == "webhook") and not has_webhook_secret(tenant_id):
        problems.append(Problem("Calls to the store's webhook are signed: make the store's webhook secret first "
                                "(Settings → Outbound webhooks).", n, "config"))
    if step.kind == Step.Kind.AWARD_POINTS:
        points = config.get("points")
        if not (isinstance(points, int) and not isinstance(points, bool) and points > 0):
            problems.append(Problem("Say how many points to award (a whole number above zero).", n, "points"))
    if step.kind == Step.Kind.CONDITION:
        problem = _config_problem(ConditionConfigIn, config)
        if problem:
            problems.append(Problem(f"The split's rule is incomplete: {problem}.", n, "config"))
    if step.kind == Step.Kind.AB_SPLIT:
        problem = _config_problem(AbSplitConfigIn, config)
        if problem:
            problems.append(Problem(f"An A/B split needs at least two branches, each going to a step: {problem}.",
                                    n, "config"))
    if step.kind in BRANCH_KINDS:
        targets = ([config.get("then"), config.get("else")] if step.kind == Step.Kind.CONDITION
                   else [v.get("step") for v in config.get("variants") or [] if isinstance(v, dict)])
        if step.kind == Step.Kind.AB_SPLIT and config.get("then") is not None:
            arms = [t for t in targets if isinstance(t, int)]
            if isinstance(config["then"], int) and arms and config["then"] <= max(arms):
                problems.append(Problem(f"After the branches the split goes on at step {config['then']}, which is "
                                        "not after every branch's step: pick a later step.", n, "config"))
        for target in targets:
            if target is None:
                continue
            if target not in by_position:
                problems.append(Problem(f"A branch goes to step {target}, and there is no step {target}: "
                                        "pick another step or add one.", n, "config"))
            elif target == n:
                problems.append(Problem(f"A branch goes back to this step ({target}): a step runs at most once for a "
                                        "customer.", n, "config"))
        if step.kind == Step.Kind.AB_SPLIT and any(t is None for t in targets):
            problems.append(Problem("An A/B branch has no step to go to.", n, "config"))
    if step.wait_kind == Step.WaitKind.UNTIL_EVENT:
        problem = event_name_problem(step.wait_event) if step.wait_event else "no event is named"
        if problem:
            problems.append(Problem(f"This step waits for an event that never comes ({problem}), so it can never "
                                    "run: name an event we record, or wait a fixed time.", n, "wait"))
    if step.wait_kind == Step.WaitKind.AFTER_ANCHOR and step.anchor not in ANCHOR_WORDS:
        problems.append(Problem("Say which order time the wait counts from.", n, "wait"))
    return problems


def journey_problems(journey: Journey, steps: list[Step] | None = None) -> list[Problem]:
    """Everything that keeps `journey` from going live, journey-wide first, then by step. [] = ready."""
    if steps is None:
        steps = list(Step.objects.for_tenant(journey.tenant_id).filter(journey=journey)
                     .select_related("template").order_by("position"))
    problems: list[Problem] = []
    if not steps:
        problems.append(Problem("The journey has no steps: add one."))
    if journey.trigger == Journey.Trigger.CUSTOM:
        problem = (event_name_problem(journey.custom_event_type) if journey.custom_event_type
                   else "name the event that starts it")
        if problem:
            problems.append(Problem(f"The trigger: {problem}.", field="trigger"))
    if journey.entry_policy == Journey.EntryPolicy.COOLDOWN and not journey.cooldown:
        problems.append(Problem("Say how long a customer waits before entering again.", field="entry_policy"))
    filter_problem = _config_problem(FiltersIn, journey.filters or {})
    if filter_problem:
        problems.append(Problem(f"The filters: {filter_problem}.", field="filters"))
    for name in journey.exit_events or []:
        problem = event_name_problem(name)
        if problem:
            problems.append(Problem(f"Stops when: {problem}.", field="exit_events"))

    by_position = {s.position: s for s in steps}
    if (closing := loop_problem(steps)) is not None:
        # A branch set wrongly (said beside its step) can make the loop: say that first.
        said = [p for step in steps for p in _step_problems(step, by_position, journey.tenant_id)]
        return problems + (said or [Problem(f"This step {closing[2]}.", closing[0], "next")])
    for step in steps:
        target = step.next_position
        if target is not None and target not in by_position:
            problems.append(Problem(f"This step goes on to step {target}, and there is no step {target}: "
                                    "pick another step, or end the journey here.", step.position, "next"))
    due, reachable = schedule(steps, journey.trigger)
    for step in steps:
        problems += _step_problems(step, by_position, journey.tenant_id)
        if step.position not in reachable:
            problems.append(Problem("No step leads here: a split before it never goes to it, so it can never run. "
                                    "Point a branch at it, or remove it.", step.position, "wait"))
        elif due[step.position][0] > HORIZON:
            at = due[step.position][0]
            problems.append(Problem(f"This step can be due {duration_words(at)} after the customer enters, past the "
                                    f"journey's horizon of {HORIZON.days} days: shorten the waits.",
                                    step.position, "wait"))
    if not problems:
        problems = _schema_problems(journey, steps)
    return problems


def _schema_problems(journey: Journey, steps: list[Step]) -> list[Problem]:
    """A last check: the journey exports to JSON the API would accept (journeys.definition)."""
    index = {i: step.position for i, step in enumerate(sorted(steps, key=lambda s: s.position))}
    try:
        JourneyIn.model_validate(journey_export(journey))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = list(error["loc"])
            position = index.get(loc[1]) if len(loc) > 1 and loc[0] == "steps" and isinstance(loc[1], int) else None
            where = ".".join(str(p) for p in (loc[2:] if position is not None else loc))
            problems.append(Problem(f"{where}: {error['msg'].removeprefix('Value error, ')}", position))
        return problems
    return []


def condition_field_choices() -> list[tuple[str, str]]:
    return [(name, FIELD_WORDS.get(name, name)) for name in CONDITION_FIELDS]
