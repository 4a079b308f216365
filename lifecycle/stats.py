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


# --- CUPED: variance reduction on what is known before enrollment ---------------------------


@dataclasses.dataclass(frozen=True)
class Moments:
    """One group's outcome y and pre-period covariates x (orders and spend before enrollment), as the
    sums one SQL aggregate row gives: n, Σy, Σy², Σx_i, Σx_i·x_j, Σx_i·y."""

    n: int
    y: float
    yy: float
    x: tuple[float, ...]
    xx: tuple[tuple[float, ...], ...]
    xy: tuple[float, ...]

    def centred(self) -> tuple[float, list[list[float]], list[float]]:
        """Σ(y−ȳ)², Σ(x−x̄)(x−x̄)ᵀ and Σ(x−x̄)(y−ȳ): the group's own spread, about its own means."""
        n, k = self.n, len(self.x)
        syy = self.yy - self.y * self.y / n
        sxx = [[self.xx[i][j] - self.x[i] * self.x[j] / n for j in range(k)] for i in range(k)]
        sxy = [self.xy[i] - self.x[i] * self.y / n for i in range(k)]
        return syy, sxx, sxy


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when the system is singular."""
    k = len(vector)
    rows = [[*matrix[i], vector[i]] for i in range(k)]
    for col in range(k):
        pivot = max(range(col, k), key=lambda r: abs(rows[r][col]))
        scale = max(1.0, max(abs(rows[r][col]) for r in range(k)))
        if abs(rows[pivot][col]) <= 1e-12 * scale:
            return None
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(k):
            if r != col:
                factor = rows[r][col] / rows[col][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [rows[i][k] / rows[i][i] for i in range(k)]


def cuped_theta(groups: list[Moments]) -> list[float]:
    """θ = Σxx⁻¹·Σxy over every group's own spread (pooled within groups, so a real effect on y does
    not leak into θ). A covariate with no spread (everyone had one order before) gets θ 0."""
    k = len(groups[0].x)
    sxx = [[0.0] * k for _ in range(k)]
    sxy = [0.0] * k
    for group in groups:
        if group.n < 2:
            continue
        _, gxx, gxy = group.centred()
        for i in range(k):
            sxy[i] += gxy[i]
            for j in range(k):
                sxx[i][j] += gxx[i][j]
    keep = [i for i in range(k) if sxx[i][i] > 1e-9 * max(1.0, abs(sxx[i][i]))]
    theta = [0.0] * k
    while keep:
        solved = _solve([[sxx[i][j] for j in keep] for i in keep], [sxy[i] for i in keep])
        if solved is not None:
            for i, value in zip(keep, solved, strict=True):
                theta[i] = value
            return theta
        keep = keep[:-1]  # collinear covariates: drop the last one and try again
    return theta


@dataclasses.dataclass(frozen=True)
class Adjusted:
    """A group's CUPED-adjusted mean and the variance of its adjusted values."""

    n: int
    mean: float
    variance: float


def cuped_adjust(groups: list[Moments]) -> list[Adjusted]:
    """Each group's mean of y − θ·(x − x̄), x̄ over all groups (Deng et al. 2013, "CUPED").

    Assignment is random, so x is independent of the group and the adjusted difference estimates the
    same effect as the plain one; its variance shrinks by the share of y's variance that x explains."""
    total = sum(g.n for g in groups)
    k = len(groups[0].x)
    grand = [sum(g.x[i] for g in groups) / total for i in range(k)] if total else [0.0] * k
    theta = cuped_theta(groups)
    out = []
    for group in groups:
        if group.n == 0:
            out.append(Adjusted(0, 0.0, 0.0))
            continue
        mean = group.y / group.n - sum(theta[i] * (group.x[i] / group.n - grand[i]) for i in range(k))
        variance = 0.0
        if group.n >= 2:
            syy, sxx, sxy = group.centred()
            spread = (syy - 2 * sum(theta[i] * sxy[i] for i in range(k))
                      + sum(theta[i] * theta[j] * sxx[i][j] for i in range(k) for j in range(k)))
            variance = max(0.0, spread / (group.n - 1))
        out.append(Adjusted(group.n, mean, variance))
    return out


def cuped_difference(a: Moments, b: Moments, confidence: float = CONFIDENCE) -> Difference:
    """mean(a) − mean(b) after CUPED, with Welch's interval on the adjusted values (two or more in each group)."""
    if a.n < 2 or b.n < 2:
        raise ValueError("CUPED's interval needs at least two values in each group")
    adj_a, adj_b = cuped_adjust([a, b])
    va, vb = adj_a.variance / a.n, adj_b.variance / b.n
    estimate = adj_a.mean - adj_b.mean
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(estimate, estimate, estimate)
    df = (va + vb) ** 2 / ((va * va / (a.n - 1) if va else 0) + (vb * vb / (b.n - 1) if vb else 0))
    t = t_quantile(0.5 + confidence / 2, df)
    return Difference(estimate, estimate - t * se, estimate + t * se)


# --- A/B tests: when to stop -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arm:
    key: str
    converted: int
    n: int

    @property
    def rate(self) -> float:
        return self.converted / self.n if self.n else 0.0


@dataclasses.dataclass(frozen=True)
class Decision:
    """The stopping rule's answer: `winner` (an arm's key) once it is met, else how many more customers
    the test needs (`more`, across its arms, or None when no number can be given yet) and why."""

    reached: bool
    winner: str | None
    more: int | None
    reason: str


def _more(n: int) -> str:
    return f"{n} more customer{'s' if n != 1 else ''}"


def ab_decide(arms: list[Arm], *, rule: str, sample_size: int = 0, confidence: float = CONFIDENCE,
              min_sample: int = 0) -> Decision:
    """Whether an A/B test's stopping rule is met, and which arm won.

    rule "sample": stop once every arm has `sample_size` customers; the arm with the best rate wins if
    its difference from every other arm (Newcombe's interval at `confidence`) is above 0, else the test
    ends without a winner. rule "significance": stop as soon as every arm has `min_sample` and the best
    arm's difference from every other is above 0 at `confidence`; before that, the number of customers
    still needed is what brings the low side of the closest comparison's interval above 0 at today's
    estimate (the width shrinks as 1/√n, as in `lift_verdict`)."""
    if len(arms) < 2:
        raise ValueError("an A/B test needs at least two arms")
    floor = sample_size if rule == "sample" else min_sample
    short = sum(max(0, floor - arm.n) for arm in arms)
    if short:
        return Decision(False, None, short, f"Not yet: {_more(short)} needed "
                                            f"({floor} in each arm, the smallest has {min(a.n for a in arms)}).")
    best = max(arms, key=lambda arm: (arm.rate, -arms.index(arm)))
    others = [arm for arm in arms if arm is not best]
    differences = [newcombe_difference(best.converted, best.n, arm.converted, arm.n, confidence) for arm in others]
    if all(d.low > 0 for d in differences):
        return Decision(True, best.key, 0, f"{best.key} wins: its rate is above every other arm's at "
                                           f"{100 * confidence:.0f}% confidence.")
    if rule == "sample":
        return Decision(True, None, 0, f"The sample is complete and no arm is ahead at {100 * confidence:.0f}% "
                                       "confidence: keep the one you prefer.")
    closest = min(differences, key=lambda d: d.low)
    if closest.estimate <= 0:
        return Decision(False, None, None, "Not yet: the arms convert at the same rate so far, so no number of "
                                           "customers can be named yet.")
    factor = ((closest.estimate - closest.low) / closest.estimate) ** 2  # the low side decides
    more = sum(max(0, math.ceil(arm.n * factor) - arm.n) for arm in arms) or len(arms)
    return Decision(False, None, more, f"Not yet: about {_more(more)} needed to tell the arms apart at "
                                       f"{100 * confidence:.0f}% confidence.")
