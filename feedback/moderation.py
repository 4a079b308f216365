"""The store's review moderation rules: which new reviews are published without a person.

Moderation off: every review is published as it arrives. On: a review waits in the queue
(workspace/queues.py) unless it meets the auto-publish rules the store set — at least N stars and,
if the store asks, no web address in its title or text. The settings page's preview runs the same
`review_verdict` over the store's recent reviews, so what it shows is what arrival would do.
"""

import dataclasses
import re

from lifecycle.models import Tenant

from .models import ReviewSettings

# A web address, written the ways spam writes them: a scheme, www., or a name with a common ending.
LINK = re.compile(r"(https?://|www\.|\b[a-z0-9-]+\.(com|net|org|io|ru|cn|shop|xyz|top|info|biz|co)\b)", re.I)
AUTO_PUBLISHER = "auto-publish rule"


@dataclasses.dataclass(frozen=True)
class Verdict:
    publish: bool
    why: str


def review_settings_for(tenant: Tenant | int) -> ReviewSettings:
    """The store's settings, or the defaults (unsaved) when it never changed them."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    found = ReviewSettings.objects.for_tenant(tenant_id).first()
    return found or ReviewSettings(tenant_id=tenant_id)


def has_link(*texts: str) -> bool:
    return any(LINK.search(text or "") for text in texts)


def review_verdict(rules: ReviewSettings, *, rating: int, title: str, body: str) -> Verdict:
    if not rules.moderation:
        return Verdict(True, "moderation is off: every review is published")
    if rules.auto_publish_min_rating is None:
        return Verdict(False, "waits for a person: no rating publishes alone")
    if rating < rules.auto_publish_min_rating:
        return Verdict(False, f"waits for a person: {rating}★ is under {rules.auto_publish_min_rating}★")
    if rules.auto_publish_without_links and has_link(title, body):
        return Verdict(False, "waits for a person: it contains a web address")
    return Verdict(True, f"published: {rating}★ meets the {rules.auto_publish_min_rating}★ rule"
                         + (" and has no web address" if rules.auto_publish_without_links else ""))
