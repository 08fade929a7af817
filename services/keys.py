"""Signing keys shown once: a key is derived from a random salt with the application's
SECRET_KEY, and only `v1$<salt>$<sha256 of the key>` is stored, so the database alone never
gives a key away and a key is answered only when it is issued. Supplier reports and webhooks
sign `<timestamp>.<raw body>` with HMAC-SHA256 under such a key."""
import hashlib
import hmac
import secrets

from flask import current_app

SCHEME = "v1"


def _derived(prefix: str, purpose: str, salt: str) -> str:
    secret = current_app.config["SECRET_KEY"].encode()
    return prefix + hmac.new(secret, f"{purpose}:{salt}".encode(), hashlib.sha256).hexdigest()


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(prefix: str, purpose: str) -> tuple[str, str]:
    """(the key to answer once, what to store)."""
    salt = secrets.token_urlsafe(16)
    key = _derived(prefix, purpose, salt)
    return key, f"{SCHEME}${salt}${_digest(key)}"


def stored_key(stored: str | None, prefix: str, purpose: str) -> str | None:
    """The key behind what was stored (None when nothing valid is stored, or SECRET_KEY
    changed since)."""
    scheme, _, rest = (stored or "").partition("$")
    salt, _, digest = rest.partition("$")
    if scheme != SCHEME or not salt or not digest:
        return None
    key = _derived(prefix, purpose, salt)
    return key if hmac.compare_digest(_digest(key), digest) else None


def sign(key: str, timestamp: str, body: bytes) -> str:
    """hex HMAC-SHA256 of `<timestamp>.<raw body>` under `key`."""
    return hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
