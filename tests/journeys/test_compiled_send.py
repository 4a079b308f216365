"""What the send path does once and what it does per email: a template is compiled once per content (an
edit is what the next send renders, exactly), and a wave's values come from batched reads that give each
customer their own (journeys/rendering.py: compiled_variant, email_contexts)."""

import re

import pytest
from django.core import mail

from journeys import rendering
from journeys.models import EmailTemplate, Step
from lifecycle.links import read_token
from lifecycle.models import Customer, Order
from loyalty.services import points_award
from tests.loyalty.helpers import program

from .test_batch_send import claim, customers_with_due_email, send

pytestmark = pytest.mark.django_db


def first_step_template(journey) -> EmailTemplate:
    return Step.objects.for_tenant(journey.tenant_id).get(journey=journey, position=1).template


def test_an_edited_template_is_exactly_what_the_next_send_renders(api, tenant):
    journey = customers_with_due_email(api, tenant, 3)
    ids = claim()
    assert send(ids[:1]) == {"sent": 1, "": 0}
    assert mail.outbox[0].subject == "Hello N0"
    assert "Hi N0, thanks for order" in mail.outbox[0].alternatives[0].content

    # Edited through the model (updated_at moves) …
    template = first_step_template(journey)
    template.subject, template.body = "Welcome back {{ first_name }}", "<p>Good to see you, {{ first_name }}!</p>"
    template.save()
    assert send(ids[1:2]) == {"sent": 1, "": 0}
    second = mail.outbox[1]
    assert second.subject == "Welcome back N1"
    assert "Good to see you, N1!</p>" in second.alternatives[0].content
    assert "thanks for order" not in second.alternatives[0].content and "thanks for order" not in second.body
    assert second.body.startswith("Good to see you, N1!")

    # … and by an UPDATE that leaves updated_at alone: still the new content, not a cached old one.
    before = EmailTemplate.objects.for_tenant(tenant).get(pk=template.pk).updated_at
    EmailTemplate.objects.for_tenant(tenant).filter(pk=template.pk).update(
        subject="Fixed preheader test", preheader="Same for everyone", body="<p>Third {{ first_name }}</p>")
    assert EmailTemplate.objects.for_tenant(tenant).get(pk=template.pk).updated_at == before
    assert send(ids[2:]) == {"sent": 1, "": 0}
    third = mail.outbox[2]
    assert third.subject == "Fixed preheader test"
    assert third.body.startswith("Third N2")
    assert "Same for everyone" in third.alternatives[0].content
    assert "Good to see you" not in third.alternatives[0].content and "Welcome back" not in third.subject
    assert [m.to for m in mail.outbox] == [["c0@example.com"], ["c1@example.com"], ["c2@example.com"]]


def test_a_static_field_is_rendered_once_and_a_broken_edit_fails_every_time():
    fields = rendering.compiled_variant("Hi  there", "Fixed\n  text", "<p onclick=\"x()\">Static</p><script>x</script>")
    assert (fields.subject, fields.preheader, fields.body) == ("Hi there", "Fixed text", "<p>Static</p>")
    assert rendering.compiled_variant("Hi  there", "Fixed\n  text", "<p onclick=\"x()\">Static</p><script>x</script>") is fields
    from django.template import TemplateSyntaxError

    for _ in range(2):
        with pytest.raises(TemplateSyntaxError):
            rendering.compiled_variant("ok", "", "{% if %}")


LINK = re.compile(r'href="https?://[^"]*/([ul])/([^"]+)"')


def test_one_wave_gives_each_customer_their_own_name_points_order_and_links(api, tenant):
    journey = customers_with_due_email(api, tenant, 2)
    template = first_step_template(journey)
    template.body = ('<p>{{ first_name }} has {{ points_balance }} points for order {{ order.number }}.</p>'
                     '<p><a href="{{ loyalty_url }}">Your points</a></p>')
    template.save()
    program(tenant)
    customers = {c.external_id: c for c in Customer.objects.for_tenant(tenant)}
    points_award(tenant=tenant, customer=customers["c0"], points=120, source="test:c0")
    points_award(tenant=tenant, customer=customers["c1"], points=7, source="test:c1")
    ids = claim()
    assert len(ids) == 2

    assert send(ids) == {"sent": 2, "": 0}  # one wave: one read of names, points, orders for both

    orders = {o.customer_id: o.number or o.external_id for o in Order.objects.for_tenant(tenant)}
    assert sorted(m.to[0] for m in mail.outbox) == ["c0@example.com", "c1@example.com"]
    for message in mail.outbox:
        mine = "c0" if message.to == ["c0@example.com"] else "c1"
        other = "c1" if mine == "c0" else "c0"
        customer = customers[mine]
        html = message.alternatives[0].content
        points = 120 if mine == "c0" else 7
        assert f"N{mine[1]} has {points} points for order {orders[customer.pk]}." in html.replace("&nbsp;", " ")
        assert f"N{other[1]} " not in html and f"has {120 if mine == 'c1' else 7} points" not in html
        assert orders[customers[other].pk] not in html
        delivery_id = message.metadata["delivery_id"]
        links = {kind: token for kind, token in LINK.findall(html)}
        assert set(links) == {"l", "u"}
        for kind, purpose in (("l", "loyalty"), ("u", "unsubscribe")):
            assert read_token(purpose, links[kind]) == {"t": tenant.pk, "c": customer.pk, "d": delivery_id}
        assert read_token("unsubscribe", message.extra_headers["List-Unsubscribe"].split("/u/")[1].split(">")[0]) == {
            "t": tenant.pk, "c": customer.pk, "d": delivery_id}


# --- the MIME built once per message: the same bytes as Django's own ------------------------------


def plain_and_journey_messages(subject: str):
    from anymail.message import AnymailMessage

    from journeys.rendering import JourneyMessage

    built = []
    for cls in (AnymailMessage, JourneyMessage):
        message = cls(subject=subject, body="Hi Léa,\nthanks.", from_email="Acme Coffee <hello@acme.example>",
                      to=["lea@example.com"], reply_to=["care@acme.example"],
                      headers={"Message-ID": "<journey.1.2.abc@x.example>", "Date": "Mon, 07 Dec 2026 12:00:00 -0000",
                               "List-Unsubscribe": "<https://x.example/u/" + "t" * 150 + ">, <mailto:care@acme.example>",
                               "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
        message.attach_alternative("<p>Hi Léa</p>" * 40, "text/html")
        if cls is JourneyMessage:
            message.boundary = "==journey-abc=="
        built.append(message.message())
    built[0].set_boundary("==journey-abc==")  # what the generator would otherwise draw at random
    return [m.as_bytes(linesep="\r\n") for m in built]


@pytest.mark.parametrize("subject", ["Hello Ada", "Léa, wie gefällt dir deine Bestellung #100123?", "x " * 60,
                                     "tab\there  and  spaces ", ""])
def test_a_journey_message_is_byte_for_byte_the_mime_django_builds(subject):
    plain, journey = plain_and_journey_messages(subject)
    assert journey == plain
    assert b"boundary=\"==journey-abc==\"" in journey


def test_header_folding_gives_what_compat32_gives_for_every_kind_of_value():
    import random
    import string
    from email.policy import compat32

    from journeys.rendering import _FOLD_ONCE

    def fold(policy, name, value, linesep):
        try:
            return policy.clone(linesep=linesep).fold_binary(name, value)
        except Exception as exc:  # noqa: BLE001 - the same error both ways is the same answer
            return type(exc)

    rnd = random.Random(16)
    alphabet = string.printable + " \t\xa0é"
    fast = 0
    for n in range(3000):
        size = rnd.choice([1, 10, 60, 70, 75, 80, 120])
        value = "".join(rnd.choice(alphabet if n % 3 else string.ascii_letters + " ;,<>@=")
                        for _ in range(rnd.randint(0, size)))
        for name in ("Subject", "To", "X-A-Long-Header-Name", "Content-Type", "From"):
            for linesep in ("\n", "\r\n"):
                assert fold(_FOLD_ONCE, name, value, linesep) == fold(compat32, name, value, linesep), (name, value)
                fast += bool(rendering._PLAIN_WORDS.fullmatch(value))
    assert fast > 1000  # the direct path was taken, not only compat32's
