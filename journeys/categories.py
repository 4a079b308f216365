"""Each journey's email category (lifecycle.preferences.Category): what a customer turns on or off on the
preference page, and what the send gate checks before a marketing email goes
(lifecycle.preferences.category_skip_reason, called from journeys/schedule.py's gate).

A journey's category is chosen in its settings and carried by its JSON; when a file or a new journey does
not say, `category_default` picks it from what the journey does: survey and review requests are
"reviews", referral and loyalty invitations (or emails showing points or a referral link) "loyalty",
win-back, replenishment and discount emails "offers", everything else (setup tips, check-ins) "tips".
"""

import re
from collections.abc import Iterable

from lifecycle.preferences import Category

from .models import Step

LOYALTY_KINDS = {Step.Kind.REFERRAL_INVITE, Step.Kind.LOYALTY_INVITE, Step.Kind.AWARD_POINTS}
# Template values only a loyalty or referral email shows.
LOYALTY_VALUES = re.compile(r"\{\{\s*(loyalty_url|points_balance|tier|referral_url|referral_code)\b")
# Words of a selling email, in the journey's name, description or subjects.
OFFER_WORDS = re.compile(r"\b(offers?|discounts?|coupons?|sale|% off|win[- ]?back|replenish\w*|restock\w*|"
                         r"running low|re-?order\w*|miss you)\b", re.I)


def category_default(*, kinds: Iterable[str], texts: Iterable[str] = ()) -> str:
    """The category a journey gets when nobody chose one: from its steps' kinds, then from its words
    (name, description, each template's subject and body)."""
    kinds, texts = set(kinds), list(texts)
    if Step.Kind.FEEDBACK_REQUEST in kinds:
        return Category.REVIEWS
    if kinds & LOYALTY_KINDS or any(LOYALTY_VALUES.search(text or "") for text in texts):
        return Category.LOYALTY
    if any(OFFER_WORDS.search(text or "") for text in texts):
        return Category.OFFERS
    return Category.TIPS

