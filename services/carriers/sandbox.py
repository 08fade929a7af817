"""The sandbox carrier: a tracking service that runs beside Houtai, so shipments can be tracked
offline, end to end, exactly as with a real one.

* `subscribe` (called when a notice ships with a carrier whose adapter is `sandbox`) puts the
  shipment in the sandbox's book; `advance` (staff and tests, `POST
  /api/v1/sandbox_carrier/advance`) adds a scan to a shipment of the book and pushes the
  shipment's whole history to `/api/v1/carrier_push/<carrier code>`, as aggregators do.
* A push is a JSON body `{"tracking_no", "scans": [{"id", "status", "description",
  "location", "occurred_at"}]}` with headers `X-Timestamp` (Unix seconds), `X-Nonce` (unique
  per push) and `X-Signature`: hex HMAC-SHA256 under SANDBOX_CARRIER_SECRET of
  `timestamp + "\\n" + nonce + "\\n" + body`.
* `poll` answers a shipment's history from the book (the tick's catch-up when a push was lost).

The book is the carrier's, not ours: it is kept in Redis (REDIS_URL) where every process
sees it, or in the process in the embedded mode (one process, like its jobs). Without
SANDBOX_CARRIER_SECRET (production, unless set) the sandbox carrier is off.
Pushes go through the transport of `services.carriers.callback_transport`.
"""
import hashlib
import hmac
import json
import secrets
import threading
from datetime import datetime, timezone

from flask import current_app

from app.extensions import db
from models.logistics import TRACKING_STATUSES
from services import carriers
from services.clock import now
from services.errors import BadRequestError, ConflictError, NotFoundError, ValidationFailed

NAME = "sandbox"
TRANSPORT_KEY = "houtai_carrier_transport"
BOOK_KEY = "houtai_sandbox_carrier_book"
REDIS_PREFIX = "houtai:sandbox-carrier"


def secret() -> bytes:
    """The signing secret; none in production without SANDBOX_CARRIER_SECRET (the sandbox
    carrier then advances nothing and verifies no push)."""
    value = current_app.config.get("SANDBOX_CARRIER_SECRET")
    if not value:
        raise ConflictError("The sandbox carrier is off: set SANDBOX_CARRIER_SECRET",
                            {"carrier": ["Not available."]})
    return value.encode()


def sign(timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body
    return hmac.new(secret(), message, hashlib.sha256).hexdigest()


# -- the book ----------------------------------------------------------------------------------

class MemoryBook:
    """The book in this process (embedded mode: one process)."""

    def __init__(self):
        self.shipments: dict[str, dict] = {}
        self.lock = threading.Lock()

    def register(self, carrier_code: str, tracking_no: str) -> None:
        with self.lock:
            self.shipments.setdefault(tracking_no, {"carrier": carrier_code, "scans": []})

    def carrier_of(self, tracking_no: str) -> str | None:
        found = self.shipments.get(tracking_no)
        return found["carrier"] if found else None

    def add_scan(self, tracking_no: str, scan: dict) -> list[dict]:
        with self.lock:
            scans = self.shipments[tracking_no]["scans"]
            scans.append({**scan, "id": f"{tracking_no}-{len(scans) + 1:03d}"})
            return [dict(s) for s in scans]

    def scans(self, tracking_no: str) -> list[dict]:
        found = self.shipments.get(tracking_no)
        return [dict(s) for s in found["scans"]] if found else []

    def clear(self) -> None:
        with self.lock:
            self.shipments.clear()


class RedisBook:
    """The book in Redis: every process (web, workers, tick) sees the same shipments."""

    def __init__(self, connection):
        self.redis = connection

    def _key(self, tracking_no: str, part: str) -> str:
        return f"{REDIS_PREFIX}:{tracking_no}:{part}"

    def register(self, carrier_code: str, tracking_no: str) -> None:
        self.redis.setnx(self._key(tracking_no, "carrier"), carrier_code)

    def carrier_of(self, tracking_no: str) -> str | None:
        value = self.redis.get(self._key(tracking_no, "carrier"))
        return value.decode() if value is not None else None

    def add_scan(self, tracking_no: str, scan: dict) -> list[dict]:
        n = self.redis.incr(self._key(tracking_no, "count"))
        self.redis.rpush(self._key(tracking_no, "scans"),
                         json.dumps({**scan, "id": f"{tracking_no}-{n:03d}"}))
        return self.scans(tracking_no)

    def scans(self, tracking_no: str) -> list[dict]:
        return [json.loads(raw) for raw in self.redis.lrange(self._key(tracking_no, "scans"),
                                                              0, -1)]

    def clear(self) -> None:
        keys = list(self.redis.scan_iter(f"{REDIS_PREFIX}:*"))
        if keys:
            self.redis.delete(*keys)


def book():
    """Redis when REDIS_URL is set, else this process's book."""
    if current_app.config.get("REDIS_URL"):
        from app.queue import redis_connection

        return RedisBook(redis_connection())
    kept = current_app.extensions.get(BOOK_KEY)
    if kept is None:
        kept = current_app.extensions[BOOK_KEY] = MemoryBook()
    return kept


# -- the staff's side: advancing a shipment ----------------------------------------------------

def _text(value, field: str, limit: int, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > limit:
        raise ValidationFailed.field(field, f"{'Required t' if required else 'T'}ext, "
                                            f"at most {limit} characters.")
    return value.strip()


def advance(tracking_no, status, description=None, location=None) -> tuple[dict, int]:
    """Add a scan to a shipment the sandbox carrier was told about and push the shipment's
    history to this application; answers the scan and the HTTP status the push got."""
    secret()
    tracking_no = _text(tracking_no, "tracking_no", 64, required=True)
    if status not in TRACKING_STATUSES:
        raise ValidationFailed.field("status", f"One of: {', '.join(TRACKING_STATUSES)}.")
    description = _text(description, "description", 255)
    location = _text(location, "location", 64)
    the_book = book()
    carrier_code = the_book.carrier_of(tracking_no)
    if carrier_code is None:
        raise NotFoundError("The sandbox carrier has no such shipment",
                            {"tracking_no": ["Not shipped with a sandbox carrier."]})
    history = the_book.add_scan(tracking_no, {
        "status": status, "description": description, "location": location,
        "occurred_at": now().isoformat()})
    return history[-1], push(carrier_code, tracking_no, history)


def push(carrier_code: str, tracking_no: str, history: list[dict]) -> int:
    """Post one signed push; the HTTP status of the answer (0: not reached)."""
    body = json.dumps({"tracking_no": tracking_no, "scans": history},
                      separators=(",", ":"), ensure_ascii=False).encode()
    timestamp, nonce = str(int(now().timestamp())), secrets.token_hex(16)
    headers = {"Content-Type": "application/json", "X-Timestamp": timestamp,
               "X-Nonce": nonce, "X-Signature": sign(timestamp, nonce, body)}
    db.session.commit()  # nothing of ours is locked while the push is handled
    status, _answer = carriers.callback_transport(TRANSPORT_KEY).post(
        carriers.public_url(carriers.push_path(carrier_code)), body, headers)
    return status


def forget_book() -> None:
    """Empty the book (tests start from nothing)."""
    book().clear()


# -- the adapter -------------------------------------------------------------------------------

def _scan(tracking_no: str, raw, n: int) -> carriers.Scan:
    where = f"scans.{n}"
    if not isinstance(raw, dict):
        raise ValidationFailed.field(where, "An object.")
    external_id = raw.get("id")
    if not isinstance(external_id, str) or not external_id or len(external_id) > 64:
        raise ValidationFailed.field(f"{where}.id", "Required text, at most 64 characters.")
    if raw.get("status") not in TRACKING_STATUSES:
        raise ValidationFailed.field(f"{where}.status",
                                     f"One of: {', '.join(TRACKING_STATUSES)}.")
    try:
        occurred_at = datetime.fromisoformat(raw.get("occurred_at"))
    except (TypeError, ValueError):
        occurred_at = None
    if occurred_at is None or occurred_at.tzinfo is None:
        raise ValidationFailed.field(f"{where}.occurred_at", "ISO 8601 with an offset.")
    texts = {}
    for name, limit in (("description", 255), ("location", 64)):
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise ValidationFailed.field(f"{where}.{name}", f"Text, at most {limit} characters.")
        texts[name] = value or None
    return carriers.Scan(tracking_no=tracking_no, external_id=external_id, status=raw["status"],
                         occurred_at=occurred_at.astimezone(timezone.utc), **texts)


def _scans(tracking_no: str, raw_scans) -> list[carriers.Scan]:
    if not isinstance(raw_scans, list) or len(raw_scans) > 500:
        raise ValidationFailed.field("scans", "A list of at most 500 scans.")
    return [_scan(tracking_no, raw, n) for n, raw in enumerate(raw_scans)]


class SandboxCarrier:
    name = NAME

    def parse_push(self, carrier, body: bytes, headers) -> carriers.Push:
        timestamp = headers.get("X-Timestamp") or ""
        nonce = headers.get("X-Nonce") or ""
        signature = headers.get("X-Signature") or ""
        if not timestamp.isdigit() or len(timestamp) > 12 or not nonce or len(nonce) > 64 \
                or not signature or \
                not hmac.compare_digest(signature.lower(), sign(timestamp, nonce, body)):
            raise carriers.BadSignature("Bad or missing signature", {
                "X-Signature": ["Does not match X-Timestamp, X-Nonce and the body."]})
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            raise BadRequestError("Not a JSON object", {"body": ["A JSON object."]})
        tracking_no = _text(data.get("tracking_no"), "tracking_no", 64, required=True)
        return carriers.Push(
            nonce=nonce, sent_at=datetime.fromtimestamp(int(timestamp), timezone.utc),
            scans=_scans(tracking_no, data.get("scans")))

    def acknowledge(self) -> dict:
        return {"result": "ok"}

    def polls(self) -> bool:
        return bool(current_app.config.get("SANDBOX_CARRIER_SECRET"))

    def poll(self, carrier, tracking_no: str) -> list[carriers.Scan]:
        return _scans(tracking_no, book().scans(tracking_no))

    def subscribe(self, carrier, tracking_no: str) -> None:
        book().register(carrier.code, tracking_no)


carriers.register(SandboxCarrier())
