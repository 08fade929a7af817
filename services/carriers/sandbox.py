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
* Concurrent registrations of a shipment are absorbed (INSERT ... ON CONFLICT DO NOTHING); a
  scan is appended under the shipment's row lock, so concurrent advances keep every scan and
  number them distinctly.

The book is the carrier's, not ours: it is kept in the table sandbox_shipment
(models.logistics.SandboxShipment), where every process (web, workers, tick) sees it, as the
sandbox gateway keeps its transactions. Without SANDBOX_CARRIER_SECRET (production, unless set)
the sandbox carrier is off.
Pushes go through the transport of `services.carriers.callback_transport`.
"""
import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime, timezone

from flask import current_app
from sqlalchemy import delete, select

from app.extensions import db
from models.logistics import TRACKING_STATUSES, SandboxShipment
from services import carriers
from services.clock import now
from services.errors import BadRequestError, ConflictError, NotFoundError, ValidationFailed

NAME = "sandbox"
TRANSPORT_KEY = "houtai_carrier_transport"


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

class Book:
    """The book in the database (table sandbox_shipment): web, workers and the tick see the same
    shipments. Its writes belong to the caller's transaction; `advance` commits them before
    pushing."""

    def register(self, carrier_code: str, tracking_no: str) -> None:
        """Put a shipment in the book once; registering it again (even concurrently) keeps the
        first registration."""
        if db.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        moment = now()
        db.session.execute(insert(SandboxShipment).values(
            tracking_no=tracking_no, carrier_code=carrier_code, scans=[], created_at=moment,
            updated_at=moment).on_conflict_do_nothing(index_elements=["tracking_no"]))

    def carrier_of(self, tracking_no: str) -> str | None:
        return db.session.scalar(select(SandboxShipment.carrier_code)
                                 .where(SandboxShipment.tracking_no == tracking_no))

    def add_scan(self, tracking_no: str, scan: dict) -> list[dict]:
        """Append a scan (its id `<tracking_no>-NNN`) under the shipment's row lock, held until
        the caller commits: concurrent scans of one shipment are all kept, ids distinct.
        Answers the shipment's history, oldest first."""
        shipment = _locked(tracking_no)
        if shipment is None:
            raise NotFoundError("The sandbox carrier has no such shipment",
                                {"tracking_no": ["Not shipped with a sandbox carrier."]})
        scans = [dict(s) for s in shipment.scans or []]
        scans.append({**scan, "id": f"{tracking_no}-{len(scans) + 1:03d}"})
        shipment.scans, shipment.updated_at = scans, now()
        db.session.flush()
        return [dict(s) for s in scans]

    def scans(self, tracking_no: str) -> list[dict]:
        found = db.session.scalar(select(SandboxShipment.scans)
                                  .where(SandboxShipment.tracking_no == tracking_no))
        return [dict(s) for s in found or []]

    def clear(self) -> None:
        db.session.execute(delete(SandboxShipment))


def _locked(tracking_no: str) -> SandboxShipment | None:
    """The shipment's row, locked (SELECT ... FOR UPDATE) and read afresh."""
    return db.session.scalars(
        select(SandboxShipment).where(SandboxShipment.tracking_no == tracking_no)
        .with_for_update().execution_options(populate_existing=True)).one_or_none()


def book() -> Book:
    return Book()


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
    """Post one signed push; the HTTP status of the answer (0: not reached). What the book
    holds is committed first: the webhook may run in a nested request with its own session,
    and the shipment's row lock is released before it is handled."""
    body = json.dumps({"tracking_no": tracking_no, "scans": history},
                      separators=(",", ":"), ensure_ascii=False).encode()
    timestamp, nonce = str(int(now().timestamp())), secrets.token_hex(16)
    headers = {"Content-Type": "application/json", "X-Timestamp": timestamp,
               "X-Nonce": nonce, "X-Signature": sign(timestamp, nonce, body)}
    db.session.commit()  # the scan kept, nothing locked while the push is handled
    status, _answer = carriers.callback_transport(TRANSPORT_KEY).post(
        carriers.public_url(carriers.push_path(carrier_code)), body, headers)
    return status


def forget_book() -> None:
    """Empty the book (tests start from nothing)."""
    book().clear()
    db.session.commit()


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


TIMESTAMP = re.compile(r"[0-9]{1,12}")
SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


class SandboxCarrier:
    name = NAME

    def parse_push(self, carrier, body: bytes, headers) -> carriers.Push:
        timestamp = headers.get("X-Timestamp") or ""
        nonce = headers.get("X-Nonce") or ""
        signature = headers.get("X-Signature") or ""
        # formats first: a header a client made up (non-ASCII digits, any text) is a bad
        # signature, never an error of ours
        if not TIMESTAMP.fullmatch(timestamp) or not nonce or len(nonce) > 64 or \
                not SIGNATURE.fullmatch(signature) or \
                not hmac.compare_digest(signature.lower().encode(),
                                        sign(timestamp, nonce, body).encode()):
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
