"""Nothing before commit (issue 8, item 3): work whose transaction rolls back leaves no row and puts
no message on the broker. A spy on kombu's Producer.publish - the one call every Celery message
(delay, apply_async, send_task, retry) goes through to reach any broker - records each message
instead of sending it. Each test also commits the same work and sees the spy catch its messages,
so a spy that saw nothing because it saw nothing at all would fail."""

import datetime as dt

import pytest
from django.db import transaction
from kombu.messaging import Producer

from feedback.models import FeedbackAlert, SurveyRequest
from feedback.services import answer_submit
from journeys.models import Delivery, Enrollment
from journeys.tasks import dispatch
from lifecycle import clock
from lifecycle.inputs import OrderIn
from lifecycle.models import Customer, Event, Order
from lifecycle.orders import order_ingest
from tests.factories import order_payload
from tests.feedback.helpers import feedback_journey, nps_survey, send_feedback_email
from tests.journeys.helpers import at, make_journey, process_events

pytestmark = pytest.mark.django_db(transaction=True)

NOON = at("2026-11-23T09:00:00+00:00")  # 10:00 in Berlin: outside quiet hours


class Rollback(Exception):
    pass


@pytest.fixture
def broker(monkeypatch) -> list[dict]:
    """Every message handed to the broker: {"task": name, "args": [...]}; nothing is really sent."""
    published: list[dict] = []

    def publish(self, body, routing_key=None, headers=None, **kwargs):
        args = body[0] if isinstance(body, list | tuple) else body
        published.append({"task": (headers or {}).get("task"), "args": list(args), "queue": routing_key,
                          "eta": (headers or {}).get("eta")})

    monkeypatch.setattr(Producer, "publish", publish)
    return published


def ingest(tenant, external_id: str):
    body = order_payload(external_id=external_id, placed_at="2026-11-23T08:00:00Z",
                         customer={"external_id": f"c-{external_id}", "email": f"{external_id}@example.com",
                                   "marketing_consent": True})
    return order_ingest(tenant=tenant, data=OrderIn.model_validate(body))


def rows(tenant) -> dict[str, int]:
    return {model.__name__: model.objects.for_tenant(tenant).count()
            for model in (Customer, Order, Event, Enrollment, Delivery)}


def test_an_order_whose_transaction_rolls_back_schedules_and_enqueues_nothing(tenant, broker):
    make_journey(tenant, steps=[("PT0S", "Thanks for your order")])
    empty = rows(tenant)

    with clock.frozen(NOON):
        with pytest.raises(Rollback), transaction.atomic():
            result = ingest(tenant, "O-rolled-back")
            assert result.created and result.order.status == "paid"
            raise Rollback
        # Everything that runs after a commit - the event sweep, the dispatcher - finds nothing.
        assert process_events() == 0
        assert dispatch() == 0

    assert rows(tenant) == empty
    assert broker == []

    # The same order committed: enrolled, scheduled, and the dispatcher's one send task is seen.
    with clock.frozen(NOON):
        ingest(tenant, "O-committed")
        assert broker == []  # ingesting queues nothing itself: the outbox is swept by beat
        process_events()
        assert dispatch() == 1
    delivery = Delivery.objects.for_tenant(tenant).get()
    assert broker == [{"task": "journeys.send", "args": [[delivery.pk]], "queue": "sends",
                       "eta": None}]


def test_an_alert_queued_on_commit_is_never_sent_for_a_rolled_back_answer(api, tenant, broker):
    nps_survey(tenant)
    feedback_journey(tenant, "nps")
    send_feedback_email(api, tenant)
    broker.clear()  # the feedback email itself was dispatched in-process by send_due
    request = SurveyRequest.objects.for_tenant(tenant).get()
    later = NOON + dt.timedelta(days=1, hours=2)

    with clock.frozen(later), pytest.raises(Rollback), transaction.atomic():
        outcome = answer_submit(survey_request=request, score=2, mode="confirm")
        assert outcome.state == "recorded"
        assert FeedbackAlert.objects.for_tenant(tenant).count() == 1  # written, inside the transaction
        raise Rollback

    assert FeedbackAlert.objects.for_tenant(tenant).count() == 0
    assert broker == []

    with clock.frozen(later):
        answer_submit(survey_request=request, score=2, mode="confirm")
    alert = FeedbackAlert.objects.for_tenant(tenant).get()
    assert broker == [{"task": "feedback.alert_send", "args": [tenant.pk, alert.pk], "queue": "sends",
                       "eta": None}]
