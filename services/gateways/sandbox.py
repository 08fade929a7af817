"""The sandbox gateway: a payment platform that runs inside Houtai, so checkout, payment, refunds
and reconciliation work offline, end to end, exactly as with a real one.

* `create_payment` opens a transaction and answers a pay URL served by this application
  (`/sandbox/pay/<out_trade_no>`): a page where a tester pays or fails it.
* Once paid or failed, the gateway notifies **asynchronously**: a JSON body signed with
  HMAC-SHA256 under `SANDBOX_GATEWAY_SECRET` (hex, header `X-Signature`), posted to
  `/api/v1/payment/notify/sandbox`, and re-sent on `NOTIFY_SCHEDULE` until the answer is 200
  `{"result": "ok"}`.
* `refund` accepts a refund (idempotent per `out_refund_no`), settles it at once and notifies
  `/api/v1/payment/refund-notify/sandbox` the same way.
* `statement(day)` lists the transactions that ended that day (the business day).

Notifications go through a transport: HTTP to `PUBLIC_BASE_URL` (production shape) or the
application's own WSGI stack (`SANDBOX_NOTIFY_TRANSPORT=wsgi`, what the tests use; no socket).
"""
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.request
from datetime import date, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from models.payment import SandboxTransaction
from services import gateways
from services.clock import business_day_bounds, now
from services.scheduler import scheduled

CHANNEL = "sandbox"
NOTIFY_PATH = "/api/v1/payment/notify/sandbox"
REFUND_NOTIFY_PATH = "/api/v1/payment/refund-notify/sandbox"
# After the first attempt (right after the outcome), re-sent this long after each failure;
# then the gateway gives up and the transaction waits for reconciliation.
NOTIFY_SCHEDULE = [timedelta(seconds=15), timedelta(minutes=1), timedelta(minutes=5),
                   timedelta(minutes=15), timedelta(hours=1), timedelta(hours=3),
                   timedelta(hours=6)]
NOTIFY_JOB = "workers.payment.sandbox_notify"


def secret() -> bytes:
    """The signing secret; none in production without SANDBOX_GATEWAY_SECRET (then the
    sandbox takes no payment and verifies no notification)."""
    from services.errors import ConflictError

    value = current_app.config.get("SANDBOX_GATEWAY_SECRET")
    if not value:
        raise ConflictError("The sandbox gateway is off: set SANDBOX_GATEWAY_SECRET",
                            {"channel": ["Not available."]})
    return value.encode()


def sign(body: bytes) -> str:
    return hmac.new(secret(), body, hashlib.sha256).hexdigest()


def _verified(body: bytes, headers) -> dict:
    signature = headers.get("X-Signature") or ""
    if not signature or not hmac.compare_digest(signature.lower(), sign(body)):
        raise gateways.BadSignature("Bad or missing signature",
                                    {"X-Signature": ["Does not match the body."]})
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        from services.errors import BadRequestError

        raise BadRequestError("Not a JSON object", {"body": ["A JSON object."]})
    return data


def _moment(value, field: str):
    from datetime import datetime

    from services.errors import ValidationFailed

    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValidationFailed.field(field, "ISO 8601 with an offset.")
    return moment


def _text(data: dict, field: str) -> str:
    from services.errors import ValidationFailed

    value = data.get(field)
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise ValidationFailed.field(field, "Required text, at most 64 characters.")
    return value


class SandboxGateway:
    channel = CHANNEL

    # -- the merchant-facing calls -----------------------------------------------------------
    def create_payment(self, request: gateways.PaymentRequest) -> str:
        secret()  # refuses while the sandbox is off
        db.session.add(SandboxTransaction(
            kind="payment", out_trade_no=request.out_trade_no,
            transaction_id=f"SBX{secrets.token_hex(12).upper()}", amount=request.amount,
            currency=request.currency, status="created", created_at=now()))
        return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/sandbox/pay/" \
               f"{request.out_trade_no}"

    def payment_notice(self, body: bytes, headers) -> gateways.PaymentNotice:
        data = _verified(body, headers)
        status = data.get("status")
        if status not in ("SUCCESS", "FAILED"):
            from services.errors import ValidationFailed

            raise ValidationFailed.field("status", "SUCCESS or FAILED.")
        return gateways.PaymentNotice(
            out_trade_no=_text(data, "out_trade_no"),
            transaction_id=_text(data, "transaction_id"),
            amount=gateways.parse_decimal(data.get("amount"), "amount"),
            currency=str(data.get("currency") or ""), succeeded=status == "SUCCESS",
            paid_at=_moment(data.get("paid_at"), "paid_at"),
            payer_account=data.get("payer_account") if isinstance(
                data.get("payer_account"), str) else None, raw=data)

    def refund_notice(self, body: bytes, headers) -> gateways.RefundNotice:
        data = _verified(body, headers)
        status = data.get("status")
        if status not in ("REFUND_SUCCESS", "REFUND_FAILED"):
            from services.errors import ValidationFailed

            raise ValidationFailed.field("status", "REFUND_SUCCESS or REFUND_FAILED.")
        return gateways.RefundNotice(
            out_refund_no=_text(data, "out_refund_no"), out_trade_no=_text(data, "out_trade_no"),
            refund_id=_text(data, "refund_id"),
            amount=gateways.parse_decimal(data.get("amount"), "amount"),
            currency=str(data.get("currency") or ""), succeeded=status == "REFUND_SUCCESS",
            refunded_at=_moment(data.get("refunded_at"), "refunded_at"), raw=data)

    def query(self, out_trade_no: str) -> gateways.PaymentNotice | None:
        tx = _payment_tx(out_trade_no)
        if tx is None or tx.status == "created":
            return None
        data = _payment_body(tx)
        return gateways.PaymentNotice(
            out_trade_no=tx.out_trade_no, transaction_id=tx.transaction_id, amount=tx.amount,
            currency=tx.currency, succeeded=tx.status == "succeeded", paid_at=tx.finished_at,
            payer_account=tx.payer_account, raw=data)

    def refund(self, out_trade_no: str, out_refund_no: str, amount: Decimal,
               currency: str) -> str:
        """Accept a refund of a paid transaction (the same `out_refund_no` again answers the
        same refund); it succeeds unless it exceeds what the payment has left."""
        existing = db.session.scalars(select(SandboxTransaction).where(
            SandboxTransaction.out_refund_no == out_refund_no)).one_or_none()
        if existing is not None:
            return existing.transaction_id
        paid = _payment_tx(out_trade_no)
        refunded = sum((t.amount for t in db.session.scalars(select(SandboxTransaction).where(
            SandboxTransaction.kind == "refund", SandboxTransaction.status == "succeeded",
            SandboxTransaction.out_trade_no == out_trade_no))), Decimal("0"))
        ok = paid is not None and paid.status == "succeeded" and \
            refunded + amount <= paid.amount and currency == paid.currency
        tx = SandboxTransaction(
            kind="refund", out_trade_no=out_trade_no, out_refund_no=out_refund_no,
            transaction_id=f"SBR{secrets.token_hex(12).upper()}", amount=amount,
            currency=currency, status="succeeded" if ok else "failed", created_at=now(),
            finished_at=now())
        _schedule_first_notice(tx)
        return tx.transaction_id

    def statement(self, day: date) -> list[gateways.StatementLine]:
        start, end = business_day_bounds(day)
        rows = db.session.scalars(select(SandboxTransaction).where(
            SandboxTransaction.finished_at >= start, SandboxTransaction.finished_at < end)
            .order_by(SandboxTransaction.id))
        return [gateways.StatementLine(
            kind=tx.kind, out_trade_no=tx.out_trade_no, out_refund_no=tx.out_refund_no,
            transaction_id=tx.transaction_id, amount=tx.amount, currency=tx.currency,
            status=tx.status, finished_at=tx.finished_at) for tx in rows]


# -- the buyer's side: the pay page ----------------------------------------------------------

def _payment_tx(out_trade_no: str) -> SandboxTransaction | None:
    return db.session.scalars(select(SandboxTransaction).where(
        SandboxTransaction.kind == "payment",
        SandboxTransaction.out_trade_no == out_trade_no)).one_or_none()


def pending_payment(out_trade_no: str) -> SandboxTransaction | None:
    return _payment_tx(out_trade_no)


def settle(out_trade_no: str, paid: bool, payer_account: str = "sandbox-buyer") -> \
        SandboxTransaction:
    """The tester pays (or fails) on the pay page: the outcome is final; the notification
    goes out after the commit."""
    from services.errors import ConflictError, NotFoundError

    tx = db.session.scalars(select(SandboxTransaction).where(
        SandboxTransaction.kind == "payment", SandboxTransaction.out_trade_no == out_trade_no)
        .with_for_update()).one_or_none()
    if tx is None:
        raise NotFoundError("No such payment")
    if tx.status != "created":
        raise ConflictError("This payment is already settled", {"status": [tx.status]})
    tx.status = "succeeded" if paid else "failed"
    tx.payer_account = payer_account[:64]
    tx.finished_at = now()
    _schedule_first_notice(tx)
    return tx


def _schedule_first_notice(tx: SandboxTransaction) -> None:
    from app.queue import enqueue_after_commit

    tx.next_notify_at = tx.finished_at
    db.session.add(tx)
    db.session.flush()
    enqueue_after_commit(db.session, NOTIFY_JOB, tx.id, job_id=f"sandbox-notify-{tx.id}-0")


# -- notifications -----------------------------------------------------------------------------

def _payment_body(tx: SandboxTransaction) -> dict:
    return {"out_trade_no": tx.out_trade_no, "transaction_id": tx.transaction_id,
            "amount": f"{tx.amount:.2f}", "currency": tx.currency,
            "status": "SUCCESS" if tx.status == "succeeded" else "FAILED",
            "paid_at": tx.finished_at.isoformat(), "payer_account": tx.payer_account}


def _refund_body(tx: SandboxTransaction) -> dict:
    return {"out_refund_no": tx.out_refund_no, "out_trade_no": tx.out_trade_no,
            "refund_id": tx.transaction_id, "amount": f"{tx.amount:.2f}",
            "currency": tx.currency,
            "status": "REFUND_SUCCESS" if tx.status == "succeeded" else "REFUND_FAILED",
            "refunded_at": tx.finished_at.isoformat()}


def notify(tx_id: int) -> bool:
    """Send one transaction's notification if it is due and not yet acknowledged (a job:
    idempotent); schedule the next attempt when the answer is not 200 `{"result": "ok"}`.
    Returns True once acknowledged."""
    tx = db.session.get(SandboxTransaction, tx_id)
    if tx is None or tx.acknowledged_at is not None or tx.status == "created" or \
            tx.next_notify_at is None:
        return tx is not None and tx.acknowledged_at is not None
    if tx.kind == "payment":
        body, path = _payment_body(tx), NOTIFY_PATH
    else:
        body, path = _refund_body(tx), REFUND_NOTIFY_PATH
    raw = json.dumps(body, separators=(",", ":")).encode()
    db.session.commit()  # nothing of ours is locked while the merchant handles it
    status, answer = transport().post(path, raw, {"Content-Type": "application/json",
                                                  "X-Signature": sign(raw)})
    tx = db.session.get(SandboxTransaction, tx_id)
    tx.notify_attempts += 1
    if status == 200 and _says_ok(answer):
        tx.acknowledged_at, tx.next_notify_at, tx.last_error = now(), None, None
    else:
        tx.last_error = f"HTTP {status}: {answer[:200]!r}"
        retries = NOTIFY_SCHEDULE[tx.notify_attempts - 1:tx.notify_attempts]
        tx.next_notify_at = now() + retries[0] if retries else None
    db.session.commit()
    return tx.acknowledged_at is not None


def _says_ok(answer: bytes) -> bool:
    try:
        return json.loads(answer).get("result") == "ok"
    except (ValueError, AttributeError):
        return False


@scheduled("sandbox.notify")
def resend_due_notifications() -> int:
    """Notifications whose next attempt is due, sent again (the tick runs this)."""
    due = list(db.session.scalars(select(SandboxTransaction.id).where(
        SandboxTransaction.acknowledged_at.is_(None),
        SandboxTransaction.next_notify_at.is_not(None),
        SandboxTransaction.next_notify_at <= now()).order_by(SandboxTransaction.id)))
    db.session.commit()
    for tx_id in due:
        notify(tx_id)
    return len(due)


# -- transports --------------------------------------------------------------------------------

class HttpTransport:
    """POST to the application at PUBLIC_BASE_URL, as a real gateway does."""

    def post(self, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        url = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            return 0, str(error).encode()


class WsgiTransport:
    """POST through the application's own WSGI stack (no socket): tests, single process."""

    def post(self, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        response = current_app.test_client().post(path, data=body, headers=headers)
        return response.status_code, response.get_data()


def transport():
    """The transport in use: one set in `app.extensions["houtai_sandbox_transport"]` (tests
    inject failing ones), else SANDBOX_NOTIFY_TRANSPORT (`http`, or `wsgi`)."""
    injected = current_app.extensions.get("houtai_sandbox_transport")
    if injected is not None:
        return injected
    if current_app.config.get("SANDBOX_NOTIFY_TRANSPORT") == "wsgi":
        return WsgiTransport()
    return HttpTransport()


gateways.register(SandboxGateway())
