"""The customer's loyalty page: a GET shows and never spends; a POST from its button redeems once."""

import re

import pytest
from django.test import Client

from lifecycle import clock
from lifecycle.links import make_token
from loyalty.models import LedgerEntry, Redemption

from .helpers import NOW, customer, paid_order, program, reward, sums, tier

pytestmark = pytest.mark.django_db


def _page_url(tenant, c) -> str:
    return f"/l/{make_token('loyalty', tenant_id=tenant.pk, customer_id=c.pk)}"


def test_page_shows_balance_tier_rewards_history_and_ways_to_earn_and_a_get_changes_nothing(api, tenant):
    prog = program(tenant, pending_days=0, review_bonus=20)
    tier(tenant, prog, "Silver", "50")
    tier(tenant, prog, "Gold", "500")
    reward(tenant, prog, cost=80, name="5 EUR off")
    reward(tenant, prog, cost=150, name="Free bag of beans", kind="free_product")
    with clock.frozen(NOW):
        paid_order(api)
    url = _page_url(tenant, customer(tenant))
    html = Client().get(url).content.decode()
    assert re.search(r'id="balance">100<', html)
    assert "Silver" in html and "next: Gold" in html and "Earn 400 more points" in html
    assert "5 EUR off" in html and "Free bag of beans" in html and "50 to go" in html
    assert "20 points for writing a review" in html
    assert "Order #1001" in html
    assert 'name="viewport"' in html and "Acme Coffee" in html
    for _ in range(3):
        Client().get(url)  # a mail scanner
    assert Redemption.objects.for_tenant(tenant).count() == 0
    assert sums(tenant) == (100, 0, 0)


def test_redeem_button_posts_once_per_nonce_and_shows_the_code(api, tenant):
    prog = program(tenant, pending_days=0)
    gift = reward(tenant, prog, cost=40)
    with clock.frozen(NOW):
        paid_order(api)
    url = _page_url(tenant, customer(tenant))
    html = Client().get(url).content.decode()
    nonce = re.search(rf'name="nonce" value="([^"]+-{gift.pk})"', html).group(1)
    first = Client().post(url, {"reward": gift.pk, "nonce": nonce})
    again = Client().post(url, {"reward": gift.pk, "nonce": nonce})  # a double click
    assert first.status_code == 200 and again.status_code == 200
    code = Redemption.objects.for_tenant(tenant).get().code
    assert code in first.content.decode() and code in again.content.decode()
    assert sums(tenant) == (60, 0, 0)
    Client().post(url, {"reward": gift.pk, "nonce": "other"})
    short = Client().post(url, {"reward": gift.pk, "nonce": "third"})
    assert short.status_code == 409 and "the balance is 20" in short.content.decode()
    assert LedgerEntry.objects.for_tenant(tenant).filter(kind="redeem").count() == 2


def test_tampered_other_purpose_and_other_tenant_tokens_are_404(api, tenant, other_tenant):
    program(tenant)
    with clock.frozen(NOW):
        paid_order(api)
    c = customer(tenant)
    token = make_token("loyalty", tenant_id=tenant.pk, customer_id=c.pk)
    assert Client().get(f"/l/{token}x").status_code == 404
    assert Client().get(f"/l/{make_token('survey', tenant_id=tenant.pk, customer_id=c.pk)}").status_code == 404
    assert Client().get(f"/l/{make_token('loyalty', tenant_id=other_tenant.pk, customer_id=c.pk)}").status_code == 404
