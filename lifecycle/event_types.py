"""Every event type on a customer's timeline, declared once: its name, the shape of its data, and the
apps that react to it, in the order they react.

The core names the apps that react by label only; it imports none of them. Each app registers its
reaction (`lifecycle.events.reaction`, and optionally a batch reaction beside it) when Django starts it,
and the event sweep calls, for each event, the reactions its type lists here, one after another in one
transaction (a round of events at once where an app has a batch reaction): no Django signals, and the
order is data a reader (and a test) can see.

Why this order: loyalty first, so a journey reacting to the same event already sees the points; referrals
before journeys, so a referral invitation sent on `order.paid` sees the attribution; feedback last (it only
erases). A storefront may also post event types of its own (`POST /api/v1/events`, e.g. `feature.used`):
those are `CUSTOM`.
"""

import dataclasses
from decimal import Decimal

import pydantic

LOYALTY, REFERRALS, JOURNEYS, FEEDBACK = "loyalty", "referrals", "journeys", "feedback"
# Every app that may react, in the order they react whenever several do.
REACTION_ORDER = (LOYALTY, REFERRALS, JOURNEYS, FEEDBACK)


class Data(pydantic.BaseModel):
    """An event's data (Event.data, JSON). Extra keys are kept: the shapes say what is always there."""

    model_config = pydantic.ConfigDict(extra="allow")


class OrderData(Data):
    number: str | None = None
    total: Decimal | None = None
    currency: str | None = None


class RefundData(OrderData):
    refund_external_id: str
    amount: Decimal | None = None


class CustomerData(Data):
    pass


class EmailData(Data):
    delivery_id: int | None = None
    journey_id: int | None = None
    step_id: int | None = None


class FeedbackData(Data):
    response_id: int | None = None
    score: int | None = None


class ReviewData(Data):
    review_id: int


class LoyaltyData(Data):
    pass


class ReferralData(Data):
    referral_id: int | None = None


class StoreData(Data):
    by: str | None = None


class SegmentData(Data):
    segment_id: int
    segment: str


class DateData(Data):
    fact: str  # birthday | order_anniversary | days_since_last_order
    date: str  # the day it is about, in the store's time zone (ISO)
    days: int | None = None
    years: int | None = None


class CustomData(Data):
    """A storefront's own event: whatever it posted, as posted."""


@dataclasses.dataclass(frozen=True)
class EventType:
    name: str
    data: type[Data]
    reactors: tuple[str, ...]
    description: str

    def __post_init__(self) -> None:
        ordered = tuple(app for app in REACTION_ORDER if app in self.reactors)
        if ordered != self.reactors or len(set(self.reactors)) != len(self.reactors):
            raise ValueError(f"{self.name}: reactors {self.reactors} must follow REACTION_ORDER {REACTION_ORDER}")


# Loyalty awards a store's per-event bonus (loyalty.Program.event_bonuses) for any event that is not an
# order's, a customer record's or its own; journeys may start, release a wait or exit on any event.
_BONUS_AND_JOURNEYS = (LOYALTY, JOURNEYS)
_ORDER_MONEY = (LOYALTY, REFERRALS, JOURNEYS)

_TYPES = (
    EventType("order.placed", OrderData, (JOURNEYS,), "An order was placed (paid or not yet)."),
    EventType("order.paid", OrderData, _ORDER_MONEY, "An order was paid: post-purchase effects start here."),
    EventType("order.fulfilled", OrderData, (JOURNEYS,), "An order was shipped."),
    EventType("order.delivered", OrderData, (JOURNEYS,), "An order arrived."),
    EventType("order.cancelled", OrderData, _ORDER_MONEY, "An order was cancelled."),
    EventType("order.refunded", RefundData, _ORDER_MONEY, "Money was given back on an order (once per refund)."),
    EventType("customer.created", CustomerData, (JOURNEYS,), "A customer was first seen."),
    EventType("customer.unsubscribed", CustomerData, (JOURNEYS,), "A customer left marketing email."),
    EventType("customer.preferences_changed", CustomerData, (JOURNEYS,),
              "A customer chose which kinds of marketing email they get (or subscribed again) on the preference page."),
    EventType("customer.suppressed", CustomerData, (JOURNEYS,), "An address bounced hard or complained."),
    EventType("customer.erased", CustomerData, (LOYALTY, REFERRALS, JOURNEYS, FEEDBACK),
              "A customer's personal data was erased: every app forgets its share."),
    *(EventType(f"email.{what}", EmailData, _BONUS_AND_JOURNEYS, f"The ESP reported an email {what}.")
      for what in ("delivered", "opened", "clicked", "bounced", "complained", "unsubscribed", "rejected",
                   "failed", "deferred")),
    *(EventType(f"feedback.{what}", FeedbackData, _BONUS_AND_JOURNEYS, f"A survey answer ({what}).")
      for what in ("answered", "updated", "negative", "positive")),
    EventType("review.submitted", ReviewData, _BONUS_AND_JOURNEYS, "A product review was written."),
    EventType("review.approved", ReviewData, _BONUS_AND_JOURNEYS, "A review was published (loyalty's review bonus)."),
    *(EventType(f"loyalty.{what}", LoyaltyData, (JOURNEYS,), f"Loyalty: {what.replace('_', ' ')}.")
      for what in ("tier_reached", "tier_lost", "reward_unlocked", "points_expiring")),
    *(EventType(f"referral.{what}", ReferralData, _BONUS_AND_JOURNEYS, f"A referral {what}.")
      for what in ("converted", "rejected", "rewarded")),
    EventType("segment.entered", SegmentData, (JOURNEYS,),
              "A customer entered a saved segment (journeys.segments, at its refresh)."),
    EventType("date.reached", DateData, (JOURNEYS,),
              "A day relative to a customer fact came: birthday, order anniversary, N days since the last order."),
    *(EventType(f"deliverability.{what}", StoreData, _BONUS_AND_JOURNEYS, f"The store's deliverability {what}.")
      for what in ("alert", "paused", "resumed", "recovered")),
    *(EventType(f"store.{what}", StoreData, _BONUS_AND_JOURNEYS, f"Store settings: {what.replace('_', ' ')}.")
      for what in ("settings_changed", "member_invited", "invitation_revoked", "member_added", "member_role_changed",
                   "member_removed", "api_key_created", "api_key_revoked", "connected", "secret_rotated",
                   "loyalty_program_created", "loyalty_program_changed", "loyalty_tier_added", "loyalty_tier_changed",
                   "loyalty_tier_removed", "loyalty_reward_added", "loyalty_reward_changed", "loyalty_reward_activated",
                   "loyalty_reward_deactivated", "referral_program_created", "referral_program_changed",
                   "survey_created", "survey_changed", "review_moderated", "journey_created", "journey_activated",
                   "journey_paused", "journey_archived", "journey_changed", "journey_step_added", "journey_step_changed",
                   "journey_step_moved", "journey_step_removed", "journey_test_changed", "journey_test_promoted",
                   "member_2fa_enabled", "member_2fa_disabled",
                   "two_factor_required_changed", "password_changed", "webhook_secret_rotated", "review_settings_changed",
                   "sending_domain_added", "sending_domain_changed", "sending_domain_checked", "sending_domain_removed",
                   "customers_imported", "orders_imported", "customer_exported", "data_exported")),
)

EVENT_TYPES: dict[str, EventType] = {event_type.name: event_type for event_type in _TYPES}
CUSTOM = EventType("custom", CustomData, _BONUS_AND_JOURNEYS,
                   "A storefront's own event type (support.contacted, product.registered, feature.used, …).")


def event_type(name: str) -> EventType:
    """The declared type of an event named `name`; a name the product does not declare is a storefront's own."""
    return EVENT_TYPES.get(name, CUSTOM)


def is_declared(name: str) -> bool:
    return name in EVENT_TYPES


