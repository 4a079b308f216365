"""bench/ingest --find-max: the highest open-loop rate this machine sustains with the worker sending.

Each step is a whole `bench/ingest --open-only --with-worker --rate R --duration D` run in a child
process (fresh database, fresh gunicorn, worker and beat), so one step's backlog never slows the
next. A rate passes when every target of the sustained load test holds in that run:

- open-loop p99 < 50 ms and p99.9 < 250 ms (from the intended send time), no order shed;
- order-to-sent p99 < 30 s (the POST's transaction to the email leaving);
- 0 errors, 0 lost (every order has a delivery, every delivery final), 0 duplicates;
- every order's email sent (sent == orders);
- no invariant broken (the child's exit status 0, or 2 for a missed target).

The search: the low bound must pass (else max_sustained_per_s=0); the high bound is tried next (if it
passes, it is the answer: raise --search-high); then bisection between the highest pass and the
lowest failure until they are --search-resolution apart. Rates are rounded to whole orders/s.

Standard library only; the child is the same script, so it is measured exactly as a single run is.
"""

import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# The targets for a sustained rate (bench/ingest's LOAD_TARGETS says the same for one run).
SUSTAINED = {"open_p99_ms": 50.0, "open_p999_ms": 250.0, "order_to_sent_p99_s": 30.0}
# Options of bench/ingest the search sets itself for every step; the rest pass through unchanged.
OWN_OPTIONS = {"--find-max": 0, "--search-low": 1, "--search-high": 1, "--search-duration": 1,
               "--search-resolution": 1, "--rate": 1, "--duration": 1, "--open-only": 0, "--with-worker": 0,
               "--quick": 0, "--strict": 0, "--profile": 0}


def passthrough(argv: list[str]) -> list[str]:
    """The command line without the options each step sets (both `--opt value` and `--opt=value`)."""
    kept, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name = arg.split("=", 1)[0]
        if name in OWN_OPTIONS:
            skip = 0 if "=" in arg else OWN_OPTIONS[name]
            continue
        kept.append(arg)
    return kept


def last_figures(output: str) -> dict[str, str]:
    """The key=value pairs of a run's last line that has them."""
    for line in reversed(output.strip().splitlines()):
        pairs = [part.split("=", 1) for part in line.split() if "=" in part]
        if pairs and len(pairs) == len(line.split()):
            return dict(pairs)
    return {}


def _number(figures: dict[str, str], key: str) -> float:
    try:
        return float(figures[key])
    except (KeyError, ValueError):
        return math.nan


def judge(figures: dict[str, str], returncode: int) -> list[str]:
    """Why this run does not sustain its rate (empty: it does)."""
    if not figures:
        return [f"no figures (exit status {returncode})"]
    why = []
    for key, limit in SUSTAINED.items():
        value = _number(figures, key)
        if not value < limit:  # NaN (no value) fails too
            why.append(f"{key}={figures.get(key, 'missing')} (< {limit:g})")
    for key in ("open_errors", "errors", "open_shed", "pending_left", "duplicates", "unsent"):
        if _number(figures, key) != 0:
            why.append(f"{key}={figures.get(key, 'missing')} (0)")
    if figures.get("invariants") != "ok" or returncode not in (0, 2):
        why.append(f"invariants={figures.get('invariants')} exit={returncode}")
    return why


class Search:
    """Bisection over rates; `measure(rate)` returns (passed, summary, figures)."""

    def __init__(self, low: float, high: float, resolution: float, measure: Callable, log: Callable[[str], None]):
        self.low, self.high, self.resolution = low, high, max(resolution, 1.0)
        self.measure, self.log = measure, log
        self.steps: list[tuple[float, bool]] = []

    def _try(self, rate: float) -> bool:
        passed = self.measure(rate)
        self.steps.append((rate, passed))
        return passed

    def run(self) -> float:
        if not self._try(self.low):
            self.log(f"search: even {self.low:g}/s is not sustained; lower --search-low")
            return 0.0
        if self._try(self.high):
            self.log(f"search: {self.high:g}/s is sustained; the answer is at least that (raise --search-high)")
            return self.high
        good, bad = self.low, self.high
        while bad - good > self.resolution:
            middle = float(round((good + bad) / 2))
            if middle in (good, bad):
                break
            if self._try(middle):
                good = middle
            else:
                bad = middle
        return good


def find_max(script: Path, argv: list[str], low: float, high: float, duration: float, resolution: float,
             log: Callable[[str], None]) -> int:
    """Run the search; print the per-step verdicts and, last, `max_sustained_per_s=…`. Exit status:
    0 done; 1 a step sent an email twice (never acceptable, whatever the rate); 3 a step's set-up failed."""
    started = time.monotonic()
    load_start = Path("/proc/loadavg").read_text().split()[0]
    base = [sys.executable, str(script), *passthrough(argv), "--open-only", "--with-worker",
            "--duration", f"{duration:g}"]
    if not any(arg.split("=", 1)[0] == "--drain-timeout" for arg in argv):
        # A rate whose emails are not out 30 s after the order (p99) fails anyway: waiting 5 minutes
        # for a hopeless backlog to drain would only make the search longer.
        base += ["--drain-timeout", "120"]
    log(f"find-max: {low:g}..{high:g} orders/s, {duration:g} s per step, resolution {resolution:g}/s; "
        f"load average {load_start}; each step: {' '.join(base[2:])} --rate R")
    outcome = {"duplicates": 0, "setup_failed": 0}
    best: dict[str, str] = {}

    def measure(rate: float) -> bool:
        step = len(search.steps) + 1
        log(f"--- step {step}: {rate:g} orders/s for {duration:g} s")
        proc = subprocess.Popen([*base, "--rate", f"{rate:g}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, cwd=script.parent.parent)
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            log(f"    | {line.rstrip()}")
        returncode = proc.wait()
        figures = last_figures("".join(lines))
        if returncode == 3:
            outcome["setup_failed"] += 1
        if _number(figures, "duplicates") > 0:
            outcome["duplicates"] += 1
        why = judge(figures, returncode)
        log(f"--- step {step}: {rate:g}/s {'SUSTAINED' if not why else 'NOT sustained: ' + ', '.join(why)} "
            f"(p99 {figures.get('open_p99_ms')} ms, p99.9 {figures.get('open_p999_ms')} ms, order-to-sent p99 "
            f"{figures.get('order_to_sent_p99_s')} s, load {figures.get('load_avg_start')})")
        if not why:  # bisection only ever passes a rate above every earlier pass
            best.clear()
            best.update(figures)
        return not why

    search = Search(low, high, resolution, measure, log)
    best_rate = search.run()
    steps = ",".join(f"{rate:g}{'+' if ok else '-'}" for rate, ok in search.steps)
    summary = {
        "max_sustained_per_s": f"{best_rate:g}",
        "search_low": f"{low:g}", "search_high": f"{high:g}", "search_duration_s": f"{duration:g}",
        "steps": steps,
        **{f"at_max_{key}": best.get(key, "nan") for key in ("open_p99_ms", "open_p999_ms", "order_to_sent_p99_s",
                                                              "app_cores", "pg_cores", "other_cores")},
        "duplicates_seen": outcome["duplicates"],
        "load_avg_start": load_start, "load_avg_end": Path("/proc/loadavg").read_text().split()[0],
        "elapsed_s": f"{time.monotonic() - started:.0f}",
    }
    print(" ".join(f"{key}={value}" for key, value in summary.items()), flush=True)
    if outcome["duplicates"]:
        return 1
    return 3 if outcome["setup_failed"] and not any(ok for _, ok in search.steps) else 0
