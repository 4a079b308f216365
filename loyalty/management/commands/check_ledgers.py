"""Prove every account's sums equal its ledger's: `manage.py check_ledgers [--tenant slug]`.

Set-based: one GROUP BY over the ledger, joined to the accounts, per batch of account ids
(a pk range, so each statement reads one slice of the ledger's (tenant, account) index and
the progress bar moves). Prints `customers=N mismatches=M`; exits 1 on any mismatch.
"""

import sys

from django.core.management.base import BaseCommand
from django.db import connection
from tqdm import tqdm

# Accounts per statement: big enough that the GROUP BY amortizes, small enough to show progress.
BATCH = 50_000

MISMATCHES_SQL = """
SELECT a.id, a.tenant_id, a.customer_id, a.balance, a.pending, a.debt, a.lifetime_earned,
       COALESCE(l.points, 0), COALESCE(l.pending_points, 0), COALESCE(l.debt_points, 0), COALESCE(l.earned, 0)
FROM loyalty_loyaltyaccount a
LEFT JOIN (
    SELECT account_id, SUM(points) AS points, SUM(pending_points) AS pending_points, SUM(debt_points) AS debt_points,
           SUM(CASE WHEN kind IN ('earn', 'clawback') THEN amount ELSE 0 END) AS earned
    FROM loyalty_ledgerentry
    WHERE account_id >= %(lo)s AND account_id < %(hi)s {entry_filter}
    GROUP BY account_id
) l ON l.account_id = a.id
WHERE a.id >= %(lo)s AND a.id < %(hi)s {account_filter}
  AND (a.balance <> COALESCE(l.points, 0) OR a.pending <> COALESCE(l.pending_points, 0)
       OR a.debt <> COALESCE(l.debt_points, 0) OR a.lifetime_earned <> COALESCE(l.earned, 0)
       OR a.balance < 0 OR a.pending < 0 OR a.debt < 0)
ORDER BY a.id
"""
# Entries whose account is missing would be invisible to the join above; there are none by the
# foreign key, and orphans from another account are caught because sums are per account.


class Command(BaseCommand):
    help = "Check that every loyalty account's balance, pending, debt and lifetime sums equal its ledger's."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant's slug.")
        parser.add_argument("--batch", type=int, default=BATCH)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, tenant=None, batch=BATCH, no_progress=False, **options):
        params: dict = {}
        account_filter = entry_filter = ""
        if tenant:
            with connection.cursor() as cursor:
                cursor.execute("SELECT id FROM lifecycle_tenant WHERE slug = %s", [tenant])
                row = cursor.fetchone()
            if row is None:
                self.stderr.write(f"no tenant {tenant!r}")
                sys.exit(2)
            params["tenant"] = row[0]
            account_filter, entry_filter = "AND a.tenant_id = %(tenant)s", "AND tenant_id = %(tenant)s"
        with connection.cursor() as cursor:
            count_sql = f"SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), -1), COUNT(*) FROM loyalty_loyaltyaccount a WHERE TRUE {account_filter}"  # noqa: S608, E501 - fixed fragments, values bound
            cursor.execute(count_sql, params)
            lo, hi, customers = cursor.fetchone()
        sql = MISMATCHES_SQL.format(account_filter=account_filter, entry_filter=entry_filter)
        bad = []
        starts = range(lo, hi + 1, batch)
        with connection.cursor() as cursor:
            for start in tqdm(starts, desc="accounts", unit="batch", disable=no_progress or not starts,
                              file=sys.stderr):
                cursor.execute(sql, {**params, "lo": start, "hi": start + batch})
                bad.extend(cursor.fetchall())
        for row in bad[:50]:
            self.stderr.write(
                f"account {row[0]} (tenant {row[1]}, customer {row[2]}): balance {row[3]} vs ledger {row[7]}, "
                f"pending {row[4]} vs {row[8]}, debt {row[5]} vs {row[9]}, lifetime {row[6]} vs {row[10]}")
        self.stdout.write(f"customers={customers} mismatches={len(bad)}")
        if bad:
            sys.exit(1)
