"""Rendering and sending one journey email through django-anymail.

Marketer-written templates are rendered by a separate, bare Django template engine with
a context of plain values only (no models, no loaders, no tag libraries), autoescaped, and
the result is sanitized with nh3 before it goes into the trusted layout. The HTML gets
its CSS inlined (css-inline) and a text part is always sent alongside.
"""

import dataclasses
import functools
import html
import re
from typing import Any
from urllib.parse import quote, urlsplit

import css_inline
import nh3
from anymail.message import AnymailMessage
from babel.numbers import format_currency
from django.conf import settings
from django.template import Context, Engine, Template
from django.template.loader import render_to_string

from lifecycle.links import absolute, make_token

from .models import Delivery, Journey

ALLOWED_TAGS = {"a", "b", "strong", "i", "em", "u", "p", "br", "ul", "ol", "li", "h1", "h2", "h3", "blockquote",
                "img", "table", "tr", "td", "th", "tbody", "thead", "span", "div", "hr"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title", "class"}, "img": {"src", "alt", "width", "height"},
                      "td": {"align", "class"}, "span": {"class"}, "div": {"class"}, "p": {"class"}}
BRAND_COLOR = "#7a4b2a"


class SandboxEngine(Engine):
    default_builtins = ["journeys.template_library"]


@functools.cache
def sandbox() -> Engine:
    """A template engine that knows no files, no {% load %}, and only journeys.template_library."""
    return SandboxEngine(dirs=[], app_dirs=False, loaders=[], libraries={}, autoescape=True, string_if_invalid="")


@functools.lru_cache(maxsize=512)
def compiled(source: str) -> Template:
    """A marketer template is the same for every recipient: compile it once per process, keyed by its
    source, so an edited template is a new entry. A syntax error raises every time (not cached)."""
    return sandbox().from_string(source)


def render_fragment(source: str, context: dict[str, Any]) -> str:
    return compiled(source).render(Context(context, autoescape=True))


def render_text_fragment(source: str, context: dict[str, Any]) -> str:
    return compiled(source).render(Context(context, autoescape=False))


def _money(amount, currency: str, locale: str) -> str:
    try:
        return format_currency(amount, currency, locale=(locale or "en").replace("-", "_"))
    except Exception:  # noqa: BLE001 - an unknown locale falls back to a plain amount
        return f"{amount:.2f} {currency}"


def email_context(delivery: Delivery) -> dict[str, Any]:
    """The plain values a template may use. Nothing here reaches a model or a query."""
    customer, tenant = delivery.customer, delivery.customer.tenant
    order = delivery.enrollment.order
    fallback = (delivery.step.config or {}).get("first_name_fallback", "there")
    unsubscribe = absolute(f"/u/{make_token('unsubscribe', tenant_id=tenant.pk, customer_id=customer.pk, delivery_id=delivery.pk)}")
    context: dict[str, Any] = {
        "first_name": customer.first_name or fallback,
        "customer": {"first_name": customer.first_name or fallback, "last_name": customer.last_name,
                     "email": customer.email, "order_count": customer.order_count},
        "store": {"name": tenant.name, "postal_address": tenant.postal_address},
        "unsubscribe_url": unsubscribe,
        "order": None,
    }
    if order is not None:
        # Plain values straight from one LEFT JOIN: no OrderLine/Product instances to build.
        items = [{"title": title, "sku": sku, "quantity": quantity, "image_url": image_url or "", "url": url or ""}
                 for title, sku, quantity, image_url, url in order.lines.values_list(
                     "title", "sku", "quantity", "product__image_url", "product__url")]
        context["order"] = {"number": order.number or order.external_id,
                            "total": _money(order.total, order.currency, customer.locale),
                            "items": items, "item_titles": ", ".join(i["title"] for i in items if i["title"])}
    from loyalty.selectors import customer_points

    context["points_balance"], context["tier"] = customer_points(tenant=tenant.pk, customer_id=customer.pk)
    context["loyalty_url"] = absolute(f"/l/{make_token('loyalty', tenant_id=tenant.pk, customer_id=customer.pk, delivery_id=delivery.pk)}")
    if delivery.step.kind == "feedback_request":
        from feedback.rendering import survey_email_context

        # survey (question, score buttons), survey_url, review_links: drawn by the layout too.
        context.update(survey_email_context(tenant_id=tenant.pk, delivery_id=delivery.pk, locale=customer.locale,
                                            store_name=tenant.name))
    if delivery.step.kind == "referral_invite":
        from referrals.rendering import referral_invite_context

        # referral_url, referral_code, referral_offer, share.{copy,email,whatsapp,x,facebook}
        context.update(referral_invite_context(tenant=tenant, customer_id=customer.pk))
    return context


def html_to_text(markup: str) -> str:
    text = re.sub(r'<a [^>]*href="([^"]+)"[^>]*>(.*?)</a>', r"\2 (\1)", markup, flags=re.S)
    text = re.sub(r"<br\s*/?>", "\n", text)
    text = re.sub(r"</(p|h[1-3]|li|tr|div|blockquote)>", "\n\n", text)
    text = re.sub(r"<li[^>]*>", "- ", text)
    text = html.unescape(nh3.clean(text, tags=set())).replace("\xa0", " ")
    return re.sub(r"\n{3,}", "\n\n", text).strip()


@dataclasses.dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    headers: dict[str, str]


def message_id_for(delivery: Delivery) -> str:
    host = urlsplit(settings.PUBLIC_BASE_URL).hostname or "lifecycle.localhost"
    return f"<journey.{delivery.tenant_id}.{delivery.pk}@{host}>"


def render_email(delivery: Delivery, *, context: dict[str, Any] | None = None) -> RenderedEmail:
    """`context` replaces email_context(delivery): the workspace's preview renders unsaved rows with
    inert links through this same path."""
    customer, tenant, template = delivery.customer, delivery.customer.tenant, delivery.step.template
    variant = template.variant(customer.locale)
    context = email_context(delivery) if context is None else context
    marketing = delivery.message_class == Journey.MessageClass.MARKETING
    body_html = nh3.clean(render_fragment(variant["body"], context), tags=ALLOWED_TAGS,
                          attributes=ALLOWED_ATTRIBUTES, url_schemes={"http", "https", "mailto"})
    subject = " ".join(render_text_fragment(variant["subject"], context).split())
    preheader = " ".join(render_text_fragment(variant.get("preheader", ""), context).split())
    layout = {"subject": subject, "preheader": preheader, "store_name": tenant.name, "signature": template.signature,
              "postal_address": tenant.postal_address, "marketing": marketing, "brand_color": BRAND_COLOR,
              "unsubscribe_url": context["unsubscribe_url"], "lang": (customer.locale or "en").split("-")[0],
              "survey": context.get("survey"), "review_links": context.get("review_links")}
    html = css_inline.inline(render_to_string("email/layout.html", {**layout, "body": _safe(body_html)}))
    text = render_to_string("email/layout.txt", {**layout, "body": html_to_text(body_html)})
    headers = {"Message-ID": message_id_for(delivery)}
    if marketing:
        mailto = tenant.reply_to or tenant.sender_email or settings.DEFAULT_FROM_EMAIL
        headers["List-Unsubscribe"] = (f"<{context['unsubscribe_url']}>, "
                                       f"<mailto:{mailto}?subject={quote('unsubscribe ' + customer.email)}>")
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return RenderedEmail(subject=subject, html=html, text=text, headers=headers)


def _safe(html: str):
    from django.utils.safestring import mark_safe

    return mark_safe(html)  # noqa: S308 - sanitized by nh3 just above


@dataclasses.dataclass(frozen=True)
class SendResult:
    message_id: str
    esp_message_id: str


def build_message(delivery: Delivery, rendered: RenderedEmail) -> AnymailMessage:
    tenant = delivery.customer.tenant
    sender = tenant.sender_email or settings.DEFAULT_FROM_EMAIL
    message = AnymailMessage(
        subject=rendered.subject, body=rendered.text,
        from_email=f"{tenant.sender_name or tenant.name} <{sender}>",
        to=[delivery.customer.email], reply_to=[tenant.reply_to] if tenant.reply_to else None,
        headers=rendered.headers,
    )
    message.attach_alternative(rendered.html, "text/html")
    message.tags = [f"journey-{delivery.journey_id}", f"step-{delivery.step.position}"]
    message.metadata = {"tenant_id": delivery.tenant_id, "journey_id": delivery.journey_id,
                        "step_id": delivery.step_id, "delivery_id": delivery.pk}
    return message


def send_delivery_email(delivery: Delivery) -> SendResult:
    rendered = render_email(delivery)
    message = build_message(delivery, rendered)
    message.send()
    status = getattr(message, "anymail_status", None)
    esp_id = (status.message_id if status is not None and status.message_id else "") or ""
    return SendResult(message_id=rendered.headers["Message-ID"], esp_message_id=str(esp_id))
