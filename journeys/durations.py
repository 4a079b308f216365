"""ISO 8601 durations for journey waits: P3D, PT2H, P1DT12H, PT90S (no months or years:
they have no fixed length, and a wait must mean the same thing every time)."""

import datetime as dt
import re

_PATTERN = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


def parse_duration(text: str) -> dt.timedelta:
    match = _PATTERN.match(text.strip().upper()) if isinstance(text, str) else None
    if not match or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P3D, PT2H or P1DT12H")
    parts = {key: int(value) for key, value in match.groupdict().items() if value}
    return dt.timedelta(**parts)


def format_duration(delta: dt.timedelta) -> str:
    total = int(delta.total_seconds())
    if total == 0:
        return "PT0S"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{seconds}S" if seconds else "")
    return out + ("T" + time if time else "")
