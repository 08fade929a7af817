"""支付中心 rules: a payment record per attempt, verified and idempotent notifications, and
refunds through the gateway that took the money.

A member's card (channel `card`, services/gateways/card.py) pays at once: the card is debited
under its row lock within the request (lock order: the trade, then the card) and the trade is
paid as by a gateway's notice; its refunds credit the card and succeed within the refund job.

Lock order: the payment row, then its trade (`order.trade_for_update`: trade, then its orders).
Ten copies of one notification, sequential or concurrent, queue on the payment row: the first
changes it, the others find it settled and answer "ok" with no effect. Money that arrives for a
trade no longer awaiting it (cancelled, or paid by another attempt) is recorded and refunded.

Refunds reserve their amount on the payment with one conditional UPDATE (`refunded_amount +
amount <= amount`), so concurrent refunds can never exceed what was paid; the gateway call runs
after the commit, as a job, with `out_refund_no` as its idempotency key.
"""
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import or_, select, update

from app.extensions import db
from app.queue import enqueue_after_commit
from models.order import OrderStatus, Trade
from models.payment import Payment, PaymentRefund, PaymentStatus, RefundStatus
from services import gateways, order, risk
from services.clock import now
from services.errors import ConflictError, HoutaiError, NotFoundError, ValidationFailed
from services.events import publish
from services.numbering import number
from services.scheduler import scheduled

CURRENCY = "CNY"
SUBMIT_REFUND_JOB = "workers.payment.submit_refund"
# A refund the gateway could not be reached for is tried again by the tick this many times,
# then left `failed` for a person (the refund queue on the Payments screen).
MAX_REFUND_ATTEMPTS = 6
SETTLED = {PaymentStatus.succeeded, PaymentStatus.failed}


class AmountMismatch(HoutaiError):
    """A notification whose amount or currency differs from the attempt's: 422, flagged."""

    status = 422


def masked_account(account: str | None) -> str | None:
    """Payer accounts are personal data: first 3 and last 2 characters."""
    if not account:
        return account
    if len(account) <= 5:
        return account[:1] + "***"
    return f"{account[:3]}***{account[-2:]}"


# -- paying a trade ---------------------------------------------------------------------------

def start_payment(trade: Trade, channel, card_no=None) -> tuple[Payment, str | None]:
    """A new attempt to pay `trade` (visible to the caller) through `channel`: the payment
    record and the URL where the buyer pays. 409 unless the trade awaits payment. Through
    `card` the card named `card_no` pays the whole payable at once (no URL)."""
    gateway = gateways.gateway_for_payment(channel)
    at_once = getattr(gateway, "settles_at_once", False)
    if at_once and not isinstance(card_no, str):
        raise ValidationFailed.field("card_no", "The card's number (with channel card).")
    if not at_once and card_no is not None:
        raise ValidationFailed.field("card_no", "Only with channel card.")
    trade = order.trade_for_update(trade.id)
    if OrderStatus(trade.status) != OrderStatus.pending_payment:
        raise ConflictError("The trade is not awaiting payment",
                            {"status": [OrderStatus(trade.status).value]})
    if trade.payable <= 0:
        raise ConflictError("Nothing to pay", {"payable": [f"{trade.payable:.2f}"]})
    payment = Payment(trade_id=trade.id, out_trade_no=number("P"), channel=gateway.channel,
                      amount=trade.payable, currency=CURRENCY, status=PaymentStatus.pending,
                      refunded_amount=Decimal("0.00"), created_at=now())
    if at_once:     # the card first: refused (409), nothing of the attempt is written
        charged = gateway.charge(payment.out_trade_no, card_no, trade.member_id, trade.payable)
    db.session.add(payment)
    db.session.flush()
    if at_once:
        _paid_at_once(payment, charged, card_no)
        return payment, None
    pay_url = gateway.create_payment(gateways.PaymentRequest(
        out_trade_no=payment.out_trade_no, amount=payment.amount, currency=CURRENCY,
        subject=f"Trade {trade.trade_no}"))
    publish("payment.created", {"payment_id": payment.id, "trade_id": trade.id})
    return payment, pay_url


def _paid_at_once(payment: Payment, transaction_id: str, card_no: str) -> None:
    """The card was debited the whole payable (under its row lock): the payment succeeds and
    pays the trade as a gateway's notice would."""
    publish("payment.created", {"payment_id": payment.id, "trade_id": payment.trade_id})
    payment.transaction_id = transaction_id
    payment.payer_account = masked_account(card_no.strip())
    payment.status = PaymentStatus.succeeded
    payment.paid_at = now()
    applied = _apply_to_trade(payment)
    publish("payment.succeeded", {"payment_id": payment.id, "trade_id": payment.trade_id,
                                  "amount": f"{payment.amount:.2f}", "applied": applied,
                                  "payer": risk.payer_digest(card_no)})


def _payment_for_update(out_trade_no: str, channel: str) -> Payment:
    payment = db.session.scalars(select(Payment).where(
        Payment.out_trade_no == out_trade_no).with_for_update()).one_or_none()
    if payment is None or payment.channel != channel:
        raise NotFoundError("Unknown payment", {"out_trade_no": ["No such payment."]})
    db.session.refresh(payment)
    return payment


def handle_payment_notice(channel: str, body: bytes, headers) -> Payment:
    """A gateway's payment notification, verified. Raises BadSignature (401), NotFoundError
    (404), AmountMismatch (422, after flagging the payment: the caller commits it)."""
    gateway = gateways.gateway_notifying(channel)
    notice = gateway.payment_notice(body, headers)
    payment = _payment_for_update(notice.out_trade_no, channel)
    payment.notification, payment.notified_at = notice.raw, now()
    status = PaymentStatus(payment.status)
    if status in SETTLED:
        return payment                      # a repeat: its effect happened once already
    if notice.amount != payment.amount or notice.currency != payment.currency:
        _flag(payment, f"Notified {notice.amount} {notice.currency}, "
                       f"expected {payment.amount:.2f} {payment.currency}")
        raise AmountMismatch("Amount or currency does not match the payment", {
            "amount": [f"Expected {payment.amount:.2f} {payment.currency}."]})
    if status == PaymentStatus.flagged:     # a matching notification after a bad one
        payment.flag_reason = None
    payment.transaction_id = notice.transaction_id
    payment.payer_account = masked_account(notice.payer_account)
    if not notice.succeeded:
        payment.status = PaymentStatus.failed
        publish("payment.failed", {"payment_id": payment.id, "trade_id": payment.trade_id})
        return payment
    payment.status = PaymentStatus.succeeded
    payment.paid_at = notice.paid_at or now()
    applied = _apply_to_trade(payment)
    # risk control counts payer accounts shared by members: a digest, never the account
    publish("payment.succeeded", {"payment_id": payment.id, "trade_id": payment.trade_id,
                                  "amount": f"{payment.amount:.2f}", "applied": applied,
                                  "payer": risk.payer_digest(notice.payer_account)})
    return payment


def _flag(payment: Payment, reason: str) -> None:
    if PaymentStatus(payment.status) != PaymentStatus.flagged:
        payment.status = PaymentStatus.flagged
        publish("payment.flagged", {"payment_id": payment.id, "trade_id": payment.trade_id,
                                    "reason": reason})
    payment.flag_reason = reason[:255]


def _apply_to_trade(payment: Payment) -> bool:
    """The money pays the trade if it still awaits it (True); otherwise it goes back in
    full (False)."""
    trade = order.trade_for_update(payment.trade_id)
    if OrderStatus(trade.status) == OrderStatus.pending_payment:
        order.pay_locked(trade, f"Paid through {payment.channel}: {payment.out_trade_no}")
        return True
    request_refund(payment, payment.amount,
                   f"Trade {OrderStatus(trade.status).value} when this payment arrived")
    return False


# -- refunds ----------------------------------------------------------------------------------

def refundable(payment: Payment) -> Decimal:
    return payment.amount - payment.refunded_amount


def request_refund(payment: Payment, amount: Decimal, reason: str) -> PaymentRefund:
    """Give `amount` of a succeeded payment back: reserved at once (never more than what is
    left, whatever runs concurrently), sent to the gateway after the commit."""
    if not isinstance(amount, Decimal) or amount <= 0:
        raise HoutaiError("A positive amount", {"amount": ["More than 0.00."]})
    taken = db.session.execute(
        update(Payment).where(Payment.id == payment.id,
                              Payment.status == PaymentStatus.succeeded,
                              Payment.refunded_amount + amount <= Payment.amount)
        .values(refunded_amount=Payment.refunded_amount + amount)
        .returning(Payment.refunded_amount)
        .execution_options(synchronize_session=False)).one_or_none()
    if taken is None:
        db.session.refresh(payment)
        raise ConflictError("More than the payment has left to refund", {
            "amount": [f"Refundable: {refundable(payment):.2f}."]})
    refund = PaymentRefund(payment_id=payment.id, out_refund_no=number("R"), amount=amount,
                           reason=reason[:255], status=RefundStatus.pending, attempts=0,
                           created_at=now())
    db.session.add(refund)
    db.session.flush()
    db.session.refresh(payment)
    publish("payment.refund_requested", {"refund_id": refund.id, "payment_id": payment.id,
                                         "amount": f"{amount:.2f}"})
    enqueue_after_commit(db.session, SUBMIT_REFUND_JOB, refund.id,
                         job_id=f"refund-{refund.id}-{refund.attempts}")
    return refund


def _refund_for_update(refund_id: int) -> PaymentRefund | None:
    return db.session.scalars(select(PaymentRefund).where(PaymentRefund.id == refund_id)
                              .with_for_update()).one_or_none()


def submit_refund(refund_id: int) -> PaymentRefund | None:
    """Hand a pending refund to its gateway (a job: idempotent; the gateway dedupes by
    `out_refund_no`). A failure to reach it counts an attempt; after MAX_REFUND_ATTEMPTS the
    refund is `failed` and waits for a person."""
    refund = _refund_for_update(refund_id)
    if refund is None or RefundStatus(refund.status) != RefundStatus.pending:
        return refund
    payment = refund.payment
    gateway = gateways.gateway(payment.channel)
    refund.attempts += 1
    try:
        refund.gateway_refund_id = gateway.refund(
            payment.out_trade_no, refund.out_refund_no, refund.amount, payment.currency)
    except Exception as error:  # noqa: BLE001 - any gateway failure is retried, then surfaced
        refund.last_error = f"{type(error).__name__}: {error}"[:2000]
        if refund.attempts >= MAX_REFUND_ATTEMPTS:
            _refund_failed(refund, payment)
        db.session.commit()
        return refund
    if getattr(gateway, "settles_at_once", False):
        _refund_succeeded(refund, now())    # the money is back already: no notification
    else:
        refund.status = RefundStatus.submitted
    db.session.commit()
    return refund


def _refund_succeeded(refund: PaymentRefund, finished_at) -> None:
    refund.status = RefundStatus.succeeded
    refund.finished_at = finished_at
    publish("payment.refunded", {"refund_id": refund.id, "payment_id": refund.payment_id,
                                 "amount": f"{refund.amount:.2f}"})


def _refund_failed(refund: PaymentRefund, payment: Payment) -> None:
    """The refund did not happen: its amount is refundable again, and a person is told."""
    refund.status = RefundStatus.failed
    refund.finished_at = now()
    db.session.execute(update(Payment).where(Payment.id == payment.id)
                       .values(refunded_amount=Payment.refunded_amount - refund.amount)
                       .execution_options(synchronize_session=False))
    publish("payment.refund_failed", {"refund_id": refund.id, "payment_id": payment.id})


def handle_refund_notice(channel: str, body: bytes, headers) -> PaymentRefund:
    """A gateway's refund notification, verified; repeats have no further effect."""
    gateway = gateways.gateway_notifying(channel)
    notice = gateway.refund_notice(body, headers)
    refund = db.session.scalars(select(PaymentRefund).where(
        PaymentRefund.out_refund_no == notice.out_refund_no).with_for_update()).one_or_none()
    if refund is None or refund.payment.channel != channel:
        raise NotFoundError("Unknown refund", {"out_refund_no": ["No such refund."]})
    db.session.refresh(refund)
    refund.notification = notice.raw
    if RefundStatus(refund.status) in (RefundStatus.succeeded, RefundStatus.failed):
        return refund
    if notice.amount != refund.amount:
        raise AmountMismatch("Amount does not match the refund", {
            "amount": [f"Expected {refund.amount:.2f}."]})
    refund.gateway_refund_id = notice.refund_id
    if notice.succeeded:
        _refund_succeeded(refund, notice.refunded_at or now())
    else:
        _refund_failed(refund, refund.payment)
    return refund


@scheduled("payments.retry_refunds")
def retry_refunds() -> int:
    """Pending refunds whose gateway call failed, or whose job was lost: tried again."""
    lost = now() - timedelta(minutes=5)
    ids = list(db.session.scalars(select(PaymentRefund.id).where(
        PaymentRefund.status == RefundStatus.pending,
        or_(PaymentRefund.attempts > 0, PaymentRefund.created_at <= lost))
        .order_by(PaymentRefund.id)))
    db.session.commit()
    for refund_id in ids:
        submit_refund(refund_id)
    return len(ids)
