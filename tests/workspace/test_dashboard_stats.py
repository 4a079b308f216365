"""The interval maths behind the lift figures, against published values."""

import pytest

from lifecycle.stats import (
    Difference,
    GroupSums,
    lift_verdict,
    newcombe_difference,
    t_quantile,
    welch_difference,
    wilson_interval,
)


@pytest.mark.parametrize(("successes", "n", "low", "high"), [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I.
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_interval_matches_newcombes_table(successes, n, low, high):
    got = wilson_interval(successes, n)
    assert got == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


def test_wilson_interval_stays_inside_zero_and_one_and_is_total_ignorance_without_data():
    assert wilson_interval(0, 5)[0] == 0.0
    assert wilson_interval(5, 5)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(6, 5)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "low", "high"), [
    # Newcombe (1998), "Interval estimation for the difference between independent proportions",
    # Table II, method 10 (score interval without continuity correction), examples (a), (b), (d)-(h).
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000),
    (10, 10, 0, 10, 0.6075, 1.0000),
])
def test_newcombe_difference_matches_the_published_examples(x1, n1, x2, n2, low, high):
    got = newcombe_difference(x1, n1, x2, n2)
    assert got.estimate == pytest.approx(x1 / n1 - x2 / n2)
    assert (got.low, got.high) == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


@pytest.mark.parametrize(("q", "df", "expected"), [
    (0.975, 1, 12.706205), (0.975, 10, 2.228139), (0.95, 30, 1.697261), (0.025, 5, -2.570582),
    (0.975, 2.5, 3.574655), (0.5, 7, 0.0),
])
def test_t_quantile_matches_the_tables(q, df, expected):
    assert t_quantile(q, df) == pytest.approx(expected, abs=2e-6)


def sums(values):
    return GroupSums(len(values), sum(values), sum(v * v for v in values))


def test_welch_difference_matches_r_on_the_sleep_data():
    # R: t.test(extra ~ group, data = sleep) -> 95 percent CI -3.3654832 0.2054832 (Welch, df 17.776)
    group1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    group2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    got = welch_difference(sums(group1), sums(group2))
    assert got.estimate == pytest.approx(-1.58)
    assert (got.low, got.high) == (pytest.approx(-3.3654832, abs=1e-6), pytest.approx(0.2054832, abs=1e-6))


def test_welch_needs_two_values_per_group():
    with pytest.raises(ValueError):
        welch_difference(sums([1.0]), sums([1.0, 2.0]))


def test_not_enough_data_below_the_minimum_holdout_whatever_the_interval():
    verdict = lift_verdict(Difference(0.05, 0.04, 0.06), holdout_n=49)
    assert verdict.enough is False
    assert verdict.reason == ("Not enough data yet: 49 customers in the holdout group, and a lift needs at "
                              "least 50.")


def test_not_enough_data_when_the_interval_is_wider_than_ten_points():
    verdict = lift_verdict(Difference(0.05, -0.07, 0.17), holdout_n=80)
    assert verdict.enough is False
    assert verdict.reason == ("Not enough data yet: the interval is ±12.0 points wide (a lift is shown from "
                              "±10); that takes about 116 holdout customers, there are 80.")


def test_enough_data_at_ten_points_and_fifty_holdout_customers():
    verdict = lift_verdict(Difference(0.05, -0.05, 0.15), holdout_n=50)
    assert verdict.enough is True
    assert verdict.reason == ""
