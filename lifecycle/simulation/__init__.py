"""A simulated store with a known journey effect: the data that proves the dashboards right.

`store_simulate(tenant=…, params=Params(customers, days, true_lift, seed))` writes customers,
orders and their lines and events, the two simulated journeys' enrollments (with holdout
groups) and deliveries (sent, delivered, opened, clicked, bounced, skipped, pending), survey
answers, support and product-adoption events, loyalty accounts and ledgers, referral codes,
clicks, referrals and rewards. See generate.py for the effect's exact definition.

This package spans every app (like a management command), so it lives beside them rather
than in any one; nothing in the apps imports it. The pieces are reusable on their own:
`build_world` (the configuration rows), `Generator.customer(i)` (one customer's story) and
`RowWriter` / `IdBlocks` (COPY or INSERT with primary keys taken up front).
"""

import dataclasses
import datetime as dt
from collections.abc import Callable

from django.db import transaction

from lifecycle import clock
from lifecycle.models import Customer, Tenant

from .generate import BASE_REPEAT, Generator, Params, Tally
from .world import World, build_world
from .writers import IdBlocks, RowWriter

__all__ = ["BASE_REPEAT", "Generator", "IdBlocks", "Params", "RowWriter", "SimulationError", "Simulation",
           "Tally", "World", "build_world", "store_simulate"]


class SimulationError(Exception):
    pass


@dataclasses.dataclass
class Simulation:
    params: Params
    tally: Tally
    rows: dict[str, int]
    world: World
    now: dt.datetime


def store_simulate(*, tenant: Tenant, params: Params, method: str | None = None,
                   progress: Callable[[int], None] | None = None) -> Simulation:
    """Write a simulated store's history into `tenant`, ending now. One transaction: all or nothing.

    Refuses bad parameters and a second run with the same seed on the same store (its customers'
    external ids would collide) with SimulationError, before writing anything. `progress` is
    called with the number of customers done since the last call.
    """
    problems = params.problems()
    if problems:
        raise SimulationError("; ".join(problems))
    if Customer.objects.for_tenant(tenant).filter(external_id=f"sim{params.seed}-0").exists():
        raise SimulationError(f"{tenant.slug} already has the customers of a simulation with seed {params.seed}: "
                              "pick another --seed to add more")
    now = clock.now().replace(microsecond=0)
    with transaction.atomic():
        world = build_world(tenant)
        writer = RowWriter(method)
        generator = Generator(world, params, now, writer)
        step = max(1, min(1000, params.customers // 100))
        for index in range(params.customers):
            generator.customer(index)
            if progress and (index + 1) % step == 0:
                progress(step)
        writer.flush()
        if progress and params.customers % step:
            progress(params.customers % step)
    return Simulation(params=params, tally=generator.tally, rows=dict(writer.counts), world=world, now=now)
