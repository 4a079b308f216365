"""Marketer-written templates reach nothing beyond the context they are given."""

import pytest
from django.template import TemplateSyntaxError

from journeys.sending import html_to_text, render_fragment

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
