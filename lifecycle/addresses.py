"""Where storefronts and customers reach this server, and the webhook URL a store registers there.

The embedded server (demo's serve_embedded, `make run`) records the address it serves on, so that a
command run beside it (connect_store) prints a URL that works, `PORT=8001 make run` included.
"""

import os
from pathlib import Path

from django.conf import settings

from .models import StoreConnection

EMBEDDED_DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def served_at_path() -> Path:
    """Where the running embedded server records its address."""
    return settings.VAR_DIR / "public_base_url"


def served_base_url() -> str:
    """The address the embedded server last served on, or "" if it never ran here."""
    try:
        return served_at_path().read_text(encoding="utf-8").strip().rstrip("/")
    except OSError:
        return ""


def public_base_url() -> str:
    """PUBLIC_BASE_URL when it is set; in the embedded profile without it, the address `make run`
    serves on (recorded by serve_embedded) rather than the built-in default."""
    unset = "PUBLIC_BASE_URL" not in os.environ and settings.PUBLIC_BASE_URL == EMBEDDED_DEFAULT_BASE_URL
    if settings.EMBEDDED and unset:
        return served_base_url() or settings.PUBLIC_BASE_URL
    return settings.PUBLIC_BASE_URL


def webhook_url(conn: StoreConnection, *, base: str = "") -> str:
    """The URL to register with the platform: on PUBLIC_BASE_URL, or on `base`."""
    return f"{(base or settings.PUBLIC_BASE_URL).rstrip('/')}{conn.webhook_path}" if conn.webhook_path else ""
