"""The fingerprint of a request, for Idempotency-Key replays (lifecycle/api/idempotency.py)."""

import hashlib


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()
