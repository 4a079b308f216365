"""API-key authentication: `Authorization: Bearer lc_<prefix>_<secret>`.

The prefix finds the key with one indexed lookup; the secret is compared as a SHA-256
digest in constant time. A successful request sets `request.tenant` and scopes the rest of
the request to it (lifecycle/tenancy.py); the lookup itself spans tenants (`system_scope`).

Each worker process keeps the keys it has looked up for KEY_CACHE_SECONDS, so a store
sending hundreds of orders a second costs one lookup per worker every few seconds instead
of one per request (the lookup and its ORM query were ~1 ms of CPU, a fifth of a trivial
request). The secret is still checked against the stored hash on every request.
"""

import datetime as dt
import time

from rest_framework import authentication, exceptions, permissions

from . import clock, throttling
from .models import ApiKey
from .tenancy import activate, system_scope

# Write last_used_at at most this often per key: one UPDATE a minute, not one per request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
# How stale a worker's copy of a key (and of its tenant's settings) may be. This is the bound
# on revocation: a revoked key stops working at once in the process that revoked it and within
# this many seconds in every other worker. A tenant's changed currency or time zone reaches
# the API as late.
KEY_CACHE_SECONDS = 10.0
# Keys are few (a handful per store); past this many the cache starts over rather than grow.
KEY_CACHE_MAX = 10_000

_keys: dict[str, tuple[float, ApiKey]] = {}


def forget_key(prefix: str) -> None:
    """Drop this process's copy of a key (called when it is revoked here)."""
    _keys.pop(prefix, None)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            raise exceptions.NotAuthenticated(
                "Send your API key as 'Authorization: Bearer <key>'. Keys are created with "
                "'python manage.py create_tenant' or 'create_api_key'."
            )
        scheme, _, token = header.partition(" ")
        if scheme != self.keyword or not token:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <key>'.")
        try:
            api_key = self._lookup(token.strip())
        except exceptions.AuthenticationFailed as exc:
            if getattr(exc, "guess", False):
                throttling.key_failure_record(request)
            raise
        activate(api_key.tenant_id)  # the rest of the request is this key's store's
        now = clock.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.all_tenants.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
        request.tenant = api_key.tenant
        request._request.tenant = api_key.tenant
        return (None, api_key)

    @staticmethod
    def _lookup(token: str) -> ApiKey:
        invalid = exceptions.AuthenticationFailed("This API key is not valid. Check it, or create a new one.")
        invalid.guess = True  # counted against the client's address
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "lc" or not parts[1] or not parts[2]:
            raise invalid
        prefix = parts[1]
        cached = _keys.get(prefix)
        if cached is not None and time.monotonic() - cached[0] < KEY_CACHE_SECONDS:
            api_key = cached[1]
        else:
            with system_scope():
                api_key = ApiKey.all_tenants.select_related("tenant").filter(prefix=prefix).first()
            if api_key is None:
                raise invalid
            if len(_keys) >= KEY_CACHE_MAX:
                _keys.clear()
            _keys[prefix] = (time.monotonic(), api_key)
        if not api_key.matches(parts[2]):
            raise invalid
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key was revoked. Use a current key.")
        return api_key


class HasTenant(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return getattr(request, "tenant", None) is not None
