"""A null ESP for the benchmarks: an anymail backend that does all the client-side work, then records.

EMAIL_BACKEND=bench.null_esp.EmailBackend. Per message it does what a real anymail backend does
before the network (a payload from the message: addresses, headers, alternatives, tags, metadata),
builds and serializes the full MIME message (`message.message().as_bytes()`, what Django's SMTP
backend sends), then "posts" it: the Message-ID goes into a ledger.

Idempotency, like Resend's or SparkPost's Idempotency-Key (keyed here by Message-ID): the first call
for a Message-ID is *accepted* (delivered); a repeat is *deduplicated* (not delivered again, the same
answer as the first) when BENCH_ESP_IDEMPOTENCY=1, and *delivered again* otherwise: a real duplicate
in the recipient's inbox. The ESP message id is derived from the Message-ID, so a deduplicated call
answers exactly what the first one did.

Environment:
  BENCH_ESP_LEDGER       redis://host:port/db[#prefix]  atomic across processes (the crash bench), or
                         file:/some/dir                 one append-only file per process: cheapest, so
                                                        the dispatch bench measures the engine, not the
                                                        ledger; deduplicates within a process only
  BENCH_ESP_IDEMPOTENCY  1 = honour the key (default 0)
  BENCH_ESP_LATENCY_MS   simulated round trip per call, half before and half after the ESP records it,
                         so a worker killed in between leaves an accepted email it never recorded
  BENCH_ESP_CONTROL      1 = read the Redis ledger's control hash on every call (bench/chaos): a
                         `latency_ms` there replaces BENCH_ESP_LATENCY_MS (an ESP that slows down), a
                         `fail_status` (e.g. 503) makes the ESP answer that error after the round trip
                         without recording the message (an ESP that is down); set it with
                         `ledger(spec).set_control(...)`

The Redis ledger also keeps the instant (Unix time) each Message-ID was first accepted, so a bench can
check when an email was sent, not only whether.
"""

import collections
import hashlib
import os
import threading
import time
from pathlib import Path

from anymail.backends.base import AnymailBaseBackend
from anymail.backends.test import TestPayload
from anymail.exceptions import AnymailAPIError
from anymail.message import AnymailRecipientStatus

# Atomic per call: count the call, then say accepted / deduplicated / delivered again.
_RECORD = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if n == 1 then
  redis.call('INCR', KEYS[2])
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[3])
  return 'accepted'
end
if ARGV[2] == '1' then
  redis.call('INCR', KEYS[3])
  return 'deduplicated'
end
redis.call('INCR', KEYS[4])
return 'again'
"""
OUTCOMES = ("accepted", "deduplicated", "again")


class RedisLedger:
    def __init__(self, url: str):
        import redis

        url, _, prefix = url.partition("#")
        self.client = redis.Redis.from_url(url)
        prefix = prefix or "esp"
        self.keys = [f"{prefix}:calls", *(f"{prefix}:{name}" for name in OUTCOMES)]
        self.accepted_at_key, self.control_key = f"{prefix}:accepted_at", f"{prefix}:control"
        self.refused_key = f"{prefix}:refused"
        self.script = self.client.register_script(_RECORD)

    def record(self, message_id: str, honours: bool) -> str:
        outcome = self.script(keys=[*self.keys, self.accepted_at_key],
                              args=[message_id, "1" if honours else "0", repr(time.time())])
        return outcome.decode() if isinstance(outcome, bytes) else outcome

    def reset(self) -> None:
        self.client.delete(*self.keys, self.accepted_at_key, self.control_key, self.refused_key)

    def accepted_at(self) -> dict[str, float]:
        """Message-ID -> the instant (Unix time) the ESP first accepted it."""
        return {key.decode(): float(value) for key, value in self.client.hgetall(self.accepted_at_key).items()}

    def set_control(self, *, latency_ms: float | None = None, fail_status: int | None = None) -> None:
        """How the ESP behaves from the next call on (BENCH_ESP_CONTROL=1): None = as configured."""
        self.client.delete(self.control_key)
        fields = {k: v for k, v in (("latency_ms", latency_ms), ("fail_status", fail_status)) if v is not None}
        if fields:
            self.client.hset(self.control_key, mapping=fields)

    def control(self) -> tuple[float | None, int]:
        """(latency in seconds or None, the error status to answer or 0)."""
        latency_ms, fail_status = self.client.hmget(self.control_key, "latency_ms", "fail_status")
        return (float(latency_ms) / 1000.0 if latency_ms is not None else None), int(fail_status or 0)

    def refuse(self) -> None:
        self.client.incr(self.refused_key)

    def refused(self) -> int:
        return int(self.client.get(self.refused_key) or 0)

    def calls(self) -> dict[str, int]:
        return {key.decode(): int(value) for key, value in self.client.hgetall(self.keys[0]).items()}

    def counters(self) -> dict[str, int]:
        return {name: int(value or 0) for name, value in zip(OUTCOMES, self.client.mget(self.keys[1:]), strict=True)}


class FileLedger:
    """One append-only file per process: `<outcome> <message id>` per call, written with O_APPEND."""

    def __init__(self, directory: str):
        self.directory = Path(directory)
        self.fd: int | None = None
        self.pid = 0
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def record(self, message_id: str, honours: bool) -> str:
        with self.lock:
            if self.pid != os.getpid():  # first call in this (possibly forked) process
                self.directory.mkdir(parents=True, exist_ok=True)
                self.fd = os.open(self.directory / f"{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                self.pid, self.seen = os.getpid(), set()
            if message_id not in self.seen:
                outcome = "accepted"
                self.seen.add(message_id)
            else:
                outcome = "deduplicated" if honours else "again"
            os.write(self.fd, f"{outcome} {message_id}\n".encode())
        return outcome

    def _lines(self):
        for path in sorted(self.directory.glob("*.log")) if self.directory.exists() else []:
            for line in path.read_text().splitlines():
                outcome, _, message_id = line.partition(" ")
                yield outcome, message_id

    def reset(self) -> None:
        for path in self.directory.glob("*.log") if self.directory.exists() else []:
            path.unlink()

    def calls(self) -> dict[str, int]:
        return dict(collections.Counter(message_id for _, message_id in self._lines()))

    def counters(self) -> dict[str, int]:
        counts = collections.Counter(outcome for outcome, _ in self._lines())
        return {name: counts.get(name, 0) for name in OUTCOMES}


_ledgers: dict[str, object] = {}
_ledgers_lock = threading.Lock()


def ledger(spec: str | None = None):
    """The ledger named by `spec` (default: $BENCH_ESP_LEDGER), one instance per process."""
    spec = spec or os.environ["BENCH_ESP_LEDGER"]
    with _ledgers_lock:
        found = _ledgers.get(spec)
        if found is None:
            found = RedisLedger(spec) if spec.startswith("redis") else FileLedger(spec.removeprefix("file:"))
            _ledgers[spec] = found
        return found


def esp_message_id(message_id: str) -> str:
    return "null-" + hashlib.sha1(message_id.encode(), usedforsecurity=False).hexdigest()[:20]


def _error_response(status: int):
    """What an anymail backend holds when its ESP answered an error (AnymailAPIError describes it)."""
    import requests

    response = requests.Response()
    response.status_code, response.reason, response._content = status, "Service Unavailable", b'{"error": "down"}'
    return response


class EmailBackend(AnymailBaseBackend):
    esp_name = "BenchNull"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.ledger = ledger()
        self.honours = os.environ.get("BENCH_ESP_IDEMPOTENCY", "0") == "1"
        self.latency = float(os.environ.get("BENCH_ESP_LATENCY_MS", "0") or 0) / 1000.0
        self.controlled = os.environ.get("BENCH_ESP_CONTROL", "0") == "1"

    def build_message_payload(self, message, defaults):
        return TestPayload(backend=self, message=message, defaults=defaults)

    def post_to_esp(self, payload, message):
        mime = message.message()
        raw = mime.as_bytes(linesep="\r\n")  # the bytes an SMTP or raw-MIME API call would carry
        message_id = mime["Message-ID"]
        latency, fail_status = self.latency, 0
        if self.controlled:
            override, fail_status = self.ledger.control()
            latency = self.latency if override is None else override
        if fail_status:
            time.sleep(latency)
            self.ledger.refuse()
            raise AnymailAPIError(f"BenchNull answered HTTP {fail_status}", status_code=fail_status,
                                  response=_error_response(fail_status))
        if latency:
            time.sleep(latency / 2)
        outcome = self.ledger.record(message_id, self.honours)
        if latency:
            time.sleep(latency / 2)
        message.bench_esp_outcome = outcome
        message.bench_mime_bytes = len(raw)
        return {"id": esp_message_id(message_id), "to": payload.recipient_emails}

    def parse_recipient_status(self, response, payload, message):
        status = AnymailRecipientStatus(message_id=response["id"], status="queued")
        return {email: status for email in response["to"]}
