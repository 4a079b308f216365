"""Signed links (issue 8, item 7): every kind of token in an email - unsubscribe (and the preference page), survey (answer,
score and review pages), loyalty and referral - tampered, expired, replayed, used on another
purpose's URL or naming another store answers 404 or a friendly page and writes nothing. Unsubscribe
links work for at least 60 days. A GET (or HEAD) writes nothing, since mail scanners fetch every link.

"Writes nothing" is measured two ways around each request: the row count of every table, and
PostgreSQL's own count of the rows this transaction inserted, updated or deleted
(pg_stat_xact_user_tables), which also sees an UPDATE that leaves the counts alone. Each kind's
real action (unsubscribe, answer, redeem) is also done once, and both measures see it: a detector
that saw nothing because it sees nothing would fail here.

Tokens are timestamped by django.core.signing with time.time(); `signing_clock` makes it read
lifecycle.clock instead, so a test can move the time a link is opened at.
"""

import datetime as dt
import types
from collections import Counter

import pytest
from django.core import signing
from django.db import connection
from django.test import Client

from feedback.models import SurveyRequest, SurveyResponse
from lifecycle import clock
from lifecycle.links import MAX_AGE_DAYS, make_token
from lifecycle.models import Customer, Event
from loyalty.models import Program as LoyaltyProgram
from loyalty.models import Reward
from loyalty.services import points_award
from referrals.models import Program as ReferralProgram
from tests.factories import order_payload
from tests.feedback.helpers import NOON, feedback_journey, nps_survey, score_links, send_feedback_email
from tests.referrals.helpers import BROWSER

pytestmark = pytest.mark.django_db

SENT = NOON + dt.timedelta(days=1)  # when send_feedback_email's email goes out
PURPOSES = ("unsubscribe", "survey", "loyalty", "referral")


@pytest.fixture(autouse=True)
def signing_clock(monkeypatch):
    monkeypatch.setattr(signing, "time", types.SimpleNamespace(time=lambda: clock.now().timestamp()))


def table_counts() -> dict[str, int]:
    tables = sorted(connection.introspection.table_names())
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(f'SELECT %s, count(*) FROM "{t}"' for t in tables), tables)  # noqa: S608
        return dict(cursor.fetchall())


def rows_touched() -> Counter:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables")
        return Counter(dict(cursor.fetchall()))


class Writes:
    """What a block wrote: tables whose row count changed, and tables with rows inserted/updated/deleted."""

    def __enter__(self):
        self.counts, self.touched = table_counts(), rows_touched()
        return self

    def __exit__(self, *exc):
        counts, touched = table_counts(), rows_touched()
        self.count_changes = {t: counts[t] - self.counts.get(t, 0) for t in counts if counts[t] != self.counts.get(t, 0)}
        self.tables = sorted(t for t in touched if touched[t] != self.touched.get(t, 0))
        return False

    @property
    def none(self) -> bool:
        return not self.count_changes and not self.tables


def tampered(token: str) -> list[str]:
    """The ways a token gets altered: a changed signature, a changed payload, cut short, nothing left."""
    payload, stamp, sig = token.rsplit(":", 2)
    flip = "A" if sig[-1] != "A" else "B"
    forged = signing.dumps({"t": 1, "c": 1}, salt="not.the.salt", compress=True).split(":")[0]
    return [f"{payload}:{stamp}:{sig[:-1]}{flip}", f"{forged}:{stamp}:{sig}", token[: len(token) // 2], "x", "."]


@pytest.fixture
def links(api, tenant, other_api, other_tenant):
    """One customer who got a real survey email (unsubscribe and survey links from it), has 200 points
    and a reward to spend them on, at a store with a referral program; plus another store's customer."""
    nps_survey(tenant)
    feedback_journey(tenant, "nps")
    LoyaltyProgram.objects.for_tenant(tenant).create(tenant=tenant)
    reward = Reward.objects.for_tenant(tenant).create(tenant=tenant, program=LoyaltyProgram.objects.for_tenant(
        tenant).get(), name="5 EUR off", kind="fixed_discount", cost=80, value="5", currency="EUR", code_prefix="A")
    ReferralProgram.objects.for_tenant(tenant).create(tenant=tenant, store_url="https://acme.example.com/",
                                                      currency="EUR", advocate_reward_amount="10",
                                                      friend_reward_amount="5")
    message = send_feedback_email(api, tenant)
    customer = Customer.objects.for_tenant(tenant).get(external_id="c1")
    points_award(tenant=tenant, customer=customer, points=200, source="test:welcome", reason="welcome")
    request = SurveyRequest.objects.for_tenant(tenant).get()
    with clock.frozen(NOON):
        assert other_api.post("/api/v1/orders", order_payload(external_id="G1", customer={
            "external_id": "g1", "email": "gus@example.org", "marketing_consent": True})).status_code == 201
    stranger = Customer.objects.for_tenant(other_tenant).get(external_id="g1")
    unsubscribe_url = message.extra_headers["List-Unsubscribe"].split(">")[0].removeprefix("<")
    delivery_id = request.delivery_id
    with clock.frozen(SENT):
        tokens = {
            "unsubscribe": unsubscribe_url.split("/u/")[1],
            "survey": score_links(message)[9].split("/")[2],
            # As journeys.rendering and referrals.rendering make them for the same email.
            "loyalty": make_token("loyalty", tenant_id=tenant.pk, customer_id=customer.pk, delivery_id=delivery_id),
            "referral": make_token("referral", tenant_id=tenant.pk, customer_id=customer.pk),
        }
        # Well signed, but naming the other store (with this store's customer and survey request) or
        # this store with the other store's customer: what a bug or a leaked key would produce.
        foreign = {
            "unsubscribe": [make_token("unsubscribe", tenant_id=other_tenant.pk, customer_id=customer.pk,
                                       delivery_id=delivery_id),
                            make_token("unsubscribe", tenant_id=tenant.pk, customer_id=stranger.pk)],
            "survey": [make_token("survey", tenant_id=other_tenant.pk, customer_id=customer.pk,
                                  delivery_id=delivery_id, r=request.pk),
                       make_token("survey", tenant_id=tenant.pk, customer_id=stranger.pk, r=request.pk)],
            "loyalty": [make_token("loyalty", tenant_id=other_tenant.pk, customer_id=customer.pk),
                        make_token("loyalty", tenant_id=tenant.pk, customer_id=stranger.pk)],
            "referral": [make_token("referral", tenant_id=other_tenant.pk, customer_id=customer.pk),
                         make_token("referral", tenant_id=tenant.pk, customer_id=stranger.pk)],
        }
    product = request.order.lines.first().product_id
    return types.SimpleNamespace(tenant=tenant, customer=customer, request=request, reward=reward, tokens=tokens,
                                 foreign=foreign, product=product)


def pages(purpose: str, token: str, links) -> list[tuple[str, str, dict]]:
    """(method, path, form) for every page a token of this purpose opens, and what the page posts."""
    if purpose == "unsubscribe":
        # The preference page the footer links beside it (/u/<token>/preferences) takes the same token.
        return [("get", f"/u/{token}", {}), ("post", f"/u/{token}", {"List-Unsubscribe": "One-Click"}),
                ("get", f"/u/{token}/preferences", {}),
                ("post", f"/u/{token}/preferences", {"action": "unsubscribe_all"})]
    if purpose == "survey":
        form = {"request": links.request.pk, "mode": "confirm", "score": 9}
        return [("get", f"/f/{token}", {}), ("get", f"/f/{token}/9", {}), ("post", f"/f/{token}", form),
                ("get", f"/f/{token}/review/{links.product}", {}),
                ("post", f"/f/{token}/review/{links.product}", {**form, "score": 5})]
    if purpose == "loyalty":
        return [("get", f"/l/{token}", {}), ("post", f"/l/{token}", {"reward": links.reward.pk, "nonce": "n1"})]
    return [("get", f"/r/{token}", {})]


def opened(method: str, path: str, form: dict):
    client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="198.51.100.7")
    return client.post(path, form) if method == "post" else client.get(path)


def assert_refused(response) -> None:
    assert response.status_code == 404, (response.status_code, response.content[:300])


@pytest.mark.parametrize("purpose", PURPOSES)
def test_a_tampered_token_is_a_404_and_writes_nothing(links, purpose):
    for bad in tampered(links.tokens[purpose]):
        for method, path, form in pages(purpose, bad, links):
            with clock.frozen(SENT + dt.timedelta(hours=1)), Writes() as writes:
                response = opened(method, path, form)
            assert_refused(response)
            assert writes.none, (path, writes.count_changes, writes.tables)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_a_token_naming_another_store_is_the_same_404_and_writes_nothing(links, purpose):
    bodies = set()
    for token in links.foreign[purpose]:
        for method, path, form in pages(purpose, token, links):
            with clock.frozen(SENT + dt.timedelta(hours=1)), Writes() as writes:
                response = opened(method, path, form)
            assert_refused(response)
            assert writes.none, (path, writes.count_changes, writes.tables)
            bodies.add((path.split("/")[1], response.content))
    # "Someone else's" reads exactly like "no such link" on the same page.
    for method, path, form in pages(purpose, tampered(links.tokens[purpose])[0], links):
        assert (path.split("/")[1], opened(method, path, form).content) in bodies


@pytest.mark.parametrize("purpose", PURPOSES)
def test_a_token_on_another_purposes_url_is_a_404_and_writes_nothing(links, purpose):
    token = links.tokens[purpose]
    for other in PURPOSES:
        if other == purpose:
            continue
        for method, path, form in pages(other, token, links):
            with clock.frozen(SENT + dt.timedelta(hours=1)), Writes() as writes:
                response = opened(method, path, form)
            assert_refused(response)
            assert writes.none, (purpose, path, writes.count_changes, writes.tables)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_an_expired_token_gets_a_friendly_page_and_writes_nothing(links, purpose):
    expired_at = SENT + dt.timedelta(days=MAX_AGE_DAYS[purpose], hours=1)
    for method, path, form in pages(purpose, links.tokens[purpose], links):
        with clock.frozen(expired_at), Writes() as writes:
            response = opened(method, path, form)
        assert response.status_code == 410, (path, response.status_code)
        assert b"<html" in response.content.lower() and b"expired" in response.content.lower()
        assert writes.none, (path, writes.count_changes, writes.tables)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_a_get_or_head_of_a_valid_link_changes_nothing(links, purpose):
    for method, path, _ in pages(purpose, links.tokens[purpose], links):
        if method != "get":
            continue
        for fetch in ("get", "head"):
            client = Client(HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="198.51.100.7")
            with clock.frozen(SENT + dt.timedelta(hours=1)), Writes() as writes:
                response = getattr(client, fetch)(path)
            assert response.status_code == 200, (fetch, path, response.status_code)
            if purpose == "referral" and fetch == "get":
                # The advocate's own share page counts the visit as theirs (a fraud signal against
                # self-referral) and issues their code: analytics and an idempotent code, never a
                # consent, an answer, points or a reward.
                assert set(writes.tables) <= {"referrals_click", "referrals_referralcode"}, writes.tables
            else:
                assert writes.none, (fetch, path, writes.count_changes, writes.tables)
    customer = Customer.objects.for_tenant(links.tenant).get(pk=links.customer.pk)
    assert customer.unsubscribed_at is None and customer.marketing_consent is True


def test_unsubscribe_links_work_for_60_days_and_more(links):
    token = links.tokens["unsubscribe"]
    for days in (60, MAX_AGE_DAYS["unsubscribe"] - 1):
        with clock.frozen(SENT + dt.timedelta(days=days)), Writes() as writes:
            page = opened("get", f"/u/{token}", {})
        assert page.status_code == 200 and b"Unsubscribe" in page.content and writes.none

    with clock.frozen(SENT + dt.timedelta(days=60)), Writes() as writes:
        done = opened("post", f"/u/{token}", {"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert writes.count_changes == {"lifecycle_event": 1}
    assert {"lifecycle_customer", "lifecycle_event"} <= set(writes.tables)
    customer = Customer.objects.for_tenant(links.tenant).get(pk=links.customer.pk)
    assert customer.unsubscribed_at == SENT + dt.timedelta(days=60) and customer.marketing_consent is False


def test_a_replayed_action_writes_nothing_more(links):
    """Each one-shot action done once (and seen by the detector), then the same request again."""
    later = SENT + dt.timedelta(hours=2)
    unsubscribe = ("post", f"/u/{links.tokens['unsubscribe']}", {"List-Unsubscribe": "One-Click"})
    redeem = ("post", f"/l/{links.tokens['loyalty']}", {"reward": links.reward.pk, "nonce": "n1"})
    for method, path, form in (unsubscribe, redeem):
        with clock.frozen(later), Writes() as first:
            assert opened(method, path, form).status_code == 200
        assert not first.none
        with clock.frozen(later + dt.timedelta(minutes=1)), Writes() as replay:
            response = opened(method, path, form)
        assert response.status_code == 200  # the same friendly page: "unsubscribed", "redeemed"
        assert replay.none, (path, replay.count_changes, replay.tables)
    assert Event.objects.for_tenant(links.tenant).filter(type="customer.unsubscribed").count() == 1

    # A survey answer stays editable for a while by design, and every POST is kept as an attempt
    # (how bursts of clicks by a scanner are told from a person): the replay adds that record and
    # "confirms again" the same answer (its updated_at) - no second answer, no edit, no event, no points.
    answer = ("post", f"/f/{links.tokens['survey']}", {"request": links.request.pk, "mode": "confirm", "score": 9})
    with clock.frozen(later):
        assert opened(*answer).status_code == 200
    kept = SurveyResponse.objects.for_tenant(links.tenant).values("pk", "score", "comment", "state", "edits").get()
    with clock.frozen(later + dt.timedelta(minutes=1)), Writes() as replay:
        assert opened(*answer).status_code == 200
    assert replay.count_changes == {"feedback_answerattempt": 1}
    assert replay.tables == ["feedback_answerattempt", "feedback_surveyresponse"]
    assert SurveyResponse.objects.for_tenant(links.tenant).values("pk", "score", "comment", "state", "edits").get() == kept
