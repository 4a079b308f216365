"""Several beat workers releasing at once on PostgreSQL: every referral is rewarded exactly once."""

import datetime as dt
import threading

import pytest
from django.db import connection

from lifecycle import clock
from lifecycle.models import Event
from referrals.models import Referral, Reward
from referrals.services import referrals_release_due
from tests.journeys.helpers import process_events

from .helpers import T0, friend, make_advocate, make_program, post_order

FRIENDS = 12
WORKERS = 4


@pytest.mark.django_db(transaction=True)
def test_concurrent_releases_reward_each_referral_once(api, tenant):
    make_program(tenant, advocate_monthly_cap=0, max_conversions_per_advocate_per_day=100)
    with clock.frozen(T0):
        code = make_advocate(api, tenant)
        for n in range(FRIENDS):
            post_order(api, external_id=f"F-{n}", customer=friend(f"fr-{n}", f"f{n}@example.org"),
                       referral_code=code.code)
        process_events()
    assert Referral.objects.for_tenant(tenant).filter(state="converted").count() == FRIENDS
    barrier = threading.Barrier(WORKERS)
    taken: list[int] = []
    errors: list[BaseException] = []

    def worker():
        try:
            barrier.wait()
            while n := referrals_release_due(limit=2):
                taken.append(n)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    with clock.frozen(T0 + dt.timedelta(days=30)):
        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert sum(taken) == FRIENDS
    assert Referral.objects.for_tenant(tenant).filter(state="rewarded").count() == FRIENDS
    assert Reward.objects.for_tenant(tenant).filter(side="advocate").count() == FRIENDS
    assert Reward.objects.for_tenant(tenant).filter(side="friend").count() == FRIENDS
    assert Event.objects.for_tenant(tenant).filter(type="referral.rewarded").count() == 2 * FRIENDS
