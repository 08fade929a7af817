"""The payment gateway interface: every channel (the built-in sandbox, a real gateway's adapter)
answers the same five calls, so the payment center never knows which one it talks to.

    create_payment(request)            → where the buyer pays (a pay URL)
    payment_notice(body, headers)      → a verified payment notification (BadSignature if not)
    refund_notice(body, headers)       → a verified refund notification
    query(out_trade_no)                → what the gateway knows of one payment, or None
    refund(out_trade_no, out_refund_no, amount, currency) → accepted (idempotent per out_refund_no)
    statement(day)                     → the day's transactions, for reconciliation
"""
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from services.errors import HoutaiError, NotFoundError, ValidationFailed


class BadSignature(HoutaiError):
    """A notification whose signature is missing or wrong: 401, nothing changes."""

    status = 401


@dataclass(frozen=True)
class PaymentRequest:
    out_trade_no: str
    amount: Decimal
    currency: str
    subject: str


@dataclass(frozen=True)
class PaymentNotice:
    out_trade_no: str
    transaction_id: str
    amount: Decimal
    currency: str
    succeeded: bool
    paid_at: datetime | None
    payer_account: str | None
    raw: dict


@dataclass(frozen=True)
class RefundNotice:
    out_refund_no: str
    out_trade_no: str
    refund_id: str
    amount: Decimal
    currency: str
    succeeded: bool
    refunded_at: datetime | None
    raw: dict


@dataclass(frozen=True)
class StatementLine:
    kind: str                  # payment | refund
    out_trade_no: str
    out_refund_no: str | None
    transaction_id: str
    amount: Decimal
    currency: str
    status: str                # succeeded | failed
    finished_at: datetime


class Gateway(Protocol):
    channel: str

    def create_payment(self, request: PaymentRequest) -> str: ...

    def payment_notice(self, body: bytes, headers) -> PaymentNotice: ...

    def refund_notice(self, body: bytes, headers) -> RefundNotice: ...

    def query(self, out_trade_no: str) -> PaymentNotice | None: ...

    def refund(self, out_trade_no: str, out_refund_no: str, amount: Decimal,
               currency: str) -> str: ...

    def statement(self, day: date) -> list[StatementLine]: ...


_GATEWAYS: dict[str, Gateway] = {}


def register(gateway: Gateway) -> Gateway:
    """Make a channel available (the sandbox registers itself; an adapter does the same)."""
    _GATEWAYS[gateway.channel] = gateway
    return gateway


def channels() -> list[str]:
    return sorted(_GATEWAYS)


def gateway_for_payment(channel) -> Gateway:
    """The gateway a caller asks to pay through: 422 naming `channel` when unknown."""
    if not isinstance(channel, str) or channel not in _GATEWAYS:
        raise ValidationFailed.field("channel", f"One of: {', '.join(channels())}.")
    return _GATEWAYS[channel]


def gateway_notifying(channel: str) -> Gateway:
    """The gateway a notification claims to come from: 404 when there is none."""
    if channel not in _GATEWAYS:
        raise NotFoundError("Unknown channel", {"channel": ["No such channel."]})
    return _GATEWAYS[channel]


def gateway(channel: str) -> Gateway:
    return _GATEWAYS[channel]


def parse_decimal(value, field: str) -> Decimal:
    """A money amount as gateways send it ("12.34"); 400 naming the field otherwise."""
    from decimal import InvalidOperation

    try:
        amount = Decimal(str(value)) if isinstance(value, (str, int)) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise ValidationFailed.field(field, "An amount such as \"12.34\".")
    return amount


from services.gateways import sandbox  # noqa: E402,F401  (registers the sandbox channel)
from services.gateways import card  # noqa: E402,F401  (registers the card channel)
