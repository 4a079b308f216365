"""The builder's live preview and "send a test to me": the real rendering (journeys.rendering —
the sandboxed engine, nh3, css-inline, the layout) on unsaved rows, so nothing is written.

The email is rendered for one of the store's customers (their name, their latest order, their
points) or, when the store has none yet, for a sample customer. Every personal link in it —
unsubscribe, loyalty page, survey buttons, the referral page — is replaced by an inert
`/preview` link: a preview shown to a colleague or a test sent to a marketer's inbox must not
carry a working link that acts for a real customer.
"""

import dataclasses
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache

from feedback.models import Survey
from feedback.rendering import answer_url, score_buttons, texts
from feedback.selectors import survey_for_config
from lifecycle.links import absolute
from lifecycle.models import Customer, Order, Tenant
from lifecycle.numbers import whole_number

from .builder_checks import EMAIL_KINDS, Problem, content_problems
from .models import Delivery, EmailTemplate, Enrollment, Journey, Step
from .render_limits import PREVIEW_SECONDS, RenderBudget
from .rendering import build_message, email_context, render_email, render_text_fragment
from .template_checks import SAMPLE_CONTEXT, is_limit_problem

# Customers offered in the preview's picker: the newest ones with an order (by id, which the
# primary key index serves however many customers the store has).
RECENT_CUSTOMERS = 20
# A marketer iterating on a template sends a handful of tests; more in an hour is a script, or
# the store's sending reputation spent on one inbox.
TEST_SENDS_PER_HOUR = 30
# A signed link token (django.core.signing: payload:timestamp:signature), wherever it appears.
_TOKEN = re.compile(r"\.?[A-Za-z0-9_-]{8,}:[A-Za-z0-9]{4,}:[A-Za-z0-9_-]{20,}")
INERT = "preview"
SAMPLE_ORDER_NUMBER = "#1001"


@dataclasses.dataclass(frozen=True)
class PreviewCustomer:
    key: str  # a customer id, or "sample"
    label: str


@dataclasses.dataclass
class Preview:
    subject: str = ""
    preheader: str = ""
    html: str = ""
    text: str = ""
    from_email: str = ""
    to: str = ""
    reply_to: str = ""
    customer_label: str = ""
    problems: list[Problem] = dataclasses.field(default_factory=list)
    rendered: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"rendered": self.rendered, "subject": self.subject, "preheader": self.preheader, "html": self.html,
                "text": self.text, "from": self.from_email, "to": self.to, "customer": self.customer_label,
                "problems": [{"field": p.field, "line": p.line, "message": p.message} for p in self.problems]}


class PreviewError(Exception):
    """Input the preview cannot use (a customer not in this store); the message is for people."""


def recent_customers(tenant: Tenant) -> list[PreviewCustomer]:
    rows = (Customer.objects.for_tenant(tenant).filter(order_count__gt=0, erased_at__isnull=True)
            .order_by("-pk").values_list("pk", "first_name", "last_name", "email")[:RECENT_CUSTOMERS])
    options = [PreviewCustomer(str(pk), f"{(first + ' ' + last).strip() or email or f'customer {pk}'}"
                                        f"{f' <{email}>' if email and (first or last) else ''}")
               for pk, first, last, email in rows]
    return options + [PreviewCustomer("sample", "Sample customer (Ada Lovelace)")]


def _inert(value: Any) -> Any:
    """The context with every signed link token replaced by an inert word."""
    if isinstance(value, str):
        return _TOKEN.sub(INERT, value)
    if isinstance(value, dict):
        return {key: _inert(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_inert(item) for item in value]
    return value


def _survey_sample(tenant: Tenant, step: Step, customer: Customer, context: dict[str, Any]) -> dict[str, Any]:
    """What a survey email draws below the text, with buttons that go nowhere."""
    survey = survey_for_config(tenant=tenant, config=step.config or {})
    if survey is None:
        return {"survey": None, "survey_url": "", "review_links": []}
    locale = customer.locale or ""
    if survey.kind == Survey.Kind.REVIEW:
        items = (context.get("order") or {}).get("items") or [{"title": "your order"}]
        links = [{"title": item["title"], "url": answer_url(INERT),
                  "question": texts(survey, locale, store=tenant.name, product=item["title"])["question"],
                  "stars": score_buttons(survey, INERT, locale)} for item in items]
        return {"survey": {"kind": survey.kind, "question": "", "buttons": [], "url": answer_url(INERT)},
                "survey_url": answer_url(INERT), "review_links": links}
    words = texts(survey, locale, store=tenant.name)
    return {"survey": {"kind": survey.kind, "question": words["question"], "buttons": score_buttons(survey, INERT, locale),
                       "low_label": words["low"], "high_label": words["high"], "url": answer_url(INERT),
                       "answer_label": "Answer"},
            "survey_url": answer_url(INERT), "review_links": []}


def _sample_context(tenant: Tenant) -> dict[str, Any]:
    context = {**SAMPLE_CONTEXT, "store": {"name": tenant.name, "postal_address": tenant.postal_address}}
    context["order"] = {**SAMPLE_CONTEXT["order"], "number": SAMPLE_ORDER_NUMBER}
    return context


def _referral_sample(context: dict[str, Any]) -> dict[str, Any]:
    if context.get("referral_url"):
        return {}
    url = absolute(f"/r/{INERT}")
    return {"referral_url": url, "referral_code": "ADA-PREVIEW", "referral_offer": "10% off their first order",
            "referral_page_url": url, "share": {"copy": url, "email": url, "whatsapp": url, "x": url, "facebook": url}}


def _delivery(tenant: Tenant, journey: Journey, step: Step, customer: Customer, order: Order | None,
              content: dict[str, str]) -> Delivery:
    """Unsaved rows shaped like a real send. pk 0 is no row: nothing found by it, nothing written."""
    template = EmailTemplate(tenant=tenant, name="preview", subject=content.get("subject", ""),
                             preheader=content.get("preheader", ""), body=content.get("body", ""),
                             signature=content.get("signature", ""))
    preview_step = Step(tenant=tenant, journey=journey, position=step.position, kind=step.kind,
                        config=step.config or {}, template=template)
    enrollment = Enrollment(tenant=tenant, journey=journey, customer=customer, order=order,
                            state=Enrollment.State.ACTIVE)
    delivery = Delivery(pk=0, tenant=tenant, enrollment=enrollment, step=preview_step, journey=journey,
                        customer=customer, message_class=journey.message_class, priority=journey.priority)
    return delivery


def _customer(tenant: Tenant, key: str) -> tuple[Customer, Order | None, bool]:
    """(customer, their latest order, is a sample)."""
    if key and key != "sample":
        customer_id = whole_number(key, minimum=1)
        if customer_id is None:
            raise PreviewError("Choose a customer from the list.")
        customer = Customer.objects.for_tenant(tenant).filter(pk=customer_id, erased_at__isnull=True).first()
        if customer is None:
            raise PreviewError("That customer is not in this store.")
        customer.tenant = tenant
        order = Order.objects.for_tenant(tenant).filter(customer=customer).order_by("-placed_at", "-pk").first()
        return customer, order, False
    sample = SAMPLE_CONTEXT["customer"]
    customer = Customer(pk=0, tenant=tenant, first_name=sample["first_name"], last_name=sample["last_name"],
                        email=sample["email"], order_count=sample["order_count"], locale="")
    return customer, None, True


def _render(tenant: Tenant, journey: Journey, step: Step, content: dict[str, str], customer_key: str
            ) -> tuple[Preview, Delivery | None, Any]:
    preview = Preview()
    preview.problems = content_problems(subject=content.get("subject", ""), preheader=content.get("preheader", ""),
                                        body=content.get("body", ""), kind=step.kind)
    customer, order, is_sample = _customer(tenant, customer_key)
    preview.customer_label = (f"{customer.full_name or customer.email} (sample)" if is_sample
                              else customer.full_name or customer.email or f"customer {customer.pk}")
    if any("is not a valid template" in p.message or is_limit_problem(p.message)
           for p in preview.problems):  # broken, or refused for the work it would make: not rendered
        return preview, None, None
    delivery = _delivery(tenant, journey, step, customer, order, content)
    context = _sample_context(tenant) if is_sample else email_context(delivery)
    context = _inert(context)
    context["unsubscribe_url"] = absolute(f"/u/{INERT}")
    context["loyalty_url"] = absolute(f"/l/{INERT}")
    if step.kind == Step.Kind.FEEDBACK_REQUEST:
        context.update(_survey_sample(tenant, step, customer, context))
    if step.kind == Step.Kind.REFERRAL_INVITE:
        context.update(_referral_sample(context))
    # A web request: the email renders within the preview's bounds (journeys.render_limits), and
    # a template that breaks them comes back as a problem to fix, quickly.
    budget = RenderBudget(seconds=PREVIEW_SECONDS)
    try:
        rendered = render_email(delivery, context=context, budget=budget)
        preheader = render_text_fragment(content.get("preheader", ""), context, budget)
    except Exception as exc:  # noqa: BLE001 - a template that fails while rendering is the marketer's to fix
        preview.problems.append(Problem(f"The email cannot be rendered: {exc}", field="body"))
        return preview, None, None
    tenant_sender = tenant.sender_email or settings.DEFAULT_FROM_EMAIL
    preview.subject, preview.html, preview.text = rendered.subject, rendered.html, rendered.text
    preview.preheader = " ".join(preheader.split())
    preview.from_email = f"{tenant.sender_name or tenant.name} <{tenant_sender}>"
    preview.to = customer.email
    preview.rendered = True
    return preview, delivery, rendered


def email_preview(*, tenant: Tenant, journey: Journey, step: Step, content: dict[str, str], customer_key: str
                  ) -> Preview:
    """Render `content` (subject, preheader, body, signature) as `step` would send it. Writes nothing."""
    if step.kind not in EMAIL_KINDS:
        raise PreviewError("This step sends no email.")
    preview, _, _ = _render(tenant, journey, step, content, customer_key)
    return preview


class TestNotSent(Exception):
    """Why a test was not sent, for the person who asked."""


def email_send_test(*, tenant: Tenant, journey: Journey, step: Step, content: dict[str, str], customer_key: str,
                    user) -> tuple[str, Preview]:
    """Send the rendered email to the signed-in user, subject prefixed "[Test]", through the
    configured email backend. Records no Delivery, touches no customer (its links are inert,
    and it carries no List-Unsubscribe that would act for them). Returns the address."""
    address = (getattr(user, "email", "") or "").strip()
    if not address:
        raise TestNotSent("Your account has no email address, so there is nowhere to send a test. Ask the store's "
                          "owner or the operator to add one to your user.")
    preview, delivery, rendered = _render(tenant, journey, step, content, customer_key)
    if not preview.rendered:
        raise TestNotSent("The email cannot be rendered yet: " + "; ".join(p.message for p in preview.problems))
    key = f"t:{tenant.pk}:journeys:test-sends:{user.pk}"  # cache keys carry their tenant
    cache.add(key, 0, timeout=3600)
    if cache.incr(key) > TEST_SENDS_PER_HOUR:
        raise TestNotSent(f"You have sent {TEST_SENDS_PER_HOUR} tests in the last hour; try again later.")
    headers = {k: v for k, v in rendered.headers.items() if not k.startswith("List-Unsubscribe")}
    host = urlsplit(settings.PUBLIC_BASE_URL).hostname or "lifecycle.localhost"
    headers["Message-ID"] = f"<journey-test.{tenant.pk}.{uuid.uuid4().hex}@{host}>"
    headers["X-Lifecycle-Test"] = "1"
    message = build_message(delivery, dataclasses.replace(rendered, subject=f"[Test] {rendered.subject}",
                                                          headers=headers))
    message.to = [address]
    message.tags = ["test"]
    # No delivery_id: tracking webhooks about this message find no delivery to update.
    message.metadata = {"tenant_id": tenant.pk, "journey_id": journey.pk, "step_id": step.pk, "test": "1"}
    message.send()
    return address, preview


SAMPLE_EMAIL = {"subject": "How is your {{ order.items.0.title|default:'order' }}, {{ customer.first_name }}?",
                "preheader": "Three tips to get the most out of it",
                "body": "<p>Hi {{ customer.first_name }},</p><p>Your order {{ order.number }} arrived a few days ago. "
                        "Here are three tips to get the most out of it.</p>"
                        "<p><a class=\"button\" href=\"https://example.com\">Read the tips</a></p>",
                "signature": "Thanks for shopping with us,"}


def sample_email(*, tenant: Tenant) -> Preview:
    """A sample marketing email as the store sends it (its sender, reply-to, brand, footer and quiet rules are
    the `tenant` given, which may hold unsaved values): the settings pages' preview. Writes nothing."""
    journey = Journey(pk=0, tenant=tenant, name="Settings preview", message_class=Journey.MessageClass.MARKETING)
    step = Step(pk=0, tenant=tenant, journey=journey, position=1, kind=Step.Kind.EMAIL, config={})
    preview, _, rendered = _render(tenant, journey, step, SAMPLE_EMAIL, "sample")
    if rendered is not None and tenant.reply_to:
        preview.reply_to = tenant.reply_to
    return preview
