"""The card channel: a member's stored-value or gift card pays a trade at checkout.

It answers the gateway interface, with one difference the payment center knows of
(`settles_at_once`): nothing waits for a notification. `charge` debits the card within the
request that pays (services/payment.py `start_payment`), and `refund` credits it back within
the refund job, so the refund ends at once. The card ledger is this channel's book:
`statement(day)` lists its spends and refunds, and reconciliation compares them with the
payments and refunds recorded here like any gateway's.
"""
from datetime import date
from decimal import Decimal

from sqlalchemy import and_, select

from app.extensions import db
from models.card import CardLedger
from models.payment import Payment, PaymentRefund
from services import card as cards
from services import gateways
from services.clock import business_day_bounds
from services.errors import ConflictError, NotFoundError

CHANNEL = "card"
CURRENCY = "CNY"


def transaction_id(row: CardLedger) -> str:
    return f"CL{row.id}"


class CardGateway:
    channel = CHANNEL
    settles_at_once = True

    def create_payment(self, request: gateways.PaymentRequest) -> str:
        """Never a pay page: the payment center charges the card with `charge`."""
        raise ConflictError("A card pays at once", {"channel": ["Pay with card_no."]})

    def charge(self, out_trade_no: str, card_no, member_id: int, amount: Decimal) -> str:
        """Debit the whole `amount` from the member's card (row-locked); the ledger row's id."""
        return transaction_id(cards.spend(card_no, member_id, amount, out_trade_no))

    def payment_notice(self, body: bytes, headers) -> gateways.PaymentNotice:
        raise NotFoundError("Cards send no notifications", {"channel": ["No notifications."]})

    def refund_notice(self, body: bytes, headers) -> gateways.RefundNotice:
        raise NotFoundError("Cards send no notifications", {"channel": ["No notifications."]})

    def query(self, out_trade_no: str) -> gateways.PaymentNotice | None:
        row = cards.spend_of(out_trade_no)
        if row is None:
            return None
        return gateways.PaymentNotice(
            out_trade_no=out_trade_no, transaction_id=transaction_id(row), amount=-row.delta,
            currency=CURRENCY, succeeded=True, paid_at=row.created_at, payer_account=None,
            raw={"card_id": row.card_id})

    def refund(self, out_trade_no: str, out_refund_no: str, amount: Decimal,
               currency: str) -> str:
        """Credit the card the payment came from (the same `out_refund_no` again credits
        nothing more)."""
        if currency != CURRENCY:
            raise ConflictError("Cards hold CNY", {"currency": [currency]})
        return transaction_id(cards.refund_spend(out_trade_no, out_refund_no, amount))

    def statement(self, day: date) -> list[gateways.StatementLine]:
        """The day's card spends (payments) and refunds, from the card ledger."""
        start, end = business_day_bounds(day)
        rows = db.session.execute(
            select(CardLedger, Payment.out_trade_no)
            .outerjoin(PaymentRefund, and_(CardLedger.reason == "refund",
                                           PaymentRefund.out_refund_no == CardLedger.reference))
            .outerjoin(Payment, Payment.id == PaymentRefund.payment_id)
            .where(CardLedger.reason.in_(("spend", "refund")),
                   CardLedger.created_at >= start, CardLedger.created_at < end)
            .order_by(CardLedger.id)).all()
        return [gateways.StatementLine(
            kind="payment" if row.reason == "spend" else "refund",
            out_trade_no=row.reference if row.reason == "spend" else (paid_by or ""),
            out_refund_no=row.reference if row.reason == "refund" else None,
            transaction_id=transaction_id(row), amount=abs(row.delta), currency=CURRENCY,
            status="succeeded", finished_at=row.created_at) for row, paid_by in rows]


gateways.register(CardGateway())
