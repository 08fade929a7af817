"""财务管理 rules: the double-entry journal and the daily reconciliation.

Every money fact is posted by a subscriber of the event that announces it, in the subscriber's
own transaction (its delivery row makes it exactly-once; `JournalEntry.source` guards it again):

    trade.paid              Dr cash (1002 at a gateway, 1001 offline)    Cr 2201 per shop (what
                            or 2203 (paid with a card)                     the shop is owed)
                                                                         Cr 6001 per shop (the
                                                                           platform's commission)
    trade.paid, per order   Dr 6601 (platform-funded discount, the       Cr 2201 per shop (a
      with a platform         `subsidy` entry; no commission on it)        subsidy the platform
      discount                                                             owes the shop)
    order.closed (fully     Dr 2201 (the subsidy taken back)             Cr 6601
      refunded, subsidised)
    card.issued,            Dr 1001 (the buyer paid us for the card)     Cr 2203 (stored value:
      card.topped_up                                                       owed to card holders)
    payment.succeeded,      Dr 1002                                      Cr 2202 (money to give
      not applied                                                          back: late or twice)
    payment.refunded        after-sales: Dr 2201 and 6001 (the shop's    Cr 1002 (2203 for a
                            and the commission's share)                    card: back onto it)
                            otherwise:   Dr 2202
    after_sale.refunded     (offline trades) as payment.refunded         Cr 1001
    settlement.paid         Dr 2201 (the shop's statement)               Cr 1003 (the bank)
    receipt.confirmed       Dr 1405 (inventory, at the purchase order's  Cr 2204 per shop (owed
      (a purchase order)      prices; services/purchasing.py)              to its supplier)
    order.completed         Dr 5401 (cost of consigned goods sold, at    Cr 2204 per shop
      (consigned lines)       the consignor's price)
    supplier_statement.paid Dr 2204 per shop (the supplier's statement)  Cr 1003 (the bank)

Commission is the shop's `commission_rate` of what the buyer paid for its order (to the cent,
half up), and is given back in the same proportion on refunds. Money on cards is a liability
(2203) until spent: a trade paid with a card moves it to the shops' payables. Balances are sums
of lines; nothing is typed in, an entry is never edited, only reversed.
"""
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from models.card import Card, CardLedger
from models.finance import (JournalEntry, JournalLine, ReconciliationItem, ReconciliationRun,
                            Settlement, SettlementItem)
from models.order import Order, Trade
from models.payment import Payment, PaymentRefund, PaymentStatus, RefundStatus
from models.shop import Shop
from services import gateways
from services.gateways.card import CHANNEL as CARD_CHANNEL
from services.actor import is_row_id, visible_row
from services.clock import business_date, business_day_bounds, now
from services.errors import ConflictError, NotFoundError, ValidationFailed
from services.events import publish, subscribe
from services.numbering import number
from services.scheduler import scheduled

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
ACCOUNTS = {
    "1001": "Cash received offline",
    "1002": "Cash at payment gateways",
    "1003": "Bank",
    "2201": "Merchant payables",
    "2202": "Receipts to give back",
    "2203": "Stored value on cards",
    "2204": "Supplier payables",
    "1405": "Inventory",
    "5401": "Cost of consigned goods sold",
    "6001": "Commission revenue",
    "6601": "Platform marketing expense",
}
OFFLINE_CASH, GATEWAY_CASH, PAYABLES, TO_GIVE_BACK, COMMISSION = \
    "1001", "1002", "2201", "2202", "6001"
STORED_VALUE, MARKETING_EXPENSE = "2203", "6601"
SUBSIDY = "subsidy"     # the journal entry kind of a platform-funded discount owed to a shop


class UnbalancedEntry(ValueError):
    """Debits and credits differ: a posting rule is wrong (never stored)."""


def post(kind: str, lines: list[tuple[str, int | None, Decimal, Decimal]], *,
         reference: str | None = None, memo: str | None = None, source: str | None = None,
         occurred_at: datetime | None = None, reverses: JournalEntry | None = None
         ) -> JournalEntry | None:
    """Record one entry of (account, shop_id, debit, credit) lines; zero lines are dropped.
    Refuses an unbalanced entry; a `source` already posted answers None (posted once)."""
    lines = [(a, s, d, c) for a, s, d, c in lines if d or c]
    if not lines:
        return None
    if any(account not in ACCOUNTS for account, *_ in lines):
        raise UnbalancedEntry(f"unknown account in {lines}")
    debit = sum((d for _, _, d, _ in lines), ZERO)
    credit = sum((c for _, _, _, c in lines), ZERO)
    if debit != credit:
        raise UnbalancedEntry(f"{kind} {reference}: debit {debit} ≠ credit {credit}")
    if source is not None and db.session.scalar(
            select(JournalEntry.id).where(JournalEntry.source == source)) is not None:
        return None
    entry = JournalEntry(entry_no=number("J"), kind=kind, reference=reference, memo=memo,
                         source=source, reverses_id=reverses.id if reverses else None,
                         occurred_at=occurred_at or now(), created_at=now())
    for account, shop_id, d, c in lines:
        entry.lines.append(JournalLine(account=account, shop_id=shop_id, debit=d, credit=c))
    db.session.add(entry)
    db.session.flush()
    return entry


def reverse(entry_id: int, memo: str) -> JournalEntry:
    """Undo an entry with its mirror image (the original stays as it was)."""
    entry = db.session.get(JournalEntry, entry_id)
    if entry is None:
        raise NotFoundError("Not found")
    if db.session.scalar(select(JournalEntry.id).where(JournalEntry.reverses_id == entry.id)):
        raise ConflictError("Already reversed", {"entry": [entry.entry_no]})
    return post(f"{entry.kind}.reversal", [(line.account, line.shop_id, line.credit,
                                            line.debit) for line in entry.lines],
                reference=entry.reference, memo=memo, reverses=entry)


def balance(account: str, shop_id: int | None = None) -> Decimal:
    """Debits minus credits of an account (of one shop when given)."""
    query = select(func.coalesce(func.sum(JournalLine.debit - JournalLine.credit), 0)).where(
        JournalLine.account == account)
    if shop_id is not None:
        query = query.where(JournalLine.shop_id == shop_id)
    return Decimal(db.session.scalar(query)).quantize(CENT)


def balances() -> dict:
    """Every account's balance, and per shop what it is owed and the commission it paid (as
    positive amounts): two grouped sums of the lines."""
    totals = dict(db.session.execute(
        select(JournalLine.account, func.sum(JournalLine.debit - JournalLine.credit))
        .group_by(JournalLine.account)).all())
    accounts = [{"account": code, "name": name,
                 "balance": f"{Decimal(totals.get(code) or 0):.2f}"}
                for code, name in ACCOUNTS.items()]
    shops: dict = {}
    for shop_id, account, amount in db.session.execute(
            select(JournalLine.shop_id, JournalLine.account,
                   func.sum(JournalLine.debit - JournalLine.credit))
            .where(JournalLine.shop_id.is_not(None),
                   JournalLine.account.in_([PAYABLES, COMMISSION]))
            .group_by(JournalLine.shop_id, JournalLine.account)):
        shop = shops.setdefault(shop_id, {"shop_id": shop_id, "payable": "0.00",
                                          "commission": "0.00"})
        shop["payable" if account == PAYABLES else "commission"] = f"{-Decimal(amount):.2f}"
    return {"accounts": accounts, "shops": [shops[k] for k in sorted(shops)]}


def commission_of(shop: Shop, amount: Decimal) -> Decimal:
    return (amount * Decimal(shop.commission_rate)).quantize(CENT, rounding=ROUND_HALF_UP)


# -- posting rules ------------------------------------------------------------------------------

def _shop_lines(order: Order, amount: Decimal, side: str) -> list:
    """What `amount` of an order means for its shop: the shop's part and the commission, on
    the credit side (a payment) or the debit side (a refund)."""
    shop = db.session.get(Shop, order.shop_id)
    commission = commission_of(shop, amount)
    if side == "credit":
        return [(PAYABLES, shop.id, ZERO, amount - commission),
                (COMMISSION, shop.id, ZERO, commission)]
    return [(PAYABLES, shop.id, amount - commission, ZERO),
            (COMMISSION, shop.id, commission, ZERO)]


def _received_into(channel: str) -> str:
    """The account money paid through `channel` is in: a card's is stored value."""
    return STORED_VALUE if channel == CARD_CHANNEL else GATEWAY_CASH


@subscribe("trade.paid", "finance.post_trade_paid")
def _trade_paid(payload: dict) -> None:
    trade = db.session.get(Trade, payload["trade_id"])
    channels = set(db.session.scalars(select(Payment.channel).where(
        Payment.trade_id == trade.id, Payment.status == PaymentStatus.succeeded)))
    # a card payment succeeds only by paying its trade (never late), so when there is one it
    # is what paid the trade; other succeeded attempts were late money, posted apart
    if CARD_CHANNEL in channels:
        cash, memo = STORED_VALUE, "Paid with a card"
    else:
        cash = GATEWAY_CASH if channels else OFFLINE_CASH
        memo = "Paid" + (" through a gateway" if channels else " offline")
    lines = [(cash, None, trade.payable, ZERO)]
    for order in trade.orders:
        lines += _shop_lines(order, order.payable, "credit")
    post("payment", lines, reference=trade.trade_no, source=f"trade.paid:{trade.id}",
         occurred_at=trade.paid_at, memo=memo)


@subscribe("trade.paid", "finance.post_platform_discounts")
def _platform_discounts(payload: dict) -> None:
    """What the platform funds of each order's discount, owed to its shop (no commission)."""
    trade = db.session.get(Trade, payload["trade_id"])
    for order in trade.orders:
        if order.platform_discount and order.platform_discount > 0:
            post(SUBSIDY, [(MARKETING_EXPENSE, None, order.platform_discount, ZERO),
                           (PAYABLES, order.shop_id, ZERO, order.platform_discount)],
                 reference=order.order_no, source=f"subsidy:{order.id}",
                 occurred_at=trade.paid_at, memo="Platform-funded discount owed to the shop")


@subscribe("order.closed", "finance.reverse_platform_discount")
def _platform_discount_closed(payload: dict) -> None:
    """A fully refunded order was not sold: the subsidy owed for it is taken back (partial
    refunds keep it: the goods kept were sold at the subsidised price)."""
    order = db.session.get(Order, payload["order_id"])
    posted = db.session.scalar(select(JournalEntry.id).where(
        JournalEntry.source == f"subsidy:{order.id}"))
    if posted is None:
        return
    post(SUBSIDY, [(PAYABLES, order.shop_id, order.platform_discount, ZERO),
                   (MARKETING_EXPENSE, None, ZERO, order.platform_discount)],
         reference=order.order_no, source=f"subsidy.closed:{order.id}", occurred_at=now(),
         memo="Platform-funded discount of a fully refunded order taken back")


@subscribe("card.issued", "finance.post_card_issued")
@subscribe("card.topped_up", "finance.post_card_topped_up")
def _card_loaded(payload: dict) -> None:
    """Money paid onto a card: cash in, owed to the card's holder until spent."""
    row = db.session.get(CardLedger, payload["ledger_id"])
    post("card", [(OFFLINE_CASH, None, row.delta, ZERO), (STORED_VALUE, None, ZERO, row.delta)],
         reference=db.session.get(Card, row.card_id).card_no,
         source=f"card.{row.reason}:{row.id}", occurred_at=row.created_at,
         memo=f"Card {row.reason.replace('_', '-')} {row.reference}")


@subscribe("payment.succeeded", "finance.post_unapplied_payment")
def _payment_succeeded(payload: dict) -> None:
    if payload.get("applied", True):
        return
    payment = db.session.get(Payment, payload["payment_id"])
    post("payment.unapplied", [(_received_into(payment.channel), None, payment.amount, ZERO),
                               (TO_GIVE_BACK, None, ZERO, payment.amount)],
         reference=payment.out_trade_no, source=f"payment.unapplied:{payment.id}",
         occurred_at=payment.paid_at, memo="Arrived for a trade no longer awaiting it")


def _after_sale_of_refund(refund_id: int):
    from models.after_sale import AfterSale

    return db.session.scalars(select(AfterSale).where(
        AfterSale.payment_refund_id == refund_id)).one_or_none()


@subscribe("payment.refunded", "finance.post_refund")
def _payment_refunded(payload: dict) -> None:
    refund = db.session.get(PaymentRefund, payload["refund_id"])
    request = _after_sale_of_refund(refund.id)
    if request is not None:
        lines = _shop_lines(db.session.get(Order, request.order_id), refund.amount, "debit")
    else:
        lines = [(TO_GIVE_BACK, None, refund.amount, ZERO)]
    post("refund", lines + [(_received_into(refund.payment.channel), None, ZERO, refund.amount)],
         reference=refund.out_refund_no, source=f"payment.refunded:{refund.id}",
         occurred_at=refund.finished_at)


@subscribe("after_sale.refunded", "finance.post_offline_refund")
def _after_sale_refunded(payload: dict) -> None:
    from models.after_sale import AfterSale

    request = db.session.get(AfterSale, payload["after_sale_id"])
    if request is None or request.payment_refund_id is not None or request.amount == 0:
        return   # gateway refunds are posted when the gateway confirms them
    lines = _shop_lines(db.session.get(Order, request.order_id), request.amount, "debit")
    post("refund", lines + [(OFFLINE_CASH, None, ZERO, request.amount)],
         reference=request.after_sale_no, source=f"after_sale.refunded:{request.id}",
         occurred_at=request.finished_at, memo="Refunded outside the gateways")


# -- daily reconciliation -----------------------------------------------------------------------

def reconcile(day: date) -> ReconciliationRun:
    """Compare one business day: every gateway payment and refund against the gateway's
    statement, and every trade paid through a gateway against its payments. Each mismatch is
    an item with its kind; a day without any is `clean`. Running a day again replaces its
    unresolved items."""
    start, end = business_day_bounds(day)
    items: list[dict] = []
    checked = 0
    theirs = {}
    for channel in gateways.channels():
        for line in gateways.gateway(channel).statement(day):
            theirs[(line.kind, line.out_refund_no or line.out_trade_no)] = line
    payments = db.session.scalars(select(Payment).where(
        Payment.paid_at >= start, Payment.paid_at < end)).all()
    for payment in payments:
        checked += 1
        _compare(items, "payment", payment.out_trade_no, payment.amount,
                 PaymentStatus(payment.status) == PaymentStatus.succeeded,
                 theirs.pop(("payment", payment.out_trade_no), None))
    refunds = db.session.scalars(select(PaymentRefund).where(
        PaymentRefund.finished_at >= start, PaymentRefund.finished_at < end)).all()
    for refund in refunds:
        checked += 1
        _compare(items, "refund", refund.out_refund_no, refund.amount,
                 RefundStatus(refund.status) == RefundStatus.succeeded,
                 theirs.pop(("refund", refund.out_refund_no), None))
    for (kind, reference), line in sorted(theirs.items()):
        if line.status == "succeeded":
            checked += 1
            items.append({"kind": f"{kind}_missing", "reference": reference,
                          "ours": None, "theirs": f"{line.amount:.2f}",
                          "detail": f"The gateway {kind} {reference} is not succeeded here"})
    checked += _trades_against_payments(items, start, end)
    return _store_run(day, checked, items)


def _compare(items, kind, reference, amount, succeeded_here, line) -> None:
    if line is None or line.status != "succeeded":
        if succeeded_here:
            items.append({"kind": f"{kind}_unknown_to_gateway", "reference": reference,
                          "ours": f"{amount:.2f}", "theirs": None,
                          "detail": f"Succeeded here, not in the gateway's statement"})
        return
    if not succeeded_here:
        items.append({"kind": f"{kind}_missing", "reference": reference, "ours": None,
                      "theirs": f"{line.amount:.2f}",
                      "detail": f"The gateway's {kind} is not succeeded here"})
    elif line.amount != amount:
        items.append({"kind": f"{kind}_amount_differs", "reference": reference,
                      "ours": f"{amount:.2f}", "theirs": f"{line.amount:.2f}",
                      "detail": "Amounts differ"})


def _trades_against_payments(items, start, end) -> int:
    """Trades paid that day that have gateway attempts: paid by exactly one succeeded attempt
    of their payable; offline trades (no attempt) are the bank's business."""
    trades = db.session.scalars(select(Trade).where(
        Trade.paid_at >= start, Trade.paid_at < end,
        Trade.id.in_(select(Payment.trade_id)))).all()
    succeeded: dict[int, list] = {}
    for p in db.session.scalars(select(Payment).where(
            Payment.trade_id.in_([t.id for t in trades]),
            Payment.status == PaymentStatus.succeeded)):
        succeeded.setdefault(p.trade_id, []).append(p)
    for trade in trades:
        paid = succeeded.get(trade.id, [])
        applied = sum((p.amount - p.refunded_amount if len(paid) > 1 else p.amount
                       for p in paid), ZERO)
        if not paid:
            items.append({"kind": "trade_paid_without_payment", "reference": trade.trade_no,
                          "ours": f"{trade.payable:.2f}", "theirs": None,
                          "detail": "Paid, but no gateway attempt succeeded"})
        elif applied != trade.payable:
            items.append({"kind": "trade_amount_differs", "reference": trade.trade_no,
                          "ours": f"{trade.payable:.2f}", "theirs": f"{applied:.2f}",
                          "detail": "The trade's payable and what its payments kept differ"})
    return len(trades)


def _store_run(day: date, checked: int, items: list[dict]) -> ReconciliationRun:
    run = db.session.scalars(select(ReconciliationRun).where(
        ReconciliationRun.day == day)).one_or_none()
    if run is None:
        run = ReconciliationRun(day=day, status="clean", checked=0, mismatches=0,
                                created_at=now())
        db.session.add(run)
    else:
        for item in list(run.items):
            if item.resolved_at is None:
                run.items.remove(item)
                db.session.delete(item)
        run.created_at = now()
    db.session.flush()
    resolved = {(i.kind, i.reference) for i in run.items if i.resolved_at is not None}
    for found in items:
        if (found["kind"], found["reference"]) not in resolved:
            run.items.append(ReconciliationItem(**found))
    run.checked = checked
    run.mismatches = len([i for i in run.items if i.resolved_at is None])
    run.status = "mismatches" if run.mismatches else "clean"
    db.session.flush()
    publish("finance.reconciled", {"day": day.isoformat(), "status": run.status,
                                   "mismatches": run.mismatches})
    return run


def resolve(item_id: int, resolution: str, actor_name: str) -> ReconciliationItem:
    item = db.session.get(ReconciliationItem, item_id)
    if item is None:
        raise NotFoundError("Not found")
    if item.resolved_at is not None:
        raise ConflictError("Already resolved", {"resolved_at": [item.resolved_at.isoformat()]})
    item.resolved_at, item.resolved_by, item.resolution = now(), actor_name, resolution[:255]
    item.run.mismatches = max(item.run.mismatches - 1, 0)
    item.run.status = "mismatches" if item.run.mismatches else "clean"
    return item


@scheduled("finance.reconcile")
def reconcile_yesterday() -> int:
    """The tick's daily run: yesterday (business day), once it has no run yet."""
    day = business_date() - timedelta(days=1)
    if db.session.scalar(select(ReconciliationRun.id).where(ReconciliationRun.day == day)):
        return 0
    reconcile(day)
    db.session.commit()
    return 1


# -- merchant settlement ----------------------------------------------------------------------

def settle(shop_id, period_end: date) -> Settlement:
    """A draft statement of what `shop_id` is owed for everything posted up to the end of
    `period_end` (business day) and not yet in a statement: buyers' payments, less commission
    and refunds, plus the platform-funded discounts (`subsidy` entries). Each journal line
    enters one statement only (a concurrent second statement of the same lines fails on the
    unique line and is refused)."""
    from services.actor import ALL_SHOPS, shop_scope_of

    shop = db.session.get(Shop, shop_id) if is_row_id(shop_id) else None
    if shop is None:
        raise ValidationFailed.field("shop_id", "Related record not found.")
    scope = shop_scope_of(Settlement)
    if scope is not ALL_SHOPS and scope != shop.id:
        raise ValidationFailed.field("shop_id", "Must be your own shop.")
    if not isinstance(period_end, date) or period_end >= business_date():
        raise ValidationFailed.field("period_end", "A past business day (YYYY-MM-DD).")
    _, end = business_day_bounds(period_end)
    rows = db.session.execute(
        select(JournalLine, JournalEntry.kind)
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .where(JournalLine.shop_id == shop.id,
               JournalLine.account.in_([PAYABLES, COMMISSION]),
               JournalEntry.occurred_at < end,
               JournalEntry.kind != "settlement",
               JournalLine.id.not_in(select(SettlementItem.journal_line_id)))
        .order_by(JournalLine.id)).all()
    if not rows:
        raise ConflictError("Nothing to settle", {"period_end": ["No unsettled postings."]})
    lines = [line for line, _ in rows]
    bought = [line for line, kind in rows if not kind.startswith(SUBSIDY)]
    subsidies = sum((l.credit - l.debit for l, kind in rows if kind.startswith(SUBSIDY)), ZERO)
    paid = sum((l.credit for l in bought), ZERO)                # payments, both accounts
    refunds = sum((l.debit for l in bought), ZERO)              # refunds, both accounts
    commission = sum((l.credit - l.debit for l in lines if l.account == COMMISSION), ZERO)
    net = sum((l.credit - l.debit for l in lines if l.account == PAYABLES), ZERO)
    if net < 0:
        raise ConflictError("Refunds exceed payments in this period: settle a later period",
                            {"period_end": [f"Net {net:.2f}."]})
    statement = Settlement(settlement_no=number("ST"), shop_id=shop.id, period_end=period_end, paid_by_buyers=paid,
                           platform_discounts=subsidies, commission=commission, refunds=refunds,
                           net=net, status="draft", created_at=now())
    db.session.add(statement)
    db.session.flush()
    db.session.add_all([SettlementItem(settlement_id=statement.id, journal_line_id=l.id)
                        for l in lines])
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ConflictError("These postings are being settled already",
                            {"period_end": ["Try again."]}) from None
    publish("settlement.drafted", {"settlement_id": statement.id, "net": f"{net:.2f}"},
            shop_id=shop.id)
    return statement


def _settlement_for_update(settlement_id) -> Settlement:
    if visible_row(Settlement, settlement_id) is None:
        raise NotFoundError("Not found")
    statement = db.session.scalars(select(Settlement).where(Settlement.id == settlement_id)
                                   .with_for_update()).one()
    db.session.refresh(statement)
    return statement


def approve_settlement(settlement_id, approver: str) -> Settlement:
    statement = _settlement_for_update(settlement_id)
    if statement.status != "draft":
        raise ConflictError("Only a draft is approved", {"status": [statement.status]})
    statement.status, statement.approved_by, statement.approved_at = "approved", approver, now()
    publish("settlement.approved", {"settlement_id": statement.id}, shop_id=statement.shop_id)
    return statement


def pay_settlement(settlement_id, reference) -> Settlement:
    """The bank transfer to the shop was made: posted Dr 2201 / Cr 1003."""
    if not isinstance(reference, str) or not reference.strip() or len(reference) > 64:
        raise ValidationFailed.field("reference", "The bank transfer's reference.")
    statement = _settlement_for_update(settlement_id)
    if statement.status != "approved":
        raise ConflictError("Only an approved statement is paid", {"status": [statement.status]})
    statement.status, statement.paid_at = "paid", now()
    statement.payment_reference = reference.strip()
    publish("settlement.paid", {"settlement_id": statement.id, "net": f"{statement.net:.2f}"},
            shop_id=statement.shop_id)
    return statement


@subscribe("settlement.paid", "finance.post_settlement")
def _settlement_paid(payload: dict) -> None:
    """The transfer to the shop: Dr 2201 (what it was owed) / Cr 1003 (the bank)."""
    statement = db.session.get(Settlement, payload["settlement_id"])
    post("settlement", [(PAYABLES, statement.shop_id, statement.net, ZERO),
                        ("1003", None, ZERO, statement.net)],
         reference=statement.settlement_no, source=f"settlement.paid:{statement.id}",
         occurred_at=statement.paid_at, memo=f"Transfer {statement.payment_reference}")
