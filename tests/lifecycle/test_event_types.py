"""The event registry (lifecycle/event_types.py): every type the product writes is declared once, and each
event reaches exactly the apps its type names, in the declared order."""

import ast
from pathlib import Path

import pytest

import feedback.handlers
import journeys.enrollment
import loyalty.handlers
import referrals.handlers
from lifecycle import events
from lifecycle.event_types import CUSTOM, EVENT_TYPES, REACTION_ORDER, EventType, OrderData, event_type
from tests.layout import ROOT, project_apps

# The services that append events, and the helpers of theirs that take the type as their second argument.
APPENDERS = {"event_append", "event_row"}
TYPE_AS_SECOND_ARGUMENT = {"_event", "_emit_once"}


def written_types() -> dict[str, str]:
    """Every literal event type the apps' code appends, with where it is written."""
    found = {}
    for app in project_apps():
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                called = getattr(node.func, "id", getattr(node.func, "attr", ""))
                typed = [k.value for k in node.keywords if k.arg == "type"] if called in APPENDERS else (
                    node.args[1:2] if called in TYPE_AS_SECOND_ARGUMENT else [])
                for expression in typed:  # a literal, or each side of `"a" if created else "b"`
                    for constant in ast.walk(expression):
                        if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                            found[constant.value] = f"{Path(path).relative_to(ROOT)}:{node.lineno}"
    return found


def test_every_event_type_the_product_writes_is_declared():
    written = written_types()
    assert {"order.refunded", "customer.erased", "review.approved", "referral.converted", "feedback.answered",
            "store.loyalty_tier_added", "store.referral_program_changed"} <= set(written)
    undeclared = {name: where for name, where in written.items() if name not in EVENT_TYPES}
    assert undeclared == {}


def test_each_app_registered_its_one_reaction():
    assert set(events._reactions) == set(REACTION_ORDER)
    assert events._reactions["loyalty"] is loyalty.handlers.on_event
    assert events._reactions["journeys"] is journeys.enrollment.on_event


def test_reactions_follow_the_declared_order():
    assert events.reactions_to("order.paid") == [
        loyalty.handlers.on_event, referrals.handlers.on_event, journeys.enrollment.on_event]
    assert events.reactions_to("customer.erased") == [
        loyalty.handlers.on_event, referrals.handlers.on_event, journeys.enrollment.on_event,
        feedback.handlers.on_event]
    assert events.reactions_to("order.delivered") == [journeys.enrollment.on_event]


def test_a_storefronts_own_event_type_is_custom():
    assert event_type("feature.used") is CUSTOM
    assert events.reactions_to("feature.used") == [loyalty.handlers.on_event, journeys.enrollment.on_event]


def test_a_type_whose_reactors_break_the_order_is_refused():
    with pytest.raises(ValueError, match="REACTION_ORDER"):
        EventType("order.other", OrderData, ("journeys", "loyalty"), "out of order")
    with pytest.raises(ValueError, match="REACTION_ORDER"):
        events.reaction("workspace")
