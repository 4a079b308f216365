"""Referral statistics count approved referrals only; a rejected referral is shown as rejected, not converted."""

import datetime as dt

from lifecycle import clock
from lifecycle.models import Customer
from referrals.selectors import advocate_stats
from referrals.services import referral_decide

from .helpers import T0, friend, make_advocate, make_program, post_order, referral_for

DAY = dt.timedelta(days=1)


def _z(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def test_review_and_rejected_referrals_add_no_revenue_and_a_rejected_one_shows_no_conversion(api, tenant):
    from tests.journeys.helpers import process_events

    make_program(tenant)
    with clock.frozen(T0):
        code = make_advocate(api, tenant, email="ada.love@gmail.com")
    attributed = T0 + DAY
    with clock.frozen(attributed):
        post_order(api, external_id="F-1", customer=friend(), referral_code=code.code)  # converted
        post_order(api, external_id="F-2", referral_code=code.code,  # the advocate's alias: held for review
                   customer={"external_id": "alias", "email": "Ada.Love+deal@googlemail.com", "first_name": "A"})
        post_order(api, external_id="F-3", referral_code=code.code,  # the advocate's own code: rejected
                   customer={"external_id": "adv-1", "email": "ada.love@gmail.com"})
        process_events()
    assert [referral_for(tenant, o).state for o in ("F-1", "F-2", "F-3")] == ["converted", "review", "rejected"]
    total = referral_for(tenant, "F-1").order_total

    metrics = api.get("/api/v1/referrals/metrics").json()
    assert (metrics["conversions"], metrics["in_review"], metrics["rejected"]) == (1, 1, 1)
    assert metrics["revenue"] == f"{total:.2f}"
    assert metrics["referred_customers_revenue"] == f"{total:.2f}"  # Bea only, not the alias in review
    advocate = Customer.objects.for_tenant(tenant).get(external_id="adv-1")
    assert advocate_stats(tenant=tenant, customer=advocate)["revenue"] == total

    body = api.get("/api/v1/customers/adv-1/referral").json()
    assert body["stats"]["revenue"] == f"{total:.2f}"
    times = {r["order_external_id"]: (r["state"], r["attributed_at"], r["converted_at"], r["rejected_at"])
             for r in body["referrals"]}
    assert times == {
        "F-1": ("converted", _z(attributed), _z(attributed), None),
        "F-2": ("review", _z(attributed), None, None),
        "F-3": ("rejected", _z(attributed), None, _z(attributed)),
    }

    # Approved out of review: now it counts, converted when the person approved it.
    approved = T0 + 2 * DAY
    with clock.frozen(approved):
        assert referral_decide(referral_id=referral_for(tenant, "F-2").pk, tenant=tenant, approve=True, by="owner")
    metrics = api.get("/api/v1/referrals/metrics").json()
    assert (metrics["conversions"], metrics["in_review"], metrics["rejected"]) == (2, 0, 1)
    assert metrics["revenue"] == f"{2 * total:.2f}"
    body = api.get("/api/v1/customers/adv-1/referral").json()
    assert [(r["state"], r["converted_at"]) for r in body["referrals"] if r["order_external_id"] == "F-2"] == [
        ("converted", _z(approved))]
