"""Share links and the plain values an email or a page draws them from. No writes."""

from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from django.urls import reverse

from lifecycle.links import absolute, make_token
from lifecycle.models import Tenant
from lifecycle.money import money_str

from .models import Program, ReferralCode


def share_url(code: ReferralCode, tenant: Tenant) -> str:
    """The link an advocate shares: /r/<store>/<code>, which records the click and redirects."""
    return absolute(reverse("referral-code", kwargs={"store": tenant.slug, "code": code.code}))


def advocate_page_url(*, tenant_id: int, customer_id: int) -> str:
    """The advocate's own page (their link and share buttons), behind a signed referral token."""
    return absolute(reverse("referral", args=[make_token("referral", tenant_id=tenant_id, customer_id=customer_id)]))


def store_redirect(program: Program, code: str) -> str:
    """The program's store URL with ?ref=<code> added to whatever query it has."""
    parts = urlsplit(program.store_url)
    query = "&".join(part for part in (parts.query, urlencode({"ref": code})) if part)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, parts.fragment))


def offer_text(program: Program) -> str:
    if program.friend_offer_kind == Program.OfferKind.PERCENT:
        return f"{program.friend_offer_value.normalize():f}% off your first order"

    return f"{money_str(program.friend_offer_value, program.currency)} {program.currency} off your first order"


def share_buttons(url: str, *, store_name: str, offer: str) -> dict[str, str]:
    """copy / email / WhatsApp / X / Facebook: plain URLs, no scripts, so they work in email."""
    message = f"I like {store_name}: here is {offer}"
    return {
        "copy": url,
        "email": f"mailto:?subject={quote(store_name)}&body={quote(message + ': ' + url)}",
        "whatsapp": f"https://wa.me/?text={quote(message + ': ' + url)}",
        "x": f"https://twitter.com/intent/tweet?{urlencode({'text': message, 'url': url})}",
        "facebook": f"https://www.facebook.com/sharer/sharer.php?{urlencode({'u': url})}",
    }


def referral_email_context(*, tenant: Tenant, customer_id: int, code: ReferralCode, program: Program) -> dict:
    """What a referral-invite email may draw: referral_url, referral_code, referral_offer, share.*"""
    url = share_url(code, tenant)
    offer = offer_text(program)
    return {"referral_url": url, "referral_code": code.code, "referral_offer": offer,
            "referral_page_url": advocate_page_url(tenant_id=tenant.pk, customer_id=customer_id),
            "share": share_buttons(url, store_name=tenant.name, offer=offer)}


def referral_invite_context(*, tenant: Tenant, customer_id: int) -> dict:
    """The referral-invite step's email values; {} when the store has no active program or the
    customer has no code (journeys' dispatch gives them one before rendering)."""
    program = Program.objects.for_tenant(tenant).filter(active=True).first()
    code = ReferralCode.objects.for_tenant(tenant).filter(customer_id=customer_id, vanity=False).first()
    if program is None or code is None:
        return {}
    return referral_email_context(tenant=tenant, customer_id=customer_id, code=code, program=program)


def referral_invite_contexts(*, tenant: Tenant, customer_ids: set[int]) -> dict[int, dict]:
    """`referral_invite_context` for many customers of one store, by customer id: the program and the codes
    come from one query each."""
    program = Program.objects.for_tenant(tenant).filter(active=True).first()
    if program is None:
        return dict.fromkeys(customer_ids, {})
    codes: dict[int, ReferralCode] = {}
    for code in (ReferralCode.objects.for_tenant(tenant).filter(customer_id__in=customer_ids, vanity=False)
                 .order_by("-pk")):
        codes[code.customer_id] = code  # the first by pk wins, as .first() picks it
    return {pk: referral_email_context(tenant=tenant, customer_id=pk, code=codes[pk], program=program)
            if pk in codes else {} for pk in customer_ids}
