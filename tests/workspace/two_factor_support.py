"""Two-factor in tests: the secret read from the setup page, and the code an authenticator app would show."""

import base64
import re
import time

from django_otp.oath import TOTP

STEP = 30


def secret_on(page_html: str) -> str:
    return re.search(r'data-secret="([A-Z2-7]+)"', page_html).group(1)


def code(secret: str, *, steps_ahead: int = 0) -> str:
    """The app's code for `secret` now (or `steps_ahead` 30-second steps later, which the server's tolerance of one
    step accepts: a code not yet used, when this step's code has just been used to confirm the device)."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    totp = TOTP(key, step=STEP, digits=6)
    totp.time = time.time() + steps_ahead * STEP
    return f"{totp.token():06d}"


def recovery_codes_on(page_html: str) -> list[str]:
    section = page_html.split('id="recovery-codes"', 1)[1].split("</section>", 1)[0]
    return re.findall(r"<code>([A-Z0-9]+)</code>", section)
