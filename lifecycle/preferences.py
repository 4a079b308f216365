"""A customer's email preferences: which kinds of marketing email they want, chosen on the preference
page an email's footer links to (lifecycle/pages.py), and honoured by the send gate (journeys).

Every marketing journey has one category (journeys.Journey.category). A customer's choices are kept on
the customer (`Customer.email_preferences`, {category: false} for each one turned off): a category
missing from it is on, so a new category starts on for everyone and no row is written for the many
who never change anything. Transactional email (order information) has no category and is never
held back by these choices; marketing consent and unsubscribe stay the master switch above them.
"""

from typing import Any

from django.db import models, transaction

from . import clock
from .customers import customer_unsubscribe
from .models import Customer
from .timeline import event_append


class Category(models.TextChoices):
    TIPS = "tips", "Tips and how-to"
    REVIEWS = "reviews", "Reviews and surveys"
    OFFERS = "offers", "Offers"
    LOYALTY = "loyalty", "Loyalty and referral news"


# The words in a skip reason ("preferences: offers turned off"), as the explain view shows them.
REASON_WORDS = {Category.TIPS: "tips and how-to", Category.REVIEWS: "reviews and surveys",
                Category.OFFERS: "offers", Category.LOYALTY: "loyalty and referral news"}


def categories_off(customer: Customer) -> list[str]:
    """The categories this customer turned off, in the order the page lists them."""
    chosen = customer.email_preferences or {}
    return [category for category in Category.values if chosen.get(category) is False]


def category_skip_reason(customer: Customer, category: str) -> str:
    """Why a marketing email of `category` may not go to this customer, or "" when it may."""
    if category in Category.values and (customer.email_preferences or {}).get(category) is False:
        return f"preferences: {REASON_WORDS[Category(category)]} turned off"
    return ""


def is_subscribed(customer: Customer) -> bool:
    """Gets marketing email at all (the master switch the send gate checks before the categories)."""
    return customer.marketing_consent is True and customer.unsubscribed_at is None


def customer_preferences_set(*, customer: Customer, on: set[str], subscribe: bool = False,
                             source: str = Customer.ConsentSource.PREFERENCES) -> bool:
    """Keep exactly the categories in `on` turned on (every other one off), and with `subscribe`, give
    marketing consent again (clearing an unsubscribe), recording `source` as where it came from.

    One transaction, the customer row locked. Idempotent: returns False and writes nothing when nothing
    changes; otherwise appends one `customer.preferences_changed` event saying what changed.
    """
    unknown = set(on) - set(Category.values)
    if unknown:
        raise ValueError(f"unknown email categories: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        locked = Customer.objects.for_tenant(customer.tenant_id).select_for_update().get(pk=customer.pk)
        before = categories_off(locked)
        after = [category for category in Category.values if category not in on]
        resubscribe = subscribe and not is_subscribed(locked)
        if before == after and not resubscribe:
            return False
        now = clock.now()
        fields = ["email_preferences", "updated_at"]
        locked.email_preferences = {category: False for category in after}
        if resubscribe:
            locked.marketing_consent = True
            locked.unsubscribed_at = None
            locked.consent_updated_at = now
            locked.consent_source = source
            fields += ["marketing_consent", "unsubscribed_at", "consent_updated_at", "consent_source"]
        locked.save(update_fields=fields)
        data: dict[str, Any] = {"off": after, "turned_off": [c for c in after if c not in before],
                                "turned_on": [c for c in before if c not in after], "subscribed": resubscribe,
                                "source": source}
        event_append(tenant=locked.tenant, type="customer.preferences_changed", occurred_at=now, customer=locked,
                     data=data)
    customer.email_preferences = locked.email_preferences
    customer.marketing_consent, customer.unsubscribed_at = locked.marketing_consent, locked.unsubscribed_at
    return True


def customer_unsubscribe_all(*, customer: Customer) -> bool:
    """"Unsubscribe from everything" on the preference page: the same as the footer's unsubscribe
    (customer.unsubscribed, which also ends journeys that exit on it). The categories stay as chosen,
    for the day the customer subscribes again."""
    return customer_unsubscribe(customer=customer, detail="preference page")
