"""A marketer's template has a work and size limit: refused at save when it says so on its face,
stopped while rendering when it does not (the delivery fails with the reason, once, and the
journey's other customers go on), and the builder's preview answers quickly with the problem."""

import datetime as dt
import time

import pytest
from django.core import mail

from config.celery import app
from journeys import builder
from journeys.models import Delivery, EmailTemplate, Enrollment, Journey, Step
from journeys.template_checks import template_problems
from lifecycle import clock

from .helpers import make_journey, process_events
from .test_engine import NOON, paid_order, send_due

pytestmark = pytest.mark.django_db

NESTED_THREE = ("{% for a in order.items %}{% for b in order.items %}{% for c in order.items %}{{ c.title }}"
                "{% endfor %}{% endfor %}{% endfor %}")
NESTED_FOUR_OVER_LETTERS = ("{% for a in order.item_titles %}{% for b in order.item_titles %}"
                            "{% for c in order.item_titles %}{% for d in order.item_titles %}x"
                            "{% endfor %}{% endfor %}{% endfor %}{% endfor %}")
# The same loops writing nothing: only the time bound can stop them, however fast the machine (with the
# "x", a fast machine reaches the size bound first).
NESTED_FOUR_SILENT = NESTED_FOUR_OVER_LETTERS.replace("x{% endfor %}", "{% endfor %}", 1)
# Passes the save check (one loop, over a list), but repeats 60 kB per order line.
BIG_PER_LINE = "{% for item in order.items %}<p>{{ item.title }} " + "lorem ipsum " * 5000 + "</p>{% endfor %}"


def lines(n: int) -> list[dict]:
    return [{"product_external_id": f"p-{i}", "sku": f"SKU-{i}", "title": f"Thing {i}", "quantity": 1,
             "unit_price": "1.00"} for i in range(n)]


def test_the_save_check_refuses_unbounded_templates_with_a_message():
    assert template_problems(NESTED_THREE) == [
        "has {% for %} loops nested 3 deep; at most 2 (a loop inside a loop) are allowed, because every level "
        "multiplies the work and the size of each email"]
    assert template_problems('<p>{{ first_name|ljust:"20000000" }}</p>') == [
        'pads to more than 200 characters with |ljust:"20000000": use a number up to 200']
    assert template_problems("{{ first_name|center:customer.order_count }}") == [
        "pads with |center:customer.order_count: write a number up to 200 instead of a placeholder"]
    assert template_problems('{{ order.total|stringformat:"099999d" }}') == [
        'pads to more than 200 characters with |stringformat:"099999d": use a number up to 200']
    assert "loops over the letters of order.item_titles one by one" in template_problems(NESTED_FOUR_OVER_LETTERS)[0]
    # What a real email does stays allowed: a loop in a loop, small widths.
    assert template_problems('{% for i in order.items %}{% for j in order.items %}{{ j.title|ljust:"20" }}'
                             '{% endfor %}{% endfor %}{{ order.total|floatformat:2 }}') == []
    assert template_problems(BIG_PER_LINE) == []


def test_the_builder_refuses_such_a_template_at_save_even_in_a_draft(tenant):
    journey = make_journey(tenant, status=Journey.Status.DRAFT)
    step = Step.objects.for_tenant(tenant).select_related("template").get(journey=journey)
    body = step.template.body
    with pytest.raises(builder.BuilderError) as refused:
        builder.step_update(tenant=tenant, journey_id=journey.pk, step_id=step.pk, values={},
                            content={"subject": "Hi", "preheader": "", "body": NESTED_THREE, "signature": ""})
    assert refused.value.code == "journeys.template_too_costly"
    assert refused.value.fields == {"content": [
        "The body has {% for %} loops nested 3 deep; at most 2 (a loop inside a loop) are allowed, because "
        "every level multiplies the work and the size of each email"]}
    assert EmailTemplate.objects.for_tenant(tenant).get(pk=step.template_id).body == body


def test_an_email_past_the_size_bound_fails_with_its_reason_once_and_the_others_go_out(api, tenant):
    journey = make_journey(tenant, message_class="transactional", steps=[("PT0S", "Your things")])
    Step.objects.for_tenant(tenant).filter(journey=journey).update(template=EmailTemplate.objects.for_tenant(
        tenant).create(tenant=tenant, name="big", subject="Your things", body=BIG_PER_LINE))
    with clock.frozen(NOON):
        paid_order(api, external_id="BIG", customer={"external_id": "big", "email": "big@example.com"},
                   lines=lines(20), total="20.00")
        paid_order(api, external_id="SMALL", customer={"external_id": "small", "email": "small@example.com"},
                   lines=lines(1), total="1.00")
        process_events()

    started = time.monotonic()
    assert send_due(NOON) == ["failed", "sent"]
    assert time.monotonic() - started < 10

    assert [m.to for m in mail.outbox] == [["small@example.com"]]
    failed = Delivery.objects.for_tenant(tenant).get(customer__external_id="big")
    assert failed.state == "failed" and failed.sent_at is None and failed.attempts == 1
    assert failed.reason == ("RenderLimitExceeded: the email grew past 1,000,000 characters while rendering (a loop "
                             "repeats too much text): shorten what the loop repeats")
    assert failed.history[-1]["state"] == "failed"
    explained = api.get("/api/v1/customers/big/journeys").json()  # what the explain view shows
    [step] = explained["journeys"][0]["enrollments"][0]["steps"]
    assert step["summary"] == f"Step 1 failed: {failed.reason}"
    # Never retried: later sends find nothing due, and nothing more goes out.
    assert send_due(NOON + dt.timedelta(hours=1)) == []
    assert send_due(NOON + dt.timedelta(days=2)) == []
    assert len(mail.outbox) == 1
    assert Delivery.objects.for_tenant(tenant).get(pk=failed.pk).state == "failed"
    assert Enrollment.objects.for_tenant(tenant).get(customer__external_id="small").state == "completed"


def test_a_template_saved_before_the_check_stops_at_the_time_bound(api, tenant):
    journey = make_journey(tenant, message_class="transactional", steps=[("PT0S", "Slow")])
    # Written straight to the table, as a template saved before the check existed would be.
    EmailTemplate.objects.for_tenant(tenant).filter(pk=Step.objects.for_tenant(tenant).get(journey=journey)
                                                    .template_id).update(body=NESTED_FOUR_SILENT)
    with clock.frozen(NOON):
        paid_order(api, external_id="SLOW", customer={"external_id": "slow", "email": "slow@example.com"},
                   lines=[{**line, "title": "A rather long product title " * 3} for line in lines(5)])
        process_events()

    started = time.monotonic()
    assert send_due(NOON) == ["failed"]
    assert time.monotonic() - started < 6

    delivery = Delivery.objects.for_tenant(tenant).get()
    assert delivery.reason == ("RenderLimitExceeded: the email took more than 2 s to render (a loop does too much "
                               "work): simplify the template's loops")
    assert mail.outbox == []


def test_every_task_has_a_soft_and_a_hard_time_limit():
    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert {"journeys.send", "journeys.dispatch", "journeys.settle_outcomes", "lifecycle.process_events",
            "loyalty.expire_points"} <= set(ours)
    for name, task in ours.items():
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        hard = task.time_limit or app.conf.task_time_limit
        assert soft and hard and soft < hard, name
    assert (app.tasks["journeys.send"].soft_time_limit, app.tasks["journeys.send"].time_limit) == (240, 300)
    assert (app.tasks["journeys.settle_outcomes"].soft_time_limit,
            app.tasks["journeys.settle_outcomes"].time_limit) == (1500, 1560)


def test_an_email_caught_by_the_tasks_soft_time_limit_is_retried_not_failed(api, tenant):
    from celery.exceptions import SoftTimeLimitExceeded

    from journeys.dispatch import deliveries_send
    from journeys.schedule import deliveries_claim

    make_journey(tenant, message_class="transactional", steps=[("PT0S", "Hi")])
    with clock.frozen(NOON):
        paid_order(api)
        process_events()

    def out_of_time(message, connection=None):
        raise SoftTimeLimitExceeded("SoftTimeLimitExceeded()")

    with clock.frozen(NOON):
        [delivery_id] = deliveries_claim(limit=10)
        assert +deliveries_send(delivery_ids=[delivery_id], send=out_of_time) == {"pending": 1}
    delivery = Delivery.objects.for_tenant(tenant).get()
    assert (delivery.state, delivery.due_at) == ("pending", NOON + dt.timedelta(seconds=30))
    assert delivery.reason.startswith("retrying: SoftTimeLimitExceeded")
    assert mail.outbox == []


def test_filters_that_multiply_text_stop_at_their_bound_while_rendering():
    from journeys.render_limits import RenderLimitExceeded
    from journeys.rendering import render_fragment

    assert render_fragment('{{ names|join:", " }} {{ name|ljust:6 }}|', {"names": ["Ada", "<b>"], "name": "Ada"}) == (
        "Ada, &lt;b&gt; Ada   |")
    with pytest.raises(RenderLimitExceeded, match="|join would write more than 1,000,000 characters"):
        render_fragment("{{ titles|make_list|join:separator }}", {"titles": "x" * 1000, "separator": "y" * 5000})
    with pytest.raises(RenderLimitExceeded, match="asks for more than 200 characters"):
        render_fragment("{{ name|rjust:width }}", {"name": "Ada", "width": 20_000_000})
