"""The sandbox customs: a customs service that runs beside Houtai, so cross-border shipments
can be declared offline, end to end, exactly as with a real one.

* `submit` accepts a declaration and answers its customs number; the decision follows
  asynchronously (a job after the commit): a JSON body `{"customs_no", "declaration_no",
  "status": "CLEARED" | "HELD", "message", "decided_at"}` signed with HMAC-SHA256 under
  SANDBOX_CUSTOMS_SECRET (hex, header `X-Signature`), posted to
  `/api/v1/customs_declaration/callback/sandbox` through the transport of
  `services.carriers.callback_transport` (SANDBOX_NOTIFY_TRANSPORT). `query` answers the same
  decision (the tick's catch-up when a callback was lost).
* Its rules: a declaration worth more than CUSTOMS_SINGLE_LIMIT (the single-transaction limit
  of cross-border retail imports, 5000.00) is held; so is one with an HS code on the
  restricted list (arms and ammunition 93, cigars and cigarettes 2402, medicaments 3003 and
  3004); everything else is cleared.

A submitted declaration cannot change until decided, so the sandbox reads what was submitted
from the declaration itself. Without SANDBOX_CUSTOMS_SECRET (production, unless set) it is off.
"""
import hashlib
import hmac
import json
import re
import secrets
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from models.logistics import CustomsDeclaration
from services import carriers, customs_adapters
from services.clock import now
from services.errors import BadRequestError, ConflictError, ValidationFailed

NAME = "sandbox"
CALLBACK_PATH = "/api/v1/customs_declaration/callback/sandbox"
DECIDE_JOB = "workers.customs.sandbox_decide"
TRANSPORT_KEY = "houtai_customs_transport"
RESTRICTED_HS = ("93", "2402", "3003", "3004")
WORDS = {"CLEARED": customs_adapters.CLEARED, "HELD": customs_adapters.HELD}


def secret() -> bytes:
    value = current_app.config.get("SANDBOX_CUSTOMS_SECRET")
    if not value:
        raise ConflictError("The sandbox customs is off: set SANDBOX_CUSTOMS_SECRET",
                            {"customs": ["Not available."]})
    return value.encode()


def sign(body: bytes) -> str:
    return hmac.new(secret(), body, hashlib.sha256).hexdigest()


def rules(declaration: CustomsDeclaration) -> tuple[str, str | None]:
    """The sandbox's decision on a declaration: (status, message)."""
    limit = Decimal(str(current_app.config["CUSTOMS_SINGLE_LIMIT"]))
    if declaration.total_value > limit:
        return customs_adapters.HELD, \
            f"Declared value {declaration.total_value:.2f} is over the single-transaction " \
            f"limit of {limit:.2f}"
    for item in declaration.items or []:
        code = str(item.get("hs_code") or "")
        if code.startswith(RESTRICTED_HS):
            return customs_adapters.HELD, f"HS code {code} is on the restricted list"
    return customs_adapters.CLEARED, None


def _submitted(customs_no: str) -> CustomsDeclaration | None:
    return db.session.scalars(select(CustomsDeclaration).where(
        CustomsDeclaration.customs_no == customs_no)).one_or_none()


def decide(declaration_id: int, customs_no: str) -> int | None:
    """The job after a submission: call back with the decision (once per submission; a
    declaration withdrawn or submitted again since is left alone). The callback's status."""
    declaration = db.session.get(CustomsDeclaration, declaration_id)
    if declaration is None or declaration.customs_no != customs_no or \
            declaration.status != "submitted":
        db.session.rollback()
        return None
    status, message = rules(declaration)
    body = json.dumps({"customs_no": customs_no, "declaration_no": declaration.declaration_no,
                       "status": "CLEARED" if status == customs_adapters.CLEARED else "HELD",
                       "message": message, "decided_at": now().isoformat()},
                      separators=(",", ":"), ensure_ascii=False).encode()
    db.session.commit()  # nothing of ours is locked while the callback is handled
    answer, _ = carriers.callback_transport(TRANSPORT_KEY).post(
        carriers.public_url(CALLBACK_PATH), body,
        {"Content-Type": "application/json", "X-Signature": sign(body)})
    return answer


class SandboxCustoms:
    name = NAME

    def submit(self, declaration: CustomsDeclaration) -> str:
        from app.queue import enqueue_after_commit

        secret()  # refuses while the sandbox is off
        customs_no = f"SBC{secrets.token_hex(8).upper()}"
        enqueue_after_commit(db.session, DECIDE_JOB, declaration.id, customs_no,
                             job_id=f"customs-decide-{customs_no}")
        return customs_no

    def decision_notice(self, body: bytes, headers) -> customs_adapters.Decision:
        signature = headers.get("X-Signature") or ""
        if not re.fullmatch(r"[0-9A-Fa-f]{64}", signature) or \
                not hmac.compare_digest(signature.lower().encode(), sign(body).encode()):
            raise customs_adapters.BadSignature("Bad or missing signature",
                                                {"X-Signature": ["Does not match the body."]})
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            raise BadRequestError("Not a JSON object", {"body": ["A JSON object."]})
        customs_no, status, message = data.get("customs_no"), data.get("status"), \
            data.get("message")
        if not isinstance(customs_no, str) or not customs_no or len(customs_no) > 64:
            raise ValidationFailed.field("customs_no", "Required text, at most 64 characters.")
        if status not in WORDS:
            raise ValidationFailed.field("status", "CLEARED or HELD.")
        if message is not None and not isinstance(message, str):
            raise ValidationFailed.field("message", "Text.")
        return customs_adapters.Decision(customs_no, WORDS[status], (message or None) and
                                         message[:255])

    def query(self, customs_no: str) -> customs_adapters.Decision:
        declaration = _submitted(customs_no)
        if declaration is None or declaration.status not in ("submitted", "cleared", "held"):
            return customs_adapters.Decision(customs_no, None)
        status, message = rules(declaration)
        return customs_adapters.Decision(customs_no, status, message)


customs_adapters.register(SandboxCustoms())
