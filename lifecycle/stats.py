"""Interval maths for the dashboards: honest at small sizes, no dependency beyond the standard library.

- `wilson_interval`: the score interval for one proportion (Wilson 1927). Unlike the textbook
  p ± z·√(p(1−p)/n) it never leaves [0, 1] and does not collapse to a point at 0 or n successes.
- `newcombe_difference`: the hybrid score interval for p1 − p2 from two Wilson intervals
  (Newcombe 1998, method 10) — good coverage at small n, where the Wald interval is far too narrow.
- `welch_difference`: a difference of means with unequal variances (Welch 1947) and the
  Welch–Satterthwaite degrees of freedom, from sums and sums of squares so a query can
  aggregate in the database and return one row per group.
- `lift_verdict`: whether there is enough data to show a lift at all, and if not, why in words.
"""

import dataclasses
import math
from statistics import NormalDist

CONFIDENCE = 0.95
# Below this many customers in the holdout group we say "not enough data" whatever the interval:
# a handful of holdout customers makes any estimate one person's choice.
MIN_HOLDOUT = 50
# An interval wider than ± this many percentage points (as a fraction) tells a marketer nothing
# they can act on, so it is not shown as a lift.
MAX_HALF_WIDTH = 0.10


def z_value(confidence: float = CONFIDENCE) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval for successes/n; (0, 1) when n is 0."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return 0.0, 1.0
    z = z_value(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At 0 or n successes the bound is exactly 0 or 1; floating point would say 1e-17.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


@dataclasses.dataclass(frozen=True)
class Difference:
    estimate: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def newcombe_difference(x1: int, n1: int, x2: int, n2: int, confidence: float = CONFIDENCE) -> Difference:
    """p1 − p2 = x1/n1 − x2/n2 with Newcombe's hybrid score interval (method 10)."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both groups need at least one member")
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, confidence)
    l2, u2 = wilson_interval(x2, n2, confidence)
    estimate = p1 - p2
    delta = math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    epsilon = math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Difference(estimate, estimate - delta, estimate + epsilon)


# --- Student's t, for Welch -------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1 - math.exp(log_front) * _betacf(b, a, 1 - x) / b


def t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t with df (> 0, not necessarily whole) degrees of freedom."""
    if not 0 < q < 1 or df <= 0:
        raise ValueError("need 0 < q < 1 and df > 0")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_quantile(1 - q, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < q:
        high *= 2
    for _ in range(200):  # bisection: the cdf is monotone, and 200 halvings reach float precision
        mid = (low + high) / 2
        if t_cdf(mid, df) < q:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


@dataclasses.dataclass(frozen=True)
class GroupSums:
    """n values, their sum and their sum of squares: what one SQL aggregate row gives."""

    n: int
    total: float
    total_squares: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        if self.n < 2:
            return 0.0
        return max(0.0, (self.total_squares - self.total * self.total / self.n) / (self.n - 1))


def welch_difference(a: GroupSums, b: GroupSums, confidence: float = CONFIDENCE) -> Difference:
    """mean(a) − mean(b) with Welch's interval. Needs two values in each group."""
    if a.n < 2 or b.n < 2:
        raise ValueError("Welch's interval needs at least two values in each group")
    va, vb = a.variance / a.n, b.variance / b.n
    estimate = a.mean - b.mean
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(estimate, estimate, estimate)
    df = (va + vb) ** 2 / (va * va / (a.n - 1) + vb * vb / (b.n - 1))
    t = t_quantile(0.5 + confidence / 2, df)
    return Difference(estimate, estimate - t * se, estimate + t * se)


# --- the verdict ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Verdict:
    enough: bool
    reason: str


def lift_verdict(difference: Difference | None, holdout_n: int, *, min_holdout: int = MIN_HOLDOUT,
                 max_half_width: float = MAX_HALF_WIDTH) -> Verdict:
    """Whether a conversion-rate difference is worth showing as a number.

    Not enough data when the holdout has fewer than `min_holdout` customers, or when the
    interval is wider than ± `max_half_width`; the reason says how far off that is, and
    roughly how many holdout customers it takes (the width shrinks as 1/√n).
    """
    if difference is None or holdout_n < min_holdout:
        return Verdict(False, f"Not enough data yet: {holdout_n} customer{'s' if holdout_n != 1 else ''} in the "
                              f"holdout group, and a lift needs at least {min_holdout}.")
    if difference.half_width > max_half_width:
        needed = math.ceil(holdout_n * (difference.half_width / max_half_width) ** 2)
        return Verdict(False, f"Not enough data yet: the interval is ±{100 * difference.half_width:.1f} points wide "
                              f"(a lift is shown from ±{100 * max_half_width:.0f}); that takes about {needed} "
                              f"holdout customers, there are {holdout_n}.")
    return Verdict(True, "")
