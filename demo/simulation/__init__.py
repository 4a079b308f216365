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
import multiprocessing
from collections.abc import Callable

from django.db import connection, connections, transaction

from demo.simulation.generate import BASE_REPEAT, Generator, Params, Tally
from demo.simulation.world import World, build_world
from demo.simulation.writers import IdBlocks, RowWriter
from lifecycle import clock
from lifecycle.models import Customer, Tenant

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
                   progress: Callable[[int], None] | None = None, jobs: int = 1) -> Simulation:
    """Write a simulated store's history into `tenant`, ending now.

    One transaction, all or nothing — unless `jobs` > 1 (PostgreSQL only): then that many
    processes each write batches of JOB_BATCH customers in a transaction of their own, for big
    loads (a million orders); referrals then link customers within a batch only.
    Refuses bad parameters and a second run with the same seed on the same store (its customers'
    external ids would collide) with SimulationError, before writing anything. `progress` is
    called with the number of customers done since the last call.
    """
    problems = params.problems()
    if jobs < 1:
        problems.append(f"jobs must be at least 1, not {jobs}")
    if jobs > 1 and connection.vendor != "postgresql":
        problems.append("several jobs need PostgreSQL (SQLite has one writer at a time)")
    if problems:
        raise SimulationError("; ".join(problems))
    if Customer.objects.for_tenant(tenant).filter(external_id=f"sim{params.seed}-0").exists():
        raise SimulationError(f"{tenant.slug} already has the customers of a simulation with seed {params.seed}: "
                              "pick another --seed to add more")
    now = clock.now().replace(microsecond=0)
    if jobs > 1:
        return _simulate_in_parallel(tenant, params, method, progress, jobs, now)
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


# Customers per transaction of a parallel run: big enough that COPY batches stay full.
JOB_BATCH = 5_000


def _simulate_batch(args: tuple) -> tuple[Tally, dict[str, int]]:
    tenant_id, params, method, now, start, stop = args
    tenant = Tenant.objects.get(pk=tenant_id)
    with transaction.atomic():
        world = build_world(tenant)
        writer = RowWriter(method)
        generator = Generator(world, params, now, writer)
        for index in range(start, stop):
            generator.customer(index)
        writer.flush()
    connection.close()
    return generator.tally, dict(writer.counts)


def _simulate_in_parallel(tenant: Tenant, params: Params, method: str | None,
                          progress: Callable[[int], None] | None, jobs: int, now: dt.datetime) -> Simulation:
    with transaction.atomic():
        world = build_world(tenant)  # once, before the workers look it up
    connections.close_all()  # the workers are forked: each opens its own connection
    batches = [(tenant.pk, params, method, now, start, min(start + JOB_BATCH, params.customers))
               for start in range(0, params.customers, JOB_BATCH)]
    tally, rows = Tally(), {}
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        for part, counts in pool.imap_unordered(_simulate_batch, batches):
            for field in dataclasses.fields(Tally):
                setattr(tally, field.name, getattr(tally, field.name) + getattr(part, field.name))
            for label, n in counts.items():
                rows[label] = rows.get(label, 0) + n
            if progress:
                progress(part.customers)
    return Simulation(params=params, tally=tally, rows=rows, world=world, now=now)
