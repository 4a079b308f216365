"""Marketer-written templates reach nothing beyond the context they are given."""

from unittest import mock

import pytest
from django.template import TemplateSyntaxError

from journeys import rendering as sending
from journeys.models import Delivery, EmailTemplate, Journey
from journeys.rendering import html_to_text, render_fragment
from lifecycle.models import Tenant

CONTEXT = {"first_name": "Ada", "order": {"number": "#1", "total": "12,00\xa0€"}}


def test_values_render_escaped():
    assert render_fragment("Hi {{ first_name }}", {"first_name": "<b>Ada</b>"}) == "Hi &lt;b&gt;Ada&lt;/b&gt;"


def test_unknown_names_render_empty():
    assert render_fragment("[{{ settings.SECRET_KEY }}{{ request.user }}{{ order.customer.tenant }}]", CONTEXT) == "[]"


@pytest.mark.parametrize("source", [
    "{% load admin_urls %}", "{% load static %}", "{% debug %}", '{% include "email/layout.html" %}',
    '{% extends "pages/base.html" %}', '{% url "v1:orders" %}', "{% csrf_token %}",
])
def test_tags_that_reach_outside_the_context_do_not_exist(source):
    with pytest.raises(TemplateSyntaxError):
        render_fragment(source, CONTEXT)


def test_the_everyday_tags_and_filters_work():
    source = "{% if order %}{{ order.number }}{% endif %} {{ first_name|upper }} {% for i in items %}{{ i }}{% endfor %}"
    assert render_fragment(source, {**CONTEXT, "items": [1, 2]}) == "#1 ADA 12"


def test_text_part_is_readable():
    html = '<p>Hi Ada, your total is 12,00&nbsp;€.</p><ul><li>Beans</li></ul><p><a href="https://x.example/r">Review it</a></p>'
    assert html_to_text(html) == "Hi Ada, your total is 12,00 €.\n\n- Beans\n\nReview it (https://x.example/r)"


# --- the layout rendered once per store ------------------------------------------------------

# Every tag and class a marketer's body may use, and values that need escaping everywhere.
EVERY_ELEMENT = """<h1>Hi {{ first_name }}</h1><h2>{{ order.number }}</h2><h3>{{ order.total }}</h3>
<p class="lead">Thanks &amp; <b>b</b> <strong>s</strong> <i>i</i> <em>e</em> <u>u</u><br>line</p>
<ul><li>a</li></ul><ol><li>b</li></ol><blockquote>q</blockquote><hr>
<table class="items"><thead><tr><th>Item</th></tr></thead><tbody>{% for item in order.items %}
<tr><td class="score"><img src="{{ item.image_url }}" alt="{{ item.title }}" width="64"></td>
<td align="right"><a href="{{ item.url }}" title="{{ item.title }}">{{ item.title }}</a> &times; {{ item.quantity }}</td></tr>
{% endfor %}</tbody></table>
<div class="survey stars"><span class="score">5</span><a class="score" href="https://x.example/?a=1&amp;b=2">*</a></div>
<div class="card"><p class="signature">s</p></div><div class="footer"><a href="mailto:care@example.com">m</a></div>
<p class="ends">e</p><p><a class="button" href="https://x.example/r?o={{ order.number|urlencode }}">Review</a></p>
<span class="brand">b</span><div class="wrap"><p class="survey-question">?</p></div><p class="preheader">p</p>"""


@pytest.fixture
def deliveries(api, tenant):
    """Three customers' due deliveries of one email with EVERY_ELEMENT, names that need escaping."""
    from lifecycle import clock
    from tests.factories import order_payload

    from .helpers import at, make_journey, process_events

    journey = make_journey(tenant, steps=[("PT0S", "{{ first_name }} & \"friends\" <3 'you'")])
    Journey.objects.for_tenant(tenant).filter(pk=journey.pk).update(message_class="marketing")
    EmailTemplate.objects.for_tenant(tenant).update(
        body=EVERY_ELEMENT, preheader="Two\xa0minutes & <one> click", signature="Mia & Co")
    Tenant.objects.filter(pk=tenant.pk).update(name='Acme "Coffee" & Tea', postal_address="1 Lane <A>\nBerlin")
    with clock.frozen(at("2026-11-23T09:00:00+00:00")):
        for n, (name, locale) in enumerate([("Zoë & <Ann>", "de-DE"), ("", "en"), ("Léa\xa0Marie", "fr")]):
            body = order_payload(customer={"external_id": f"c{n}", "email": f"c{n}@example.com", "first_name": name,
                                           "locale": locale, "marketing_consent": True})
            assert api.post("/api/v1/orders", body).status_code == 201
        process_events()
    return list(Delivery.objects.for_tenant(tenant).select_related(
        "customer__tenant", "enrollment__order", "step__template", "journey").order_by("pk"))


def whole(delivery):
    """The email as it was rendered before the layout was cut into slots: all of it through
    render_to_string and css_inline.inline."""
    with mock.patch.object(sending, "_layout", return_value=None):
        return sending.render_email(delivery)


@pytest.mark.django_db
def test_the_once_rendered_layout_gives_the_same_bytes_as_rendering_it_whole(deliveries):
    assert len(deliveries) == 3
    with mock.patch("django.core.signing.time.time", return_value=1.8e9):  # the same link tokens
        for delivery in deliveries:
            fast, reference = sending.render_email(delivery), whole(delivery)
            assert fast == reference
    first = sending.render_email(deliveries[0])
    assert "<h1>Hi Zoë &amp; &lt;Ann&gt;</h1>" in first.html
    assert "<title>Zoë &amp; &lt;Ann&gt; &amp; \"friends\" &lt;3 'you'</title>" in first.html
    assert 'class="button"' in first.html and "background: #7a4b2a" in first.html  # the body's CSS inlined
    assert "Two minutes &amp; &lt;one&gt; click" in first.html and "<style" not in first.html
    assert first.text.startswith("Hi Zoë & <Ann>") and "Mia & Co\nAcme \"Coffee\" & Tea" in first.text


@pytest.mark.django_db
def test_a_layout_that_cannot_be_cut_renders_whole(deliveries):
    delivery = deliveries[0]
    with mock.patch("django.core.signing.time.time", return_value=1.8e9):
        reference = whole(delivery)
        with mock.patch.object(sending, "_CONTENT", '<div class="nowhere">'):  # the content div not found
            sending._layout.cache_clear()
            try:
                assert sending._layout("Acme", "Mia", "", True) is None
                assert sending.render_email(delivery) == reference
            finally:
                sending._layout.cache_clear()


@pytest.mark.django_db
def test_a_batch_reads_lines_and_points_once_and_renders_what_one_by_one_does(deliveries,
                                                                               django_assert_num_queries):
    with mock.patch("django.core.signing.time.time", return_value=1.8e9):
        one_by_one = {d.pk: sending.render_email(d) for d in deliveries}
        with django_assert_num_queries(3):  # order lines, loyalty accounts, earlier steps' codes: for all three
            batch = sending.render_emails(deliveries)
    assert batch == one_by_one
    assert [len(c["order"]["items"]) for c in sending.email_contexts(deliveries).values()] == [2, 2, 2]


@pytest.mark.django_db
def test_a_template_broken_after_it_was_saved_fails_its_own_emails_only(deliveries):
    broken = deliveries[1]
    broken.step.template.body = "{% if %}"
    rendered = sending.render_emails(deliveries)
    assert isinstance(rendered[broken.pk], TemplateSyntaxError)
    assert [type(rendered[d.pk]).__name__ for d in deliveries] == ["RenderedEmail", "TemplateSyntaxError",
                                                                   "RenderedEmail"]
