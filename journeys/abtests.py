"""A/B tests that decide: each split's arms with their funnel, conversion and revenue and their
intervals, the stopping rule's verdict, and promoting the winner (by a click or by beat).

An arm is a variant of an `ab_split` step: the steps from the variant's step up to the next arm's
(journeys.enrollment.split_arms). A customer is *assigned* when the split is evaluated (its delivery's
`sent_at`). A content test (a subject, content or call-to-action test without copying the journey) is
an email step whose template has versions: version A is the template, B… its `versions`; a customer is
assigned the version `EmailTemplate.version_drawn` gives them when the email is sent. The test counts
an assignment once its window (AbTest.window) has closed, so every customer counted had the same time
to reach the goal:
- goal "order": a paid, not cancelled order in (assigned, assigned + window] — as the holdout lift;
- goal "click": a click on one of the arm's emails in that window.
Revenue is the net total (less refunds) of the orders paid in the window, in the store's currency.

Intervals are the holdout lift's (lifecycle/stats.py): Wilson for each arm's rate, Newcombe for an
arm's difference from arm A, Welch for revenue per customer; the stopping rule decides on Newcombe
(`ab_decide`). Beside them, the difference adjusted with CUPED on what was known before enrollment
(the customer's paid orders and log(1 + net spend) up to enrolled_at): same estimate in expectation, narrower
when the past predicts the goal. `lift_cuped` does the same for a journey's holdout lift.

Reads here load each assignment (and its customer's orders) into Python: an A/B test of a small or
mid-sized store is thousands of customers, and the exact per-customer covariates CUPED needs are not
in the outcome buckets. The bench (manage.py cuped_demo) times it on the 3,000-customer demo store.
"""

import dataclasses
import datetime as dt
import math
import string
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import transaction

from lifecycle import clock
from lifecycle.changes import json_safe
from lifecycle.errors import NotFound, ServiceError
from lifecycle.models import Event, Order, Tenant
from lifecycle.stats import (
    CONFIDENCE,
    Arm,
    Decision,
    Difference,
    GroupSums,
    Moments,
    ab_decide,
    cuped_difference,
    newcombe_difference,
    welch_difference,
    wilson_interval,
)
from lifecycle.timeline import event_append

from .builder_checks import EMAIL_KINDS, content_problems
from .enrollment import split_arms
from .models import VERSION_LABELS, AbTest, Delivery, EmailTemplate, Enrollment, Journey, Step
from .rollups import MEASURED, ORDER_GOALS

CENT = Decimal("0.01")
# What the settings form accepts: a test shorter than a day or longer than a quarter is a mistake,
# and a sample beyond ten million customers is not a store's A/B test.
MIN_WINDOW, MAX_WINDOW = dt.timedelta(days=1), dt.timedelta(days=90)
MIN_SAMPLE, MAX_SAMPLE = 10, 10_000_000
CONFIDENCES = (90, 95, 99)
AUTO_PROMOTER = "auto-promote"


class AbTestError(ServiceError):
    """A test setting or promotion refused; `fields` names the form field to fix."""


# --- the report ------------------------------------------------------------------------------


@dataclasses.dataclass
class ArmReport:
    label: str  # "A", "B", … in the split's order of variants (a content test: the version)
    step: Step  # the arm's first step (a content test: the email step)
    weight: int
    key: str = ""  # what the promote button posts: the arm's first step's id, or the version's label
    enrolled: int = 0  # assigned, window closed
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int = 0
    revenue: Decimal = Decimal(0)
    revenue_squares: Decimal = Decimal(0)
    maturing: int = 0  # assigned, window still open
    rate_low: float = 0.0
    rate_high: float = 1.0
    versus_a: Difference | None = None  # this arm's rate − arm A's (Newcombe)
    versus_a_cuped: Difference | None = None
    revenue_versus_a: Difference | None = None  # revenue per customer − arm A's (Welch)
    moments: Moments | None = None

    @property
    def rate(self) -> float | None:
        return self.converted / self.enrolled if self.enrolled else None

    @property
    def revenue_per_customer(self) -> Decimal | None:
        return (self.revenue / self.enrolled).quantize(CENT) if self.enrolled else None


@dataclasses.dataclass
class SplitReport:
    split: Step
    test: AbTest  # unsaved (the defaults) until the marketer sets a goal
    arms: list[ArmReport]
    decision: Decision
    confidence: float = CONFIDENCE

    @property
    def winner(self) -> ArmReport | None:
        return next((arm for arm in self.arms if arm.label == self.decision.winner), None)

    @property
    def promoted(self) -> ArmReport | None:
        if self.test.promoted_at is None:
            return None
        if self.split.kind != Step.Kind.AB_SPLIT:
            return next((arm for arm in self.arms if arm.label == self.test.winner_version), None)
        return next((arm for arm in self.arms if arm.step.pk == self.test.winner_id), None)


def _labels() -> Iterable[str]:
    yield from string.ascii_uppercase


def abtest_for(tenant: Tenant, split: Step) -> AbTest:
    """The split's saved test, or the defaults (unsaved): goal order within the journey's window."""
    test = AbTest.objects.for_tenant(tenant).filter(step=split).first()
    if test is None:
        test = AbTest(tenant=tenant, journey_id=split.journey_id, step=split,
                      window=min(MAX_WINDOW, max(MIN_WINDOW, split.journey.attribution_window)))
    return test


def _arm_steps(steps: list[Step], split: Step) -> dict[int, list[Step]]:
    """The split's arms: their first step's position → every step in the arm."""
    arms = {}
    for arm in split_arms(steps):
        if arm.split == split.position:
            arms[arm.start] = [s for s in steps if s.position in arm]
    return arms


@dataclasses.dataclass
class _Assignment:
    enrollment_id: int
    customer_id: int
    assigned_at: dt.datetime
    enrolled_at: dt.datetime
    arm: int | None = None  # the arm's first position
    sent: bool = False
    opened: bool = False
    clicked_at: list[dt.datetime] = dataclasses.field(default_factory=list)


def _net(total: Decimal, refunded: Decimal) -> Decimal:
    return total - refunded


def _orders_by_customer(tenant: Tenant, customer_ids: Iterable[int]) -> dict[int, list[tuple]]:
    """Each customer's paid, not cancelled orders: (paid_at, net in the store's currency or None)."""
    out: dict[int, list[tuple]] = defaultdict(list)
    ids = list(set(customer_ids))
    for start in range(0, len(ids), 5000):  # a bounded IN list per query
        rows = (Order.objects.for_tenant(tenant)
                .filter(customer_id__in=ids[start:start + 5000], paid_at__isnull=False, cancelled_at__isnull=True)
                .values_list("customer_id", "paid_at", "total", "refunded_total", "currency"))
        for customer_id, paid_at, total, refunded, currency in rows:
            out[customer_id].append((paid_at, _net(total, refunded) if currency == tenant.currency else None))
    return out


def _pre_period(orders: list[tuple], enrolled_at: dt.datetime) -> tuple[float, float]:
    """What was known at enrollment: paid orders up to then, and the log of 1 + their net spend (the log,
    because spend is heavy-tailed: one 149.00 grinder would otherwise weigh more than what a basket says)."""
    before = [(paid_at, net) for paid_at, net in orders if paid_at <= enrolled_at]
    spend = sum((net for _, net in before if net is not None), Decimal(0))
    return float(len(before)), math.log1p(max(0.0, float(spend)))


def _in_window(orders: list[tuple], start: dt.datetime, window: dt.timedelta) -> tuple[bool, Decimal]:
    hits = [(paid_at, net) for paid_at, net in orders if start < paid_at <= start + window]
    return bool(hits), sum((net for _, net in hits if net is not None), Decimal(0))


class _MomentSums:
    """Accumulates a group's Moments with y and two covariates."""

    def __init__(self) -> None:
        self.n, self.y, self.yy = 0, 0.0, 0.0
        self.x, self.xx, self.xy = [0.0, 0.0], [[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0]

    def add(self, y: float, x: tuple[float, float]) -> None:
        self.n += 1
        self.y += y
        self.yy += y * y
        for i in range(2):
            self.x[i] += x[i]
            self.xy[i] += x[i] * y
            for j in range(2):
                self.xx[i][j] += x[i] * x[j]

    def moments(self) -> Moments:
        return Moments(self.n, self.y, self.yy, tuple(self.x), tuple(tuple(r) for r in self.xx), tuple(self.xy))


def split_report(tenant: Tenant, split: Step, now: dt.datetime, steps: list[Step] | None = None) -> SplitReport:
    """One A/B split's arms, their intervals and the stopping rule's verdict (the module's docstring)."""
    journey = split.journey
    steps = steps if steps is not None else list(Step.objects.for_tenant(tenant).filter(journey=journey)
                                                 .order_by("position"))
    test = abtest_for(tenant, split)
    by_position = {s.position: s for s in steps}
    arm_steps = _arm_steps(steps, split)
    variants = [v for v in (split.config or {}).get("variants") or []
                if isinstance(v, dict) and v.get("step") in arm_steps and v.get("step") in by_position]
    labels = _labels()
    arms = {v["step"]: ArmReport(next(labels), by_position[v["step"]], int(v.get("weight", 1)),
                                 key=str(by_position[v["step"]].pk)) for v in variants}
    step_arm = {s.pk: start for start, members in arm_steps.items() if start in arms for s in members}
    email_steps = {s.pk for members in arm_steps.values() for s in members if s.kind in EMAIL_KINDS}

    assigned = (Delivery.objects.for_tenant(tenant)
                .filter(step=split, state=Delivery.State.SENT, sent_at__isnull=False))
    rows: dict[int, _Assignment] = {
        enrollment_id: _Assignment(enrollment_id, customer_id, sent_at, enrolled_at)
        for enrollment_id, customer_id, sent_at, enrolled_at in assigned.values_list(
            "enrollment_id", "customer_id", "sent_at", "enrollment__enrolled_at")}
    for enrollment_id, step_id, sent_at, opened_at, clicked_at in (
            Delivery.objects.for_tenant(tenant)
            .filter(journey=journey, step_id__in=list(step_arm), enrollment_id__in=assigned.values("enrollment_id"))
            .values_list("enrollment_id", "step_id", "sent_at", "opened_at", "clicked_at")):
        row = rows.get(enrollment_id)
        if row is None:
            continue
        row.arm = step_arm[step_id]
        if step_id in email_steps:
            row.sent |= sent_at is not None
            row.opened |= opened_at is not None
            if clicked_at is not None:
                row.clicked_at.append(clicked_at)
    if len(arms) < 2:
        decision = Decision(False, None, None, "This split needs two arms with a step each before it can be tested.")
        return SplitReport(split, test, list(arms.values()), decision, test.confidence / 100)
    return _measure(tenant, split, test, arms, rows.values(), now)


def content_report(tenant: Tenant, step: Step, now: dt.datetime) -> SplitReport:
    """An email step's content test: version A (the template) against its other versions, each customer's
    version picked as the send picked it, over the emails sent since the test (re)started and before a
    version was promoted (after that everyone gets the winner)."""
    test = abtest_for(tenant, step)
    template = step.template
    arms = {label: ArmReport(label, step, 1, key=label)
            for label in VERSION_LABELS[:1 + len(template.versions if template else [])]}
    sends = Delivery.objects.for_tenant(tenant).filter(step=step, state=Delivery.State.SENT, sent_at__isnull=False)
    if test.started_at:
        sends = sends.filter(sent_at__gte=test.started_at)
    if test.promoted_at:
        sends = sends.filter(sent_at__lt=test.promoted_at)
    rows = []
    for enrollment_id, customer_id, sent_at, enrolled_at, opened_at, clicked_at in sends.values_list(
            "enrollment_id", "customer_id", "sent_at", "enrollment__enrolled_at", "opened_at", "clicked_at"):
        label = template.version_drawn(step.pk, customer_id) if template and template.versions else "A"
        rows.append(_Assignment(enrollment_id, customer_id, sent_at, enrolled_at, arm=label, sent=True,
                                opened=opened_at is not None, clicked_at=[clicked_at] if clicked_at else []))
    return _measure(tenant, step, test, arms, rows, now)


def _measure(tenant: Tenant, step: Step, test: AbTest, arms: dict[Any, ArmReport], rows: Iterable[_Assignment],
             now: dt.datetime) -> SplitReport:
    """Add each assignment whose window has closed to its arm; the intervals and the verdict."""
    rows = [row for row in rows if row.arm in arms]
    orders = _orders_by_customer(tenant, (row.customer_id for row in rows))
    sums = {key: _MomentSums() for key in arms}
    for row in rows:
        arm = arms[row.arm]
        if row.assigned_at + test.window > now:
            arm.maturing += 1
            continue
        mine = orders.get(row.customer_id, [])
        ordered, revenue = _in_window(mine, row.assigned_at, test.window)
        clicked = any(row.assigned_at < at <= row.assigned_at + test.window for at in row.clicked_at)
        goal = ordered if test.goal == AbTest.Goal.ORDER else clicked
        arm.enrolled += 1
        arm.sent += row.sent
        arm.opened += row.opened
        arm.clicked += bool(row.clicked_at)
        arm.converted += goal
        arm.revenue += revenue
        arm.revenue_squares += revenue * revenue
        sums[row.arm].add(float(goal), _pre_period(mine, row.enrolled_at))
    confidence = test.confidence / 100
    reports = list(arms.values())
    for arm, key in zip(reports, arms, strict=True):
        arm.moments = sums[key].moments()
        arm.rate_low, arm.rate_high = wilson_interval(arm.converted, arm.enrolled, confidence)
    control = reports[0]
    for arm in reports[1:]:
        if arm.enrolled and control.enrolled:
            arm.versus_a = newcombe_difference(arm.converted, arm.enrolled, control.converted, control.enrolled,
                                               confidence)
        if arm.enrolled >= 2 and control.enrolled >= 2:
            arm.revenue_versus_a = welch_difference(
                GroupSums(arm.enrolled, float(arm.revenue), float(arm.revenue_squares)),
                GroupSums(control.enrolled, float(control.revenue), float(control.revenue_squares)), confidence)
            arm.versus_a_cuped = cuped_difference(arm.moments, control.moments, confidence)
    decision = ab_decide([Arm(a.label, a.converted, a.enrolled) for a in reports], rule=test.rule,
                         sample_size=test.sample_size, confidence=confidence, min_sample=test.min_sample)
    return SplitReport(step, test, reports, decision, confidence)


def is_content_test(step: Step) -> bool:
    return step.kind in EMAIL_KINDS and step.template is not None and bool(step.template.versions)


def journey_tests(tenant: Tenant, journey: Journey, now: dt.datetime) -> list[SplitReport]:
    """The journey's A/B splits and its email steps with versions, in step order."""
    steps = list(Step.objects.for_tenant(tenant).filter(journey=journey).select_related("journey", "template")
                 .order_by("position"))
    return [split_report(tenant, s, now, steps) if s.kind == Step.Kind.AB_SPLIT else content_report(tenant, s, now)
            for s in steps if s.kind == Step.Kind.AB_SPLIT or is_content_test(s)]


def running_tests(tenant: Tenant, now: dt.datetime) -> list[SplitReport]:
    """Every test of the store's active or paused journeys that has assigned anyone: the dashboard's list."""
    journeys = (Journey.objects.for_tenant(tenant).filter(status__in=[Journey.Status.ACTIVE, Journey.Status.PAUSED])
                .order_by("-priority", "name"))
    reports = []
    for journey in journeys:
        reports += [r for r in journey_tests(tenant, journey, now) if any(a.enrolled or a.maturing for a in r.arms)]
    return reports


# --- CUPED on the holdout lift -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LiftCuped:
    plain: Difference | None  # Newcombe, as the dashboard's lift
    cuped: Difference | None
    treated: Moments
    holdout: Moments


def lift_cuped(tenant: Tenant, journey: Journey, since: dt.datetime, until: dt.datetime,
               now: dt.datetime) -> LiftCuped:
    """The journey's holdout lift (conversion, treated − held out) over enrollments in [since, until)
    whose window has closed, before and after CUPED on pre-period orders and spend."""
    closed_before = now - journey.attribution_window
    enrollments = list(Enrollment.objects.for_tenant(tenant)
                       .filter(journey=journey, state__in=MEASURED, enrolled_at__gte=since,
                               enrolled_at__lt=min(until, closed_before + dt.timedelta(microseconds=1)))
                       .values_list("customer_id", "enrolled_at", "state"))
    orders = _orders_by_customer(tenant, (c for c, _, _ in enrollments))
    events: dict[int, list[tuple]] = defaultdict(list)
    if journey.goal_event and journey.goal_event not in ORDER_GOALS:
        for customer_id, at in (Event.objects.for_tenant(tenant)
                                .filter(type=journey.goal_event, customer_id__in={c for c, _, _ in enrollments})
                                .values_list("customer_id", "occurred_at")):
            events[customer_id].append((at, None))
    sums = {True: _MomentSums(), False: _MomentSums()}
    custom_goal = bool(journey.goal_event) and journey.goal_event not in ORDER_GOALS
    for customer_id, enrolled_at, state in enrollments:
        mine = orders.get(customer_id, [])
        source = events.get(customer_id, []) if custom_goal else mine
        goal, _ = _in_window(source, enrolled_at, journey.attribution_window)
        sums[state == Enrollment.State.HOLDOUT].add(float(goal), _pre_period(mine, enrolled_at))
    treated, holdout = sums[False].moments(), sums[True].moments()
    plain = cuped = None
    if treated.n and holdout.n:
        plain = newcombe_difference(int(treated.y), treated.n, int(holdout.y), holdout.n)
    if treated.n >= 2 and holdout.n >= 2:
        cuped = cuped_difference(treated, holdout)
    return LiftCuped(plain, cuped, treated, holdout)


# --- writes -------------------------------------------------------------------------------------


def _record(tenant: Tenant, journey: Journey, split: Step, type_: str, by: str, **data: Any) -> None:
    """The audit log's line, on the store's timeline, as the builder's changes."""
    event_append(tenant=tenant, type=type_, occurred_at=clock.now(),
                 data={"journey": journey.name, "journey_id": journey.pk, "step": split.position, **data, "by": by})


def _locked_step(tenant: Tenant, journey_id: int, step_id: int, *, content: bool = False) -> tuple[Journey, Step]:
    """The journey (locked FOR UPDATE) and its split, or (content=True, or either) its email step."""
    journey = Journey.objects.for_tenant(tenant).select_for_update().filter(pk=journey_id).first()
    step = (Step.objects.for_tenant(tenant).filter(pk=step_id, journey_id=journey_id)
            .select_related("journey", "template").first() if journey else None)
    kinds = EMAIL_KINDS if content else (Step.Kind.AB_SPLIT, *EMAIL_KINDS)
    if journey is None or step is None or step.kind not in kinds:
        raise NotFound("journeys.not_found", "This journey or its tested step no longer exists.")
    if journey.status == Journey.Status.ARCHIVED:
        raise AbTestError("journeys.archived", "This journey is archived: duplicate it to test again.")
    return journey, step


def _saved_test(tenant: Tenant, journey: Journey, step: Step) -> AbTest:
    test = AbTest.objects.for_tenant(tenant).select_for_update().filter(step=step).first()
    if test is None:
        test = abtest_for(tenant, step)
        test.save()
    return test


def abtest_configure(*, tenant: Tenant, journey_id: int, step_id: int, values: dict[str, Any], by: str) -> AbTest:
    """Set a split's goal, window, stopping rule and auto-promote. Validates everything before writing;
    writes and audits only what differs. One transaction holding the journey row."""
    problems: dict[str, list[str]] = {}
    if values.get("goal") not in AbTest.Goal.values:
        problems["goal"] = ["choose what counts as a conversion: an order or a click"]
    window = values.get("window")
    if not isinstance(window, dt.timedelta) or not MIN_WINDOW <= window <= MAX_WINDOW:
        problems["window"] = [f"give the window in whole days, from {MIN_WINDOW.days} to {MAX_WINDOW.days}"]
    if values.get("rule") not in AbTest.Rule.values:
        problems["rule"] = ["choose when the test stops: a sample size or significance"]
    for name in ("sample_size", "min_sample"):
        value = values.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not MIN_SAMPLE <= value <= MAX_SAMPLE:
            problems[name] = [f"give a number of customers per arm from {MIN_SAMPLE} to {MAX_SAMPLE:,}"]
    if values.get("confidence") not in CONFIDENCES:
        problems["confidence"] = ["choose 90, 95 or 99 percent"]
    if not isinstance(values.get("auto_promote"), bool):
        problems["auto_promote"] = ["say whether the winner is promoted by itself"]
    if problems:
        raise AbTestError("journeys.test_invalid", "Some of the test's settings need fixing.", problems)
    fields = ("goal", "window", "rule", "sample_size", "min_sample", "confidence", "auto_promote")
    with transaction.atomic():
        journey, split = _locked_step(tenant, journey_id, step_id)
        test = _saved_test(tenant, journey, split)
        changed = {name: values[name] for name in fields if getattr(test, name) != values[name]}
        if changed:
            _record(tenant, journey, split, "store.journey_test_changed", by, changes={
                name: [json_safe(getattr(test, name)), json_safe(value)] for name, value in changed.items()})
            for name, value in changed.items():
                setattr(test, name, value)
            test.save(update_fields=[*changed, "updated_at"])
    return test


def abtest_promote(*, tenant: Tenant, journey_id: int, step_id: int, arm: str, by: str) -> AbTest:
    """Give everyone who reaches the step from now on one arm: a split's arm (`arm` is its first step's id;
    the engine's next_step reads it) or an email's version (`arm` is its label; rendering reads it from the
    template). Customers already in another arm finish it. Promoting the arm already promoted changes
    nothing. One transaction holding the journey row (and so holding back enrollments into it)."""
    with transaction.atomic():
        journey, step = _locked_step(tenant, journey_id, step_id)
        if step.kind == Step.Kind.AB_SPLIT:
            steps = list(Step.objects.for_tenant(tenant).filter(journey=journey).order_by("position"))
            starts = sorted((s for s in steps if s.position in _arm_steps(steps, step)),
                            key=lambda s: _variant_order(step, s))
            labels = {str(s.pk): label for s, label in zip(starts, _labels(), strict=False)}
            by_key = {str(s.pk): s for s in starts}
        else:
            versions = step.template.versions if step.template else []
            labels = {label: label for label in VERSION_LABELS[:1 + len(versions)]} if versions else {}
        if arm not in labels:
            raise AbTestError("journeys.test_no_such_arm", "That is not one of this test's arms: reload the page "
                                                           "and choose an arm it lists.", {"arm": ["not an arm"]})
        test = _saved_test(tenant, journey, step)
        current = (labels.get(str(test.winner_id)) if step.kind == Step.Kind.AB_SPLIT
                   else test.winner_version) if test.promoted_at else None
        if current == labels[arm]:
            return test
        test.promoted_at, test.promoted_by = clock.now(), by
        if step.kind == Step.Kind.AB_SPLIT:
            test.winner = by_key[arm]
        else:
            test.winner_version = arm
            EmailTemplate.objects.for_tenant(tenant).filter(pk=step.template_id).update(promoted_version=arm)
        test.save(update_fields=["winner", "winner_version", "promoted_at", "promoted_by", "updated_at"])
        _record(tenant, journey, step, "store.journey_test_promoted", by, arm=labels[arm],
                **({"arm_step": test.winner.position} if step.kind == Step.Kind.AB_SPLIT else {}),
                **({"changes": {"winner": [current, labels[arm]]}} if current else {}))
    return test


MAX_VERSIONS = len(VERSION_LABELS) - 1


def template_version_add(*, tenant: Tenant, journey_id: int, step_id: int, content: dict[str, str], by: str) -> str:
    """Add a version of an email step's content (subject, preheader, body; an empty field keeps version A's) and
    (re)start its content test: only emails sent from now on count, and a promoted version is forgotten.
    Returns the new version's label. The same checks as the builder's content."""
    fields = {k: str(content.get(k, "") or "") for k in ("subject", "preheader", "body")}
    with transaction.atomic():
        journey, step = _locked_step(tenant, journey_id, step_id, content=True)
        template = step.template
        if template is None:
            raise AbTestError("journeys.test_no_template", f"Step {step.position} has no email yet: write it first.")
        if not any(fields.values()):
            raise AbTestError("journeys.test_empty_version", "Write at least a subject or a body for the new version.",
                              {"subject": ["write what version B changes"]})
        versions = list(template.versions)
        if len(versions) >= MAX_VERSIONS:
            raise AbTestError("journeys.test_too_many_versions",
                              f"An email has at most {MAX_VERSIONS + 1} versions: remove one first.")
        whole = {k: fields[k] or getattr(template, k) for k in fields}
        problems = content_problems(**whole, kind=step.kind, position=step.position)
        if problems:
            raise AbTestError("journeys.content_problems", "The new version was not added. Fix these first:",
                              {p.field or "body": [p.message] for p in problems})
        versions.append({k: v for k, v in fields.items() if v})
        label = VERSION_LABELS[len(versions)]
        _restart(tenant, journey, step, versions)
        _record(tenant, journey, step, "store.journey_test_changed", by, version_added=label)
    return label


def template_version_remove(*, tenant: Tenant, journey_id: int, step_id: int, label: str, by: str) -> None:
    """Remove version `label` (B…; the later ones move up a letter) and restart the content test."""
    with transaction.atomic():
        journey, step = _locked_step(tenant, journey_id, step_id, content=True)
        versions = list(step.template.versions if step.template else [])
        index = VERSION_LABELS.index(label) if label in VERSION_LABELS[1:1 + len(versions)] else None
        if index is None:
            raise AbTestError("journeys.test_no_such_arm", "That version does not exist: reload the page.")
        del versions[index - 1]
        _restart(tenant, journey, step, versions)
        _record(tenant, journey, step, "store.journey_test_changed", by, version_removed=label)


def _restart(tenant: Tenant, journey: Journey, step: Step, versions: list[dict[str, str]]) -> None:
    EmailTemplate.objects.for_tenant(tenant).filter(pk=step.template_id).update(
        versions=versions, promoted_version="", updated_at=clock.now())
    test = _saved_test(tenant, journey, step)
    test.started_at, test.promoted_at, test.promoted_by, test.winner_version = clock.now(), None, "", ""
    test.save(update_fields=["started_at", "promoted_at", "promoted_by", "winner_version", "updated_at"])


def _variant_order(split: Step, step: Step) -> int:
    positions = [v.get("step") for v in (split.config or {}).get("variants") or [] if isinstance(v, dict)]
    return positions.index(step.position) if step.position in positions else len(positions)


def abtests_auto_promote(*, tenant: Tenant, now: dt.datetime) -> int:
    """Promote the winner of every test in the store that asked for it and whose rule is met. Returns how many."""
    promoted = 0
    for test in (AbTest.objects.for_tenant(tenant).filter(auto_promote=True, promoted_at__isnull=True,
                                                          journey__status=Journey.Status.ACTIVE)
                 .select_related("step__journey", "step__template")):
        if test.step.kind == Step.Kind.AB_SPLIT:
            report = split_report(tenant, test.step, now)
        elif is_content_test(test.step):
            report = content_report(tenant, test.step, now)
        else:
            continue
        if report.winner is not None:
            abtest_promote(tenant=tenant, journey_id=test.journey_id, step_id=test.step_id, arm=report.winner.key,
                           by=AUTO_PROMOTER)
            promoted += 1
    return promoted


def tenants_auto_promoting() -> list[int]:
    """Stores with an undecided auto-promote test (system scope: across tenants)."""
    return sorted(set(AbTest.all_tenants.filter(auto_promote=True, promoted_at__isnull=True)
                      .values_list("tenant_id", flat=True)))
