"""The store's home and its dashboards: what the journeys did, a picture first and a table second.

Four pages share one period picker (?range=30d|90d|180d|365d, or ?from=YYYY-MM-DD&to=YYYY-MM-DD, whole
days in the store's time zone): the overview (customers, repeat purchases, lifetime value, the
journeys' lift), journeys (funnels per step, lift against the holdout), feedback and support,
and loyalty and referrals. Figures come from metrics.py and metrics_journeys.py; charts are drawn
by static/workspace/charts.js from the same numbers the tables show.
"""

import datetime as dt
import zoneinfo
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from journeys.abtests import lift_cuped, running_tests
from journeys.models import Segment
from journeys.segments import segment_member_ids
from lifecycle import clock
from lifecycle.models import Tenant
from lifecycle.numbers import calendar_date
from workspace import metrics, metrics_journeys
from workspace.abtests import arm_chart
from workspace.access import workspace_view

PRESETS = {"30d": 30, "90d": 90, "180d": 180, "365d": 365}
DEFAULT_RANGE = "90d"
# A custom period longer than this would read years of history on every page view.
MAX_DAYS = 3 * 366
# The days a custom period may name: any store's history fits, and the sums over a period (its end
# plus a journey's attribution window) stay far from the calendar's end, where Python's datetimes stop.
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2999, 12, 31)
# CUPED reads each enrollment and its customer's orders: done for journeys up to this many measured
# enrollments (the small stores whose intervals need narrowing), shown as "not computed" beyond.
CUPED_MAX_ENROLLMENTS = 10_000
TABS = [("home", "Overview"), ("dashboard_funnels", "Journeys and lift"), ("dashboard_feedback", "Feedback and support"),
        ("dashboard_programs", "Loyalty and referrals")]


def _parse_day(value: str, label: str, errors: list[str]) -> dt.date | None:
    day = calendar_date(value)
    if day is None:
        errors.append(f"'{value}' is not a date for “{label}”: use YYYY-MM-DD, such as 2026-01-31.")
    elif not FIRST_DAY <= day <= LAST_DAY:
        errors.append(f"{day} is outside the dates a period can cover: choose days from {FIRST_DAY} to {LAST_DAY}.")
        day = None
    return day


def period_from(request: HttpRequest, tenant: Tenant, now: dt.datetime) -> tuple[metrics.Period | None, dict, list]:
    """The period the query string asks for, the picker's state, and what is wrong with it."""
    zone = zoneinfo.ZoneInfo(tenant.time_zone or "UTC")
    today = now.astimezone(zone).date()
    chosen = request.GET.get("range", "")
    start_text, end_text = request.GET.get("from", "").strip(), request.GET.get("to", "").strip()
    errors: list[str] = []
    if start_text or end_text or chosen == "custom":
        chosen = "custom"
        start = _parse_day(start_text, "from", errors) if start_text else None
        end = _parse_day(end_text, "to", errors) if end_text else today
        if not start_text:
            errors.append("Choose the first day of the period (“from”).")
        if start and end:
            if start > end:
                errors.append(f"The period starts ({start}) after it ends ({end}): swap the two dates.")
            elif (end - start).days + 1 > MAX_DAYS:
                errors.append(f"Pick at most {MAX_DAYS} days; {start} to {end} is {(end - start).days + 1}.")
    else:
        if chosen and chosen not in PRESETS:
            errors.append(f"'{chosen}' is not a period: choose one of {', '.join(PRESETS)}, or two dates.")
        chosen = chosen if chosen in PRESETS else DEFAULT_RANGE
        end = today
        start = today - dt.timedelta(days=PRESETS[chosen] - 1)
    state = {"range": chosen, "from": start_text if chosen == "custom" else "", "to": end_text if chosen == "custom" else "",
             "presets": list(PRESETS)}
    if errors:
        return None, state, errors
    since = dt.datetime.combine(start, dt.time.min, zone).astimezone(dt.UTC)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, zone).astimezone(dt.UTC)
    state.update(start=start, end=end, zone=zone.key, days=(end - start).days + 1)
    return metrics.Period(since, until, zone), state, errors


def _page(request: HttpRequest, tenant: Tenant, template: str, build) -> HttpResponse:
    now = clock.now()
    period, state, errors = period_from(request, tenant, now)
    context: dict[str, Any] = {"period": state, "errors": errors, "tabs": TABS, "query": request.GET.urlencode()}
    if errors:
        return render(request, template, context, status=400)
    with metrics.dashboard_reads():
        context.update(build(period, now))
    return render(request, template, context)


# --- charts: plain data that charts.js turns into Chart.js configs ------------------------


def _label(day: dt.date, period: metrics.Period) -> str:
    return day.strftime("%d %b" if period.weekly else "%b %Y")


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def _lift_chart(lifts: list) -> dict:
    shown = [lift for lift in lifts if lift.conversion is not None]
    return {"type": "interval", "unit": "points", "labels": [lift.journey.name for lift in shown],
            "estimates": [round(100 * lift.conversion.estimate, 2) for lift in shown],
            "intervals": [[round(100 * lift.conversion.low, 2), round(100 * lift.conversion.high, 2)] for lift in shown],
            "enough": [lift.verdict.enough for lift in shown]}


# --- pages ---------------------------------------------------------------------------------


@workspace_view()
def home(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    segments = list(Segment.objects.for_tenant(tenant).order_by("name"))
    chosen = next((s for s in segments if str(s.pk) == request.GET.get("segment", "")), None)
    if request.GET.get("segment") and chosen is None:
        return render(request, "workspace/home.html", {
            "period": period_from(request, tenant, clock.now())[1], "tabs": TABS, "segments": segments,
            "errors": ["That segment is not one of this store's: choose one from the list."]}, status=400)

    def build(period: metrics.Period, now: dt.datetime) -> dict:
        among = segment_member_ids(segment=chosen, now=now) if chosen is not None else None
        customers = metrics.customer_metrics(tenant, period, among)
        cohorts = metrics.ltv_cohorts(tenant, period, now)
        lifts = metrics_journeys.lifts(tenant, period, now)
        gaps = customers["time_to_second"]
        charts = {
            "chart-second-order": {"type": "bar", "unit": "customers", "labels": [b["label"] for b in gaps["buckets"]],
                                   "series": [{"label": "Customers", "data": [b["customers"] for b in gaps["buckets"]]}]},
            "chart-ltv": {"type": "line", "unit": "money", "currency": tenant.currency,
                          "labels": [f"Month {m}" for m in cohorts["months"]],
                          "series": [{"label": row["cohort"].strftime("%b %Y"),
                                      "data": [float(c) if c is not None else None for c in row["cells"]]}
                                     for row in cohorts["rows"][-12:]]},
            "chart-lift": _lift_chart(lifts),
        }
        return {"customers": customers, "cohorts": cohorts, "lifts": lifts, "charts": charts,
                "lift_chart": any(lift.conversion for lift in lifts), "segments": segments, "segment": chosen,
                "segment_size": len(among) if among is not None else None}

    return _page(request, tenant, "workspace/home.html", build)


@workspace_view()
def funnels(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    def build(period: metrics.Period, now: dt.datetime) -> dict:
        lifts = metrics_journeys.lifts(tenant, period, now)
        journeys = metrics_journeys.journey_funnels(tenant, period)
        charts = {"chart-lift": _lift_chart(lifts)}
        for item in journeys:
            steps = item["steps"]
            charts[f"chart-funnel-{item['journey'].pk}"] = {
                "type": "bar", "unit": "emails",
                "labels": [f"{s['step'].position}. {s['step'].name or s['step'].kind}" for s in steps],
                "series": [{"label": label, "data": [s[key] for s in steps]} for key, label in
                           (("sent", "Sent"), ("delivered", "Delivered"), ("opened", "Opened"), ("clicked", "Clicked"),
                            ("converted", "Converted"))]}
        tests = running_tests(tenant, now)
        charts.update({f"chart-arms-{report.split.pk}": arm_chart(report) for report in tests})
        adjusted = [(lift, lift_cuped(tenant, lift.journey, period.since, period.until, now)
                     if lift.treated.customers + lift.holdout.customers <= CUPED_MAX_ENROLLMENTS else None)
                    for lift in lifts if lift.conversion is not None]
        return {"lifts": lifts, "journeys": journeys, "charts": charts, "tests": tests, "adjusted": adjusted,
                "lift_chart": any(lift.conversion for lift in lifts)}

    return _page(request, tenant, "workspace/dashboard/journeys.html", build)


@workspace_view()
def feedback(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    def build(period: metrics.Period, now: dt.datetime) -> dict:
        scores = metrics.feedback_over_time(tenant, period)
        support = metrics.repeat_by_event(tenant, period, (metrics.SUPPORT_EVENT,))
        adoption = metrics.repeat_by_event(tenant, period, metrics.ADOPTION_EVENTS)
        adoption_series = metrics.events_over_time(tenant, period, metrics.ADOPTION_EVENTS)
        labels = [_label(row["bucket"], period) for row in scores["series"]]
        charts = {
            "chart-nps": {"type": "line", "unit": "score", "labels": labels, "series": [
                {"label": "NPS", "data": [row["nps"] for row in scores["series"]]},
                {"label": "CSAT, % satisfied", "data": [row["csat"] for row in scores["series"]]}]},
            "chart-ces": {"type": "line", "unit": "score", "labels": labels, "min": 1, "max": 7, "series": [
                {"label": "CES (1 = no effort)", "data": [row["ces"] for row in scores["series"]]}]},
            "chart-support": {"type": "bar", "unit": "percent", "labels": ["Contacted support", "Did not"], "series": [
                {"label": "Ordered again", "data": [_pct(support["with"]["rate"]), _pct(support["without"]["rate"])]}]},
            "chart-adoption": {"type": "bar", "unit": "customers",
                               "labels": [_label(row["bucket"], period) for row in adoption_series],
                               "series": [{"label": t, "data": [row[t] for row in adoption_series]}
                                          for t in metrics.ADOPTION_EVENTS]},
        }
        adoption_rows = [(row["bucket"], [row[t] for t in metrics.ADOPTION_EVENTS]) for row in adoption_series]
        return {"scores": scores, "support": support, "adoption": adoption, "adoption_rows": adoption_rows,
                "adoption_events": metrics.ADOPTION_EVENTS, "charts": charts}

    return _page(request, tenant, "workspace/dashboard/feedback.html", build)


@workspace_view()
def programs(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    def build(period: metrics.Period, now: dt.datetime) -> dict:
        loyalty = metrics.loyalty_metrics(tenant, period)
        referrals = metrics.referral_summary(tenant, period)
        charts = {
            "chart-points": {"type": "bar", "unit": "number",
                             "labels": [_label(row["bucket"], period) for row in loyalty["series"]], "series": [
                                 {"label": "Earned", "data": [row["earned"] for row in loyalty["series"]]},
                                 {"label": "Redeemed", "data": [row["redeemed"] for row in loyalty["series"]]}]},
            "chart-referrals": {"type": "bar", "unit": "people",
                                "labels": [_label(row["bucket"], period) for row in referrals["series"]], "series": [
                                    {"label": "Clicks", "data": [row["clicks"] for row in referrals["series"]]},
                                    {"label": "Conversions", "data": [row["conversions"] for row in referrals["series"]]}]},
        }
        return {"loyalty": loyalty, "referrals": referrals, "charts": charts}

    return _page(request, tenant, "workspace/dashboard/programs.html", build)


urlpatterns = [
    path("", home, name="home"),
    path("dashboard/journeys/", funnels, name="dashboard_funnels"),
    path("dashboard/feedback/", feedback, name="dashboard_feedback"),
    path("dashboard/programs/", programs, name="dashboard_programs"),
]
