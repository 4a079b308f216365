"""Per-API-key rate limit: a fixed one-minute window counted with an atomic INCR.

DRF's SimpleRateThrottle keeps a list of timestamps per key and rewrites it on every
request, which is neither atomic nor cheap at hundreds of requests a second.

With Redis the count is one pipelined INCR + EXPIRE: one round trip per request. (Django's
cache API took three: ADD, then EXISTS and INCR inside `incr`, ~0.6 ms of CPU per request.)
The window's key names its minute, so EXPIRE only has to outlive it; renewing it on every
request is harmless. Without Redis (the embedded profile) the cache API counts.

Wrong API keys are counted per client address too (lifecycle/auth.py says why a blocked
address is refused even with a right key). The wrong-key path counts with SET NX EX + INCR +
TTL: the window starts at the first wrong key. The right-key path reads that count in the
rate limit's own pipeline, so it costs no extra round trip.

A view may name Redis keys it will read (`redis_reads(request)`: POST /api/v1/orders asks for the
answer kept for its body, api/replays.py): they are read in the same pipeline and left on the
request as `redis_read` ({key: value}), one round trip fewer per request.
"""

import os

import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

from . import clock

WINDOW_SECONDS = 60

_client: tuple[int, redis.Redis] | None = None


def redis_client() -> redis.Redis | None:
    """This process's Redis client (a forked worker makes its own), or None without Redis."""
    global _client  # noqa: PLW0603 - one client per process, made on first use
    if not settings.REDIS_URL:
        return None
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5))
    return _client[1]


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR (behind a proxy, have it set REMOTE_ADDR; X-Forwarded-For is forgeable)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


def _failures_key(request) -> str:
    return f"authfail:apikey:{client_address(request)}"


def _cache_incr(key: str, timeout: int) -> int:
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=timeout)
        return 1


def _cache_ttl(key: str) -> int:
    until = cache.get(f"{key}:until")
    return max(1, int(until - clock.now().timestamp())) if until else 1


def _count(key: str, failures_key: str, reads: list[str]) -> tuple[int, int, int, dict[str, bytes | None]]:
    """The request count of this window, with the client address's wrong-key count and its seconds
    left, and the values of `reads` (none without Redis)."""
    client = redis_client()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, WINDOW_SECONDS * 2)
        pipe.get(failures_key)
        pipe.ttl(failures_key)
        for read in reads:
            pipe.get(read)
        count, _, failures, ttl, *values = pipe.execute()
        return count, int(failures or 0), max(int(ttl), 1), dict(zip(reads, values, strict=True))
    count = _cache_incr(key, WINDOW_SECONDS * 2)
    failures = cache.get(failures_key) or 0
    return count, failures, _cache_ttl(failures_key) if failures else 1, {}


def key_failures_refusal(wait: int) -> Throttled:
    exc = Throttled(detail=f"Too many requests with a wrong API key from your address: every request from it is "
                           f"refused for {wait} s. Check the key your client sends.", code="auth.too_many_failures")
    exc.wait = wait
    return exc


def key_failure_record(request) -> None:
    """Count a wrong API key from the request's address; past the limit, refuse with 429 instead of 401."""
    key = _failures_key(request)
    window = settings.API_KEY_FAILURE_WINDOW_SECONDS
    client = redis_client()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        pipe.set(key, 0, ex=window, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, failures, ttl = pipe.execute()
        ttl = max(int(ttl), 1)
    else:
        if cache.add(f"{key}:until", clock.now().timestamp() + window, timeout=window):
            cache.set(key, 0, timeout=window)
        failures = _cache_incr(key, window)
        ttl = _cache_ttl(key)
    if failures > settings.API_KEY_FAILURE_LIMIT:
        raise key_failures_refusal(ttl)


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        api_key = request.auth
        if api_key is None:
            return True
        limit = settings.API_RATE_LIMIT_PER_MINUTE
        now = clock.now().timestamp()
        window = int(now // WINDOW_SECONDS)
        self._retry_after = WINDOW_SECONDS - int(now % WINDOW_SECONDS)
        reads = view.redis_reads(request) if hasattr(view, "redis_reads") else []
        count, failures, failures_ttl, request.redis_read = _count(
            f"t:{api_key.tenant_id}:ratelimit:{api_key.pk}:{window}", _failures_key(request), reads)
        if failures >= settings.API_KEY_FAILURE_LIMIT:
            raise key_failures_refusal(failures_ttl)
        return count <= limit

    def wait(self) -> float:
        return self._retry_after
