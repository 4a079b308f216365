"""Two-factor sign-in (django-otp): an authenticator app's TOTP codes, and recovery codes for a lost phone.

A person has at most one confirmed authenticator (a `TOTPDevice`) and, with it, one set of recovery codes
(a `StaticDevice`): both are made together and removed together. Setting up is two steps: a secret is shown
as a QR code, and a code from the app confirms it (so nobody turns on a device they cannot
read). Recovery codes are shown once, in that answer, and stored as a digest (`recovery_digest`), like
API keys. The TOTP secret itself has to stay readable to check codes; it lives in django-otp's table.

Guessing is limited twice: every wrong code is a failed sign-in for django-axes (the same count as wrong
passwords: AXES_FAILURE_LIMIT per username and per address), and each device waits 1, 2, 4… seconds after
its own failures (django-otp's throttling). A TOTP code is accepted once: django-otp keeps the last time
step used, so a code seen over a shoulder cannot be replayed.

The person belongs to stores, not one store: each change is a `store.*` event on the timeline of every
store they are in, so every owner's audit log shows it.

Operators (/admin/, lifecycle/admin_site.py) use the same devices: an operator with a device must give the
code there too.
"""

import hashlib
import re
import secrets

from axes.handlers.proxy import AxesProxyHandler
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex

from . import clock
from .models import Membership, Tenant
from .tenancy import system_scope, tenant_scope
from .timeline import event_append

RECOVERY_CODES = 10
# 10 characters of a 32-letter alphabet: 50 bits, typed from paper without ambiguity (no 0/O, 1/I/L).
RECOVERY_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
RECOVERY_LENGTH = 10
DEVICE_NAME = "Authenticator app"
TOTP_CODE = re.compile(r"[0-9]{6}")  # ASCII digits only: a Unicode digit such as "²" is no code


class TwoFactorLocked(Exception):
    """Too many failed sign-ins (passwords and codes together) for this username or address."""


def recovery_digest(code: str) -> str:
    """What StaticToken.token keeps of a recovery code (its column holds 16 characters): 64 bits of SHA-256."""
    normal = "".join(code.split()).replace("-", "").upper()
    return hashlib.sha256(normal.encode()).hexdigest()[:16]


def has_two_factor(user) -> bool:
    """Whether `user` has a confirmed authenticator (one query)."""
    return bool(user.is_authenticated and TOTPDevice.objects.filter(user=user, confirmed=True).exists())


def authenticator(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def new_secret() -> str:
    """A fresh TOTP secret (hex, as django-otp stores it) for the setup page to show before anything is saved."""
    return random_hex(20)


def pending_authenticator(user, secret: str, *, save: bool) -> TOTPDevice:
    """The unconfirmed device for `secret`: unsaved for the setup page's QR code (a GET writes nothing), saved when
    a code is tried, so the device's own throttle counts the failures."""
    if not save:
        return TOTPDevice(user=user, name=DEVICE_NAME, key=secret, confirmed=False)
    device, _ = TOTPDevice.objects.get_or_create(user=user, key=secret, confirmed=False,
                                                 defaults={"name": DEVICE_NAME})
    return device


def _credentials(user) -> dict:
    return {"username": user.get_username()}


def is_locked(request, user) -> bool:
    return not AxesProxyHandler.is_allowed(request, _credentials(user))


def code_verify(request, user, code: str) -> Device | None:
    """The device that accepts `code` (a TOTP code, or an unused recovery code, which is then used up), or None.

    Raises TwoFactorLocked, before looking at the code, while axes has the username or address locked. A wrong
    code is recorded as a failed sign-in (axes) and on the device (django-otp's throttle).
    """
    if is_locked(request, user):
        raise TwoFactorLocked()
    code = "".join((code or "").split())
    device: Device | None = None
    if TOTP_CODE.fullmatch(code):  # the app's code; recovery codes are 10 letters and digits
        totp = authenticator(user)
        if totp is not None and totp.verify_token(code):
            device = totp
    elif code:
        with transaction.atomic():
            static = StaticDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
            if static is not None and static.verify_token(recovery_digest(code)):
                device = static
    if device is None:
        user_login_failed.send(sender=__name__, credentials=_credentials(user), request=request)
    return device


def confirm_throttled(device: TOTPDevice) -> bool:
    allowed, _ = device.verify_is_allowed()
    return not allowed


def _new_recovery_code() -> str:
    return "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))


def _stores_of(user) -> list[Tenant]:
    with system_scope():
        return list(Tenant.objects.filter(memberships__user=user).order_by("pk"))


def member_event_append(*, user, type: str, data: dict) -> int:  # noqa: A002 - the event's name
    """Append a `store.*` event about `user` to every store they are in; returns how many stores."""
    stores = _stores_of(user)
    now = clock.now()
    for store in stores:
        with tenant_scope(store):
            event_append(tenant=store, type=type, occurred_at=now, data={"user": user.get_username(), **data})
    return len(stores)


def two_factor_enable(*, user, device: TOTPDevice, code: str) -> list[str] | None:
    """Confirm the pending authenticator with a code from it; returns the new recovery codes (shown once), or None
    when the code is wrong. Any earlier authenticator and recovery codes are replaced."""
    code = "".join((code or "").split())
    if device.confirmed or device.user_id != user.pk:
        return None
    if not TOTP_CODE.fullmatch(code):
        device.throttle_increment()  # counted like a wrong code
        return None
    if not device.verify_token(code):
        return None
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        StaticDevice.objects.filter(user=user).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        static = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
        StaticToken.objects.bulk_create([StaticToken(device=static, token=recovery_digest(c)) for c in codes])
        member_event_append(user=user, type="store.member_2fa_enabled", data={"by": user.get_username()})
    return codes


def two_factor_disable(*, user, by: str) -> bool:
    """Remove the person's authenticator and recovery codes. False when there were none."""
    with transaction.atomic():
        had = has_two_factor(user)
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        if had:
            member_event_append(user=user, type="store.member_2fa_disabled", data={"by": by})
    return had


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def members_without_two_factor(tenant: Tenant) -> set[int]:
    """The user ids of the store's members who have no confirmed authenticator."""
    members = set(Membership.objects.filter(tenant=tenant).values_list("user_id", flat=True))
    with_device = set(TOTPDevice.objects.filter(user_id__in=members, confirmed=True).values_list("user_id", flat=True))
    return members - with_device
