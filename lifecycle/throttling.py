"""Per-API-key rate limit: a fixed one-minute window counted with an atomic INCR.

DRF's SimpleRateThrottle keeps a list of timestamps per key and rewrites it on every
request, which is neither atomic nor cheap at hundreds of requests a second.
"""

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from . import clock

WINDOW_SECONDS = 60


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        api_key = request.auth
        if api_key is None:
            return True
        limit = settings.API_RATE_LIMIT_PER_MINUTE
        now = clock.now().timestamp()
        window = int(now // WINDOW_SECONDS)
        self._retry_after = WINDOW_SECONDS - int(now % WINDOW_SECONDS)
        key = f"t:{api_key.tenant_id}:ratelimit:{api_key.pk}:{window}"
        cache.add(key, 0, timeout=WINDOW_SECONDS * 2)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, timeout=WINDOW_SECONDS * 2)
            count = 1
        return count <= limit

    def wait(self) -> float:
        return self._retry_after
