"""Standard Webhooks (https://www.standardwebhooks.com), symmetric signatures.

Every delivery carries `webhook-id` (the message's id, the same on every retry),
`webhook-timestamp` (integer seconds, the moment of this attempt) and
`webhook-signature`: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the key
being the base64 part of the `whsec_...` secret. Receivers verify with the
`standardwebhooks` library or Svix, against the raw body, and reject old timestamps
(replays). `verify` is the same check, for our own tests and for receivers in Python.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Final

PREFIX: Final = "whsec_"
#: what a secret looks like: whsec_ (optional) and the base64 of 16 to 65 bytes (the API's
#: schema says so, and `secret_key` accepts exactly this)
SECRET_PATTERN: Final = (
    r"^(?:whsec_)?(?:[A-Za-z0-9+/]{4}){5}(?:(?:[A-Za-z0-9+/]{4}){1,16}"
    r"(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)$"
)
#: seconds a receiver accepts a timestamp away from its clock (the spec's suggestion)
TOLERANCE_SECONDS: Final = 5 * 60


class SignatureError(ValueError):
    """A delivery that does not verify (the reason says which check failed)."""


def new_secret() -> str:
    """A fresh secret: 24 random bytes, as Svix and the spec's examples write them."""
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret (with or without its `whsec_` prefix)."""
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is base64, optionally after 'whsec_'") from None
    if not 16 <= len(key) <= 65:
        raise ValueError("a webhook secret holds 16 to 65 bytes")
    return key


def _timestamp(value: int | str) -> int:
    """Integer seconds since the epoch, as the spec requires (never a float or negative)."""
    if isinstance(value, bool):
        raise ValueError("the timestamp is integer seconds")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise ValueError(f"the timestamp is integer seconds, got {value!r}")
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"the timestamp is integer seconds, got {value!r}")
    return value


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The `webhook-signature` header's value for one attempt."""
    seconds = _timestamp(timestamp)
    signed = f"{msg_id}.{seconds}.".encode() + body
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secret: str, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The three headers of one attempt (the timestamp is the attempt's, the id is not)."""
    seconds = int(time.time() if now is None else now)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": sign(secret, msg_id, seconds, body),
    }


def verify(
    secret: str,
    received: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> None:
    """Raise `SignatureError` unless one of the `v1` signatures matches and the timestamp
    is within `tolerance` of `now` (header names in any case)."""
    lower = {k.lower(): v for k, v in received.items()}
    msg_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp")
    given = lower.get("webhook-signature")
    if not msg_id or not stamp or not given:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        seconds = _timestamp(stamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not integer seconds") from None
    clock = time.time() if now is None else now
    if abs(clock - seconds) > tolerance:
        raise SignatureError("webhook-timestamp is too far from now (a replay?)")
    expected = sign(secret, msg_id, seconds, body).encode()
    for candidate in given.split(" "):
        version, _, _ = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(candidate.encode(), expected):
            return
    raise SignatureError("no signature matches")
