"""Rendering and sending one journey email through django-anymail.

Marketer-written templates are rendered by a separate, bare Django template engine with
a context of plain values only (no models, no loaders, no tag libraries), autoescaped, and
the result is sanitized with nh3 before it goes into the trusted layout. The HTML gets
its CSS inlined (css-inline) and a text part is always sent alongside.

The layout is the same for every recipient of a store: it is rendered and CSS-inlined once per
process (see `_layout`), and each email fills in its slots; only the marketer's body is inlined per
email. A template's variant is compiled once per process per content (`compiled_variant`: an edit is
a new entry), a field without placeholders rendered and sanitized once. A batch of emails
(`render_emails`) reads its order lines, points balances, survey requests and referral codes in one
query each. The message is built once per email (`build_message`): its token computed once, its MIME
boundary chosen from it, and the header lines every email of a store shares folded once per process.
"""

import dataclasses
import functools
import html
import re
import secrets
from collections.abc import Sequence
from email.policy import Compat32
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import css_inline
import nh3
from anymail.message import AnymailMessage
from babel.numbers import format_currency
from django.conf import settings
from django.core.mail.message import SafeMIMEMultipart
from django.template import Engine, Template
from django.template.loader import render_to_string
from django.utils.crypto import salted_hmac
from django.utils.safestring import mark_safe

from feedback.rendering import survey_email_contexts
from lifecycle.links import absolute, make_token
from lifecycle.models import OrderLine
from loyalty.models import LoyaltyAccount
from referrals.rendering import referral_invite_contexts

from .models import Delivery, Journey
from .render_limits import MAX_OUTPUT, RenderBudget, bounded_context
from .step_refs import enrollment_variables, signers

ALLOWED_TAGS = {"a", "b", "strong", "i", "em", "u", "p", "br", "ul", "ol", "li", "h1", "h2", "h3", "blockquote",
                "img", "table", "tr", "td", "th", "tbody", "thead", "span", "div", "hr"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title", "class"}, "img": {"src", "alt", "width", "height"},
                      "td": {"align", "class"}, "span": {"class"}, "div": {"class"}, "p": {"class"}}
BRAND_COLOR = "#7a4b2a"  # the default of Tenant.brand_color


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


def render_fragment(source: str, context: dict[str, Any], budget: RenderBudget | None = None) -> str:
    """A marketer's template, bounded in time and size (journeys.render_limits: RenderLimitExceeded)."""
    budget = budget or RenderBudget()
    return budget.check_total(compiled(source).render(bounded_context(context, autoescape=True, budget=budget)))


def render_text_fragment(source: str, context: dict[str, Any], budget: RenderBudget | None = None) -> str:
    budget = budget or RenderBudget()
    return budget.check_total(compiled(source).render(bounded_context(context, autoescape=False, budget=budget)))


def _sanitize(markup: str) -> str:
    return nh3.clean(markup, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes={"http", "https", "mailto"})


def _is_static(source: str) -> bool:
    """Text with no template syntax renders as itself (Django's TextNode): nothing to fill per email."""
    return "{" not in source and len(source) <= MAX_OUTPUT


@dataclasses.dataclass(frozen=True)
class CompiledVariant:
    """One language of an email template, ready to fill: its three fields compiled once, and a field with
    no placeholders (a fixed preheader, say) rendered, sanitized and its whitespace collapsed once."""

    subject: Template | str  # a str is the field's final text
    preheader: Template | str
    body: Template | str

    def subject_line(self, context: dict[str, Any], budget: RenderBudget) -> str:
        return _line(self.subject, context, budget)

    def preheader_line(self, context: dict[str, Any], budget: RenderBudget) -> str:
        return _line(self.preheader, context, budget)

    def body_html(self, context: dict[str, Any], budget: RenderBudget) -> str:
        """The marketer's body for one customer, sanitized (nh3)."""
        if isinstance(self.body, str):
            return self.body
        return _sanitize(budget.check_total(self.body.render(bounded_context(context, autoescape=True, budget=budget))))


def _line(field: Template | str, context: dict[str, Any], budget: RenderBudget) -> str:
    if isinstance(field, str):
        return field
    return " ".join(budget.check_total(field.render(bounded_context(context, autoescape=False, budget=budget))).split())


@functools.lru_cache(maxsize=512)
def compiled_variant(subject: str, preheader: str, body: str) -> CompiledVariant:
    """The fields of a template's variant (EmailTemplate.variant), compiled once per process per content.
    Keyed by the content itself, not by the row's updated_at: an edit is a new entry however it was
    written (an `.update()` leaves updated_at alone), and the next email renders exactly what was saved.
    A syntax error raises every time (not cached)."""
    return CompiledVariant(
        subject=" ".join(subject.split()) if _is_static(subject) else compiled(subject),
        preheader=" ".join(preheader.split()) if _is_static(preheader) else compiled(preheader),
        body=_sanitize(body) if _is_static(body) else compiled(body))


@functools.lru_cache(maxsize=4096)
def _money(amount, currency: str, locale: str) -> str:
    """Babel parses the locale and its currency pattern on every call: an order total is formatted once per
    (amount, currency, locale) per process, the same answer every time."""
    try:
        return format_currency(amount, currency, locale=(locale or "en").replace("-", "_"))
    except Exception:  # noqa: BLE001 - an unknown locale falls back to a plain amount
        return f"{amount:.2f} {currency}"


def email_context(delivery: Delivery) -> dict[str, Any]:
    """The plain values a template may use. Nothing here reaches a model or a query."""
    return email_contexts([delivery])[delivery.pk]


def email_contexts(deliveries: Sequence[Delivery]) -> dict[int, dict[str, Any]]:
    """`email_context` for many deliveries (by delivery id): what the wave's emails draw from the database
    (order lines, points balances, survey requests, referral codes) comes from one query each per store,
    whatever the number of deliveries. Every delivery has its customer, tenant, enrollment (with its
    order) and step loaded."""
    lines: dict[int, list[dict[str, Any]]] = {}
    points: dict[int, tuple[int, str]] = {}
    extra: dict[int, dict[str, Any]] = {}  # delivery id → what its step kind adds (survey, referral)
    by_tenant: dict[int, list[Delivery]] = {}
    for delivery in deliveries:
        by_tenant.setdefault(delivery.tenant_id, []).append(delivery)
    for tenant_id, group in by_tenant.items():
        orders = {d.enrollment.order_id for d in group if d.enrollment.order_id}
        if orders:
            # Plain values straight from one LEFT JOIN: no OrderLine/Product instances to build.
            for order_id, title, sku, quantity, image_url, url in (
                    OrderLine.objects.for_tenant(tenant_id).filter(order_id__in=orders)
                    .order_by("order_id", "position", "pk")
                    .values_list("order_id", "title", "sku", "quantity", "product__image_url", "product__url")):
                lines.setdefault(order_id, []).append(
                    {"title": title, "sku": sku, "quantity": quantity, "image_url": image_url or "", "url": url or ""})
        # What loyalty.selectors.customer_points answers for one customer: (balance, tier name).
        for customer_id, balance, tier in (LoyaltyAccount.objects.for_tenant(tenant_id)
                                           .filter(customer_id__in={d.customer_id for d in group})
                                           .values_list("customer_id", "balance", "tier__name")):
            points[customer_id] = (balance, tier or "")
        extra.update(_kind_contexts(group))
        # What earlier steps made (a discount step's code): "" when none did, so {% if discount_code %} reads.
        made = enrollment_variables(list({d.enrollment_id for d in group}), tenant_id)
        for d in group:
            extra.setdefault(d.pk, {})["discount_code"] = made.get(d.enrollment_id, {}).get("discount_code", "")
    contexts = {d.pk: _context(d, lines.get(d.enrollment.order_id, []), points.get(d.customer_id, (0, "")))
                for d in deliveries}
    for pk, values in extra.items():
        contexts[pk].update(values)
    return contexts


def _kind_contexts(group: list[Delivery]) -> dict[int, dict[str, Any]]:
    """What feedback and referral steps add to one store's emails, by delivery id: survey (question, score
    buttons), survey_url, review_links; referral_url, referral_code, referral_offer, share.*"""
    tenant = group[0].customer.tenant
    out: dict[int, dict[str, Any]] = {}
    surveys = {d.pk: d.customer.locale for d in group if d.step.kind == "feedback_request"}
    if surveys:
        out.update(survey_email_contexts(tenant_id=tenant.pk, deliveries=surveys, store_name=tenant.name))
    invites = [d for d in group if d.step.kind == "referral_invite"]
    if invites:
        codes = referral_invite_contexts(tenant=tenant, customer_ids={d.customer_id for d in invites})
        out.update({d.pk: codes[d.customer_id] for d in invites})
    check_ins = [d for d in group if d.step.kind == "check_in"]
    if check_ins:
        members = signers(tenant.pk, {str((d.step.config or {}).get("signer") or "") for d in check_ins})
        for d in check_ins:
            out[d.pk] = {"signer": members.get(str((d.step.config or {}).get("signer") or "").lower())}
    for d in group:
        if d.step.kind == "community_invite":
            out[d.pk] = {"community_url": community_link(str((d.step.config or {}).get("url") or ""), d)}
    return out


def community_link(url: str, delivery: Delivery) -> str:
    """The community's address with campaign parameters, so the store's analytics see where members came
    from (the click itself is tracked by the ESP, as every link in the email)."""
    if not url:
        return ""
    parts = urlsplit(url)
    extra = urlencode({"utm_source": "lifecycle", "utm_medium": "email",
                       "utm_campaign": f"journey-{delivery.journey_id}", "utm_content": f"step-{delivery.step.position}"})
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def _context(delivery: Delivery, items: list[dict[str, Any]], points: tuple[int, str]) -> dict[str, Any]:
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
        context["order"] = {"number": order.number or order.external_id,
                            "total": _money(order.total, order.currency, customer.locale),
                            "items": items, "item_titles": ", ".join(i["title"] for i in items if i["title"])}
    context["points_balance"], context["tier"] = points
    context["loyalty_url"] = absolute(f"/l/{make_token('loyalty', tenant_id=tenant.pk, customer_id=customer.pk, delivery_id=delivery.pk)}")
    return context


_LINK = re.compile(r'<a [^>]*href="([^"]+)"[^>]*>(.*?)</a>', re.S)
_BREAK = re.compile(r"<br\s*/?>")
_BLOCK_END = re.compile(r"</(p|h[1-3]|li|tr|div|blockquote)>")
_ITEM = re.compile(r"<li[^>]*>")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(markup: str) -> str:
    text = _LINK.sub(r"\2 (\1)", markup)
    text = _BREAK.sub("\n", text)
    text = _BLOCK_END.sub("\n\n", text)
    text = _ITEM.sub("- ", text)
    text = html.unescape(nh3.clean(text, tags=set())).replace("\xa0", " ")
    return _BLANK_LINES.sub("\n\n", text).strip()


@dataclasses.dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    headers: dict[str, str]
    token: str = ""  # delivery_token(): in the Message-ID and the ESP metadata, computed once per message
    # A signed check-in: From shows the team member's name, replies go to them.
    from_name: str = ""
    reply_to: str = ""


def delivery_token(tenant_id: int, delivery_id: int, *, secret: str | None = None) -> str:
    """An HMAC (keyed by SECRET_KEY) over tenant and delivery: in our Message-ID and the ESP metadata, so a
    tracking event names a delivery only if it carries what we sent (journeys/engagement.py)."""
    return salted_hmac("journeys.delivery-token", f"{tenant_id}.{delivery_id}", secret=secret,
                       algorithm="sha256").hexdigest()[:24]


def message_id_for(delivery: Delivery, token: str = "") -> str:
    """Deterministic (the ESP's idempotency key, and resent identically), and not guessable. `token` is
    delivery_token() when the caller has it already."""
    token = token or delivery_token(delivery.tenant_id, delivery.pk)
    return f"<journey.{delivery.tenant_id}.{delivery.pk}.{token}@{_message_id_host(settings.PUBLIC_BASE_URL)}>"


@functools.lru_cache(maxsize=8)
def _message_id_host(base_url: str) -> str:
    return urlsplit(base_url).hostname or "lifecycle.localhost"


def render_email(delivery: Delivery, *, context: dict[str, Any] | None = None,
                 budget: RenderBudget | None = None) -> RenderedEmail:
    """`context` replaces email_context(delivery): the workspace's preview renders unsaved rows with
    inert links through this same path. The marketer's templates share one `budget` (default: the
    send's, journeys.render_limits); breaking it raises RenderLimitExceeded."""
    customer, tenant, template = delivery.customer, delivery.customer.tenant, delivery.step.template
    variant = (template.version_fields(template.version_for(delivery.step_id, delivery.customer_id), customer.locale)
               if template.versions else template.variant(customer.locale))  # a content test's version
    fields = compiled_variant(variant["subject"], variant.get("preheader", ""), variant["body"])
    context = email_context(delivery) if context is None else context
    budget = budget or RenderBudget()
    marketing = delivery.message_class == Journey.MessageClass.MARKETING
    body_html = fields.body_html(context, budget)
    subject = fields.subject_line(context, budget)
    preheader = fields.preheader_line(context, budget)
    signer = context.get("signer") if delivery.step.kind == "check_in" else None
    signed_by = signer["name"] if signer else template.signature
    layout = {"subject": subject, "preheader": preheader, "store_name": tenant.name, "signature": signed_by,
              "postal_address": tenant.postal_address, "marketing": marketing, **brand_values(tenant),
              "unsubscribe_url": context["unsubscribe_url"], "lang": (customer.locale or "en").split("-")[0],
              "survey": context.get("survey"), "review_links": context.get("review_links")}
    shell = None
    if layout["survey"] is None and layout["review_links"] is None:
        shell = _layout(tenant.name, signed_by, tenant.postal_address, marketing, brand_key(tenant))
    filled = shell.fill(layout, body_html) if shell is not None else None
    # A survey's buttons and review links are drawn by the layout per recipient: those render whole.
    html, text = filled if filled is not None else render_layout(layout, body_html)
    token = delivery_token(delivery.tenant_id, delivery.pk)
    headers = {"Message-ID": message_id_for(delivery, token)}
    if marketing:
        mailto = tenant.reply_to or tenant.sender_email or settings.DEFAULT_FROM_EMAIL
        headers["List-Unsubscribe"] = (f"<{context['unsubscribe_url']}>, "
                                       f"<mailto:{mailto}?subject={quote('unsubscribe ' + customer.email)}>")
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return RenderedEmail(subject=subject, html=html, text=text, headers=headers, token=token,
                         from_name=f"{signer['name']} at {tenant.sender_name or tenant.name}" if signer else "",
                         reply_to=signer["email"] if signer else "")


def render_emails(deliveries: Sequence[Delivery]) -> dict[int, RenderedEmail | Exception]:
    """`render_email` for a batch, by delivery id: the batch's reads are done once (`email_contexts`).
    An email that cannot be rendered (a template broken after it was saved, say) is its exception, so
    one bad template fails its own deliveries and not the batch's."""
    try:
        contexts: dict[int, dict[str, Any] | Exception] = dict(email_contexts(deliveries))
    except Exception:  # noqa: BLE001 - one delivery's values do not build: build each alone, so only it fails
        contexts = {}
        for delivery in deliveries:
            try:
                contexts[delivery.pk] = email_contexts([delivery])[delivery.pk]
            except Exception as exc:  # noqa: BLE001 - recorded on the delivery by the caller
                contexts[delivery.pk] = exc
    rendered: dict[int, RenderedEmail | Exception] = {}
    for delivery in deliveries:
        context = contexts[delivery.pk]
        if isinstance(context, Exception):
            rendered[delivery.pk] = context
            continue
        try:
            rendered[delivery.pk] = render_email(delivery, context=context)
        except Exception as exc:  # noqa: BLE001 - recorded on the delivery by the caller
            rendered[delivery.pk] = exc
    return rendered


def render_layout(layout: dict[str, Any], body_html: str) -> tuple[str, str]:
    """The trusted layout around a sanitized body, rendered whole: (HTML with its CSS inlined, text)."""
    html = css_inline.inline(render_to_string("email/layout.html", {**layout, "body": _safe(body_html)}))
    text = render_to_string("email/layout.txt", {**layout, "body": html_to_text(body_html)})
    return html, text


# Slots in the once-rendered layout: a random token per process around an upper-case name, so that
# nothing a store or a marketer writes can look like one.
_TOKEN = "q" + secrets.token_hex(8) + "q"
_SLOTS = re.compile(re.escape(_TOKEN) + "([A-Z]+)" + re.escape(_TOKEN))
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S | re.I)
_CONTENT = '<div class="content">'


def _slot(name: str) -> str:
    return f"{_TOKEN}{name}{_TOKEN}"


def _text_escape(value: str) -> str:
    """A text node as the inliner's HTML serializer writes it (so a filled slot reads exactly as if
    the whole page had gone through css_inline)."""
    return value.replace("&", "&amp;").replace("\xa0", "&nbsp;").replace("<", "&lt;").replace(">", "&gt;")


def _attribute_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("\xa0", "&nbsp;").replace('"', "&quot;")


@dataclasses.dataclass(frozen=True)
class _Layout:
    """email/layout.html and layout.txt for one store, signature and message class, rendered and
    inlined once, cut at the slots (subject, preheader, lang, unsubscribe URL, the body)."""

    html: tuple[str, ...]  # literal, slot name, literal, slot name, …, literal
    text: tuple[str, ...]
    css: str  # the layout's stylesheet, inlined into each body
    content_open: str  # <div class="content" style="…"> as the inliner writes it

    def fill(self, layout: dict[str, Any], body_html: str) -> tuple[str, str] | None:
        """(html, text) for one email; None when a value would not read the same as through the whole
        layout (a NUL or CR, which the HTML parser rewrites), so the caller renders it whole."""
        values = (layout["subject"], layout["preheader"], layout["lang"], layout["unsubscribe_url"], body_html)
        if any("\x00" in v or "\r" in v for v in values):
            return None
        # The body's elements get the layout's rules for .content descendants, exactly as they do in
        # the whole page: the fragment is the content div itself (no rule reaches in from outside it;
        # tests/journeys/test_rendering.py compares the two ways for every kind of element).
        content = css_inline.inline_fragment(_CONTENT + body_html + "</div>", self.css)
        if not (content.startswith(self.content_open) and content.endswith("</div>")):
            return None
        html_values = {"SUBJECT": _text_escape(layout["subject"]), "PREHEADER": _text_escape(layout["preheader"]),
                       "LANG": _attribute_escape(layout["lang"]),
                       "UNSUBSCRIBE": _attribute_escape(layout["unsubscribe_url"]), "CONTENT": content}
        text_values = {"BODY": html_to_text(body_html), "UNSUBSCRIBE": layout["unsubscribe_url"]}
        return _join(self.html, html_values), _join(self.text, text_values)


def _join(parts: tuple[str, ...], values: dict[str, str]) -> str:
    return "".join(values[part] if i % 2 else part for i, part in enumerate(parts))


def brand_values(tenant) -> dict[str, str]:
    """What the layout draws the store's brand with (the store's settings page previews it)."""
    return {"brand_color": tenant.brand_color or BRAND_COLOR, "brand_background": tenant.brand_background or "#f4f1ec",
            "logo_url": tenant.brand_logo_url}


def brand_key(tenant) -> tuple[str, str, str]:
    values = brand_values(tenant)
    return values["brand_color"], values["brand_background"], values["logo_url"]


@functools.lru_cache(maxsize=256)
def _layout(store_name: str, signature: str, postal_address: str, marketing: bool,
            brand: tuple[str, str, str] = (BRAND_COLOR, "#f4f1ec", "")) -> _Layout | None:
    """The layout for a store, its slots left open; None if it cannot be cut at them (the caller then
    renders every email whole). Cached per process: the layout files change only with a deploy."""
    layout = {"subject": _slot("SUBJECT"), "preheader": _slot("PREHEADER"), "store_name": store_name,
              "signature": signature, "postal_address": postal_address, "marketing": marketing,
              "brand_color": brand[0], "brand_background": brand[1], "logo_url": brand[2],
              "unsubscribe_url": _slot("UNSUBSCRIBE"), "lang": _slot("LANG"),
              "survey": None, "review_links": None}
    source = render_to_string("email/layout.html", {**layout, "body": _safe(_slot("BODY"))})
    styles = _STYLE.findall(source)
    inlined = css_inline.inline(source)
    css = "\n".join(styles)
    content_open = css_inline.inline_fragment(_CONTENT + "</div>", css).removesuffix("</div>")
    whole_content = content_open + _slot("BODY") + "</div>"
    if inlined.count(whole_content) != 1:
        return None
    html_parts = tuple(_SLOTS.split(inlined.replace(whole_content, _slot("CONTENT"))))
    text_parts = tuple(_SLOTS.split(render_to_string("email/layout.txt", {**layout, "body": _slot("BODY")})))
    # A marketing footer links the unsubscribe URL twice: the preference page (<url>/preferences) and unsubscribe.
    if sorted(html_parts[1::2]) != ["CONTENT", "LANG", "PREHEADER", "SUBJECT"] + (["UNSUBSCRIBE"] * 2 if marketing else []):
        return None
    if not set(text_parts[1::2]) <= {"BODY", "UNSUBSCRIBE"}:
        return None
    return _Layout(html=html_parts, text=text_parts, css=css, content_open=content_open)


def _safe(html: str):
    return mark_safe(html)  # noqa: S308 - sanitized by nh3, or our own slot marker


@dataclasses.dataclass(frozen=True)
class SendResult:
    message_id: str
    esp_message_id: str


class _FoldOnce(Compat32):
    """compat32, the policy of Django's MIME classes, with the same bytes for less work: folding goes
    through email.header.Header, a quarter of the time of building a message's MIME. The header lines
    every email of a store shares (From, Reply-To, MIME-Version, a part's Content-Type…) are folded once
    per process (a cache of the same function, keyed by all it reads); a line of plain words that fits
    is the one Header would write, written directly; anything else is folded by compat32 itself."""

    def fold_binary(self, name, value):
        if not isinstance(value, str):
            return super().fold_binary(name, value)
        if name not in _SHARED_HEADERS or "boundary=" in value:
            if (self.max_line_length and len(name) + 2 + len(value) <= self.max_line_length
                    and _PLAIN_WORDS.fullmatch(value)):
                return f"{name}: {value}{self.linesep}".encode("ascii")
            return super().fold_binary(name, value)
        key = (name, value, self.linesep, self.max_line_length, self.cte_type)
        folded = _FOLDED.get(key)
        if folded is None:
            if len(_FOLDED) >= 4096:  # a handful per store; never a leak
                _FOLDED.clear()
            folded = _FOLDED[key] = super().fold_binary(name, value)
        return folded


_SHARED_HEADERS = frozenset({"From", "Reply-To", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
                             "List-Unsubscribe-Post"})
_FOLDED: dict[tuple, bytes] = {}
# Printable ASCII words between single spaces: nothing for Header to fold, encode or normalize.
_PLAIN_WORDS = re.compile(r"[!-~]+(?: [!-~]+)*")
_FOLD_ONCE = _FoldOnce()


class JourneyMessage(AnymailMessage):
    """An AnymailMessage whose MIME multipart boundary is chosen once, from the message's own token, when
    no part contains it: the email package's generator otherwise draws a random boundary and compiles a
    regular expression for it to search the parts, for every message (a tenth of building its MIME)."""

    boundary = ""

    def _create_alternatives(self, msg):
        if not (self.alternatives and self.boundary):
            return super()._create_alternatives(msg)
        multipart = SafeMIMEMultipart(_subtype=self.alternative_subtype, boundary=self.boundary,
                                      encoding=self.encoding or settings.DEFAULT_CHARSET)
        if self.body:
            multipart.attach(msg)
        for alternative in self.alternatives:
            multipart.attach(self._create_mime_attachment(alternative.content, alternative.mimetype))
        return multipart

    def message(self):
        msg = super().message()
        msg.policy = _FOLD_ONCE  # the generator folds every part's headers with the outer message's policy
        return msg


def build_message(delivery: Delivery, rendered: RenderedEmail) -> AnymailMessage:
    """The message for the ESP, built once per email: its token (Message-ID, metadata) is the rendering's."""
    tenant = delivery.customer.tenant
    sender = tenant.sender_email or settings.DEFAULT_FROM_EMAIL
    token = rendered.token or delivery_token(delivery.tenant_id, delivery.pk)
    message = JourneyMessage(
        subject=rendered.subject, body=rendered.text,
        from_email=f"{rendered.from_name or tenant.sender_name or tenant.name} <{sender}>",
        to=[delivery.customer.email],
        reply_to=[rendered.reply_to] if rendered.reply_to else [tenant.reply_to] if tenant.reply_to else None,
        headers=rendered.headers,
    )
    message.attach_alternative(rendered.html, "text/html")
    boundary = f"==journey-{token}=="
    if boundary not in rendered.html and boundary not in rendered.text:
        message.boundary = boundary
    message.tags = [f"journey-{delivery.journey_id}", f"step-{delivery.step.position}"]
    message.metadata = {"tenant_id": delivery.tenant_id, "journey_id": delivery.journey_id,
                        "step_id": delivery.step_id, "delivery_id": delivery.pk,
                        "delivery_token": token}
    return message


def esp_send(message: AnymailMessage, *, connection=None) -> SendResult:
    """Hand one built message to the ESP: through `connection` (an email backend a batch keeps open,
    so an HTTP ESP reuses its session) or a backend of its own."""
    if connection is None:
        message.send()
    else:
        connection.send_messages([message])
    status = getattr(message, "anymail_status", None)
    esp_id = (status.message_id if status is not None and status.message_id else "") or ""
    return SendResult(message_id=message.extra_headers["Message-ID"], esp_message_id=str(esp_id))
