"""客服中心 after-sales rules: requests per order line, their state machine and timeline, refund
amounts reserved from what the line was paid (never re-priced, never exceeded), interception
of shipping notices, returns back into stock, and refunds through the payment center.

    refund_only:    requested → approved → refunding → refunded
    return_refund:  requested → approved → return_shipped → received → refunding → refunded
    exchange:       requested → approved → return_shipped → received → closed (resend)
    any open request → closed (withdrawn); requested → rejected

Amounts: a request reserves its `amount` on the line with one conditional UPDATE
(`after_sale_amount + amount <= payable`), so concurrent requests stop exactly at what was
paid; a rejected or withdrawn request gives its reservation back.
"""
from datetime import timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import func, select, update

from app.extensions import db
from models.after_sale import (AfterSale, AfterSaleEvent, AfterSaleKind, AfterSaleStatus)
from models.order import NoticeStatus, Order, OrderLine, OrderStatus, ShippingNotice
from models.payment import Payment, PaymentStatus
from models.product import Category, Spu
from services import inventory, order, payment, risk
from services.actor import current_actor, scope_query, visible_row
from services.clock import now
from services.errors import ConflictError, NotFoundError, ValidationFailed
from services.events import publish, subscribe
from services.numbering import number

ZERO = Decimal("0.00")
MAX_EVIDENCE = 9
# Which kinds an order in each status allows (the after-sales window is checked apart).
KINDS_BY_ORDER_STATUS = {
    OrderStatus.paid: {AfterSaleKind.refund_only},
    OrderStatus.fulfilling: {AfterSaleKind.refund_only},
    OrderStatus.shipped: set(AfterSaleKind),
    OrderStatus.delivered: set(AfterSaleKind),
    OrderStatus.completed: set(AfterSaleKind),
}
FLOW = {
    "approve": ({AfterSaleStatus.requested}, AfterSaleStatus.approved),
    "reject": ({AfterSaleStatus.requested}, AfterSaleStatus.rejected),
    "return_shipped": ({AfterSaleStatus.approved}, AfterSaleStatus.return_shipped),
    "receive": ({AfterSaleStatus.return_shipped}, AfterSaleStatus.received),
    "refund": ({AfterSaleStatus.approved, AfterSaleStatus.received}, AfterSaleStatus.refunding),
    "refunded": ({AfterSaleStatus.refunding}, AfterSaleStatus.refunded),
    "close": ({AfterSaleStatus.requested, AfterSaleStatus.approved,
               AfterSaleStatus.return_shipped, AfterSaleStatus.received},
              AfterSaleStatus.closed),
}
NOT_YET_DELIVERED = {OrderStatus.paid, OrderStatus.fulfilling, OrderStatus.shipped}
UNSHIPPED = {NoticeStatus.pending, NoticeStatus.assigned, NoticeStatus.picking,
             NoticeStatus.packed, NoticeStatus.held}


class IllegalAfterSaleTransition(ConflictError):
    """The request's status (or kind) does not allow this step."""


class OverRefund(ConflictError):
    """More than the line has left to refund; `refundable` says how much is left."""

    def __init__(self, refundable: Decimal):
        super().__init__("More than what remains refundable on this line",
                         {"amount": [f"At most {refundable:.2f}."]})
        self.refundable = refundable


# -- a request ----------------------------------------------------------------------------------

def request(line_id, kind, quantity, amount: Decimal, reason, no_reason: bool = False,
            evidence=None) -> AfterSale:
    """A buyer's request on an order line the caller can see. Refuses (422) a bad body, (409)
    an order or window that does not allow the kind, and (409, OverRefund) an amount above
    what remains refundable on the line."""
    line = _visible_line(line_id)
    kind = _kind(kind)
    reason = _reason(reason, no_reason)
    evidence = _evidence(evidence)
    target = db.session.get(Order, line.order_id)
    _check_window(target, kind, no_reason)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or \
            not 0 < quantity <= line.quantity:
        raise ValidationFailed.field("quantity", f"A whole number from 1 to {line.quantity}.")
    if kind == AfterSaleKind.refund_only and OrderStatus(target.status) in NOT_YET_DELIVERED:
        unshipped = line.quantity - shipped_quantity(target, line.sku_id)
        if quantity > unshipped:
            raise ConflictError("Shipped goods are returned, not refunded only", {
                "quantity": [f"{unshipped} not shipped yet; return the rest."]})
    if no_reason:
        _check_no_reason(line)
    if kind == AfterSaleKind.exchange:
        amount = ZERO
    _check_amount(amount)
    if amount > refundable_on(line):
        raise OverRefund(refundable_on(line))
    verdict = risk.assess("refund_requested", member_id=target.member_id, amount=amount)
    if verdict.blocked:     # the decision is kept; the request is not made
        raise risk.RiskBlocked()
    _reserve(line, amount)
    item = AfterSale(after_sale_no=number("AS"), shop_id=line.shop_id, order_id=line.order_id,
                     order_line_id=line.id, member_id=target.member_id, kind=kind,
                     quantity=quantity, amount=amount, reason=reason, no_reason=no_reason,
                     evidence=evidence, status=AfterSaleStatus.requested, held_notice_ids=[],
                     created_at=now())
    db.session.add(item)
    db.session.flush()
    _on_timeline(item, None, AfterSaleStatus.requested, reason)
    risk.link(verdict, f"after_sale:{item.id}")
    if kind == AfterSaleKind.refund_only:
        _intercept(item, target, line)
    publish("after_sale.requested", {"after_sale_id": item.id, "order_id": item.order_id,
                                     "kind": kind.value, "amount": f"{amount:.2f}"},
            shop_id=item.shop_id)
    return item


def _visible_line(line_id) -> OrderLine:
    line = visible_row(OrderLine, line_id)
    if line is None:
        raise ValidationFailed.field("order_line_id", "Related record not found.")
    return line


def _kind(kind) -> AfterSaleKind:
    try:
        return AfterSaleKind(kind)
    except ValueError:
        raise ValidationFailed.field("kind", "One of: refund_only, return_refund, exchange.") \
            from None


def _reason(reason, no_reason: bool) -> str:
    if no_reason and (reason is None or (isinstance(reason, str) and not reason.strip())):
        return "No reason (7-day return)"
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 255:
        raise ValidationFailed.field("reason", "Required, at most 255 characters.")
    return reason.strip()


def _evidence(evidence) -> list[int]:
    evidence = evidence or []
    if not isinstance(evidence, list) or len(evidence) > MAX_EVIDENCE or not all(
            isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in evidence):
        raise ValidationFailed.field("evidence", f"Up to {MAX_EVIDENCE} uploaded file ids.")
    from models.storage import UploadedFile

    found = set(db.session.scalars(scope_query(select(UploadedFile.id), UploadedFile).where(
        UploadedFile.id.in_(evidence)))) if evidence else set()
    if found != set(evidence):
        raise ValidationFailed.field("evidence", "Related record not found.")
    return evidence


def _check_window(target: Order, kind: AfterSaleKind, no_reason: bool) -> None:
    """Kinds per order status; after delivery, AFTER_SALE_DAYS for any request and 7 days
    (NO_REASON_RETURN_DAYS) for a return without reason."""
    status = OrderStatus(target.status)
    allowed = KINDS_BY_ORDER_STATUS.get(status, set())
    if kind not in allowed:
        raise IllegalAfterSaleTransition(
            f"An order that is {status.value} allows no {kind.value} request",
            {"kind": [f"Allowed now: {', '.join(sorted(k.value for k in allowed)) or 'none'}."]})
    if no_reason and kind != AfterSaleKind.return_refund:
        raise ValidationFailed.field("no_reason",
                                     "Only a return and refund can be without reason.")
    if target.delivered_at is None:
        return
    days = current_app.config.get("NO_REASON_RETURN_DAYS" if no_reason else "AFTER_SALE_DAYS")
    if now() > target.delivered_at + timedelta(days=days):
        raise IllegalAfterSaleTransition("The after-sales window has closed", {
            "order_line_id": [f"{days} days after delivery."]})


def _check_no_reason(line: OrderLine) -> None:
    """Categories marked exempt (and those below them) take no return without reason."""
    spu = db.session.get(Spu, line.spu_id)
    category = db.session.get(Category, spu.category_id) if spu else None
    if category is None:
        return
    ids = [int(part) for part in category.path.strip("/").split("/") if part.isdigit()]
    exempt = db.session.scalar(select(Category.id).where(
        Category.id.in_(ids or [category.id]), Category.no_reason_return_exempt.is_(True))
        .limit(1))
    if exempt is not None:
        raise ValidationFailed.field("no_reason", "This category is exempt from 7-day returns "
                                                  "without reason.")


def shipped_quantity(target: Order, sku_id: int) -> int:
    """Units of a SKU that left in shipped notices (or all of them once the order shipped
    without notices, e.g. delivered service goods)."""
    return sum(int(part["quantity"]) for notice in target.notices
               if NoticeStatus(notice.status) == NoticeStatus.shipped
               for part in notice.lines if part["sku_id"] == sku_id)


def refundable_on(line: OrderLine) -> Decimal:
    return line.payable - line.after_sale_amount


def _check_amount(amount) -> None:
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount < 0 or \
            amount != amount.quantize(Decimal("0.01")):
        raise ValidationFailed.field("amount", "An amount such as \"12.34\".")


def _reserve(line: OrderLine, amount) -> None:
    _check_amount(amount)
    if amount == 0:
        return
    taken = db.session.execute(
        update(OrderLine).where(OrderLine.id == line.id,
                                OrderLine.after_sale_amount + amount <= OrderLine.payable)
        .values(after_sale_amount=OrderLine.after_sale_amount + amount)
        .returning(OrderLine.after_sale_amount)
        .execution_options(synchronize_session=False)).one_or_none()
    if taken is None:
        db.session.refresh(line)
        raise OverRefund(refundable_on(line))
    db.session.refresh(line)


def _give_back(item: AfterSale) -> None:
    """A request that ends without a refund frees what it reserved on the line."""
    if item.amount > 0:
        db.session.execute(update(OrderLine).where(OrderLine.id == item.order_line_id)
                           .values(after_sale_amount=OrderLine.after_sale_amount - item.amount)
                           .execution_options(synchronize_session=False))


# -- interception ---------------------------------------------------------------------------------

def _intercept(item: AfterSale, target: Order, line: OrderLine) -> None:
    """Refund only before shipping: the notices carrying the line stop (held) until the
    request ends."""
    held = []
    for notice_id in sorted(n.id for n in target.notices):
        notice = order.notice_for_update(notice_id)   # a concurrent request may hold it now
        status = NoticeStatus(notice.status)
        if status in UNSHIPPED and status != NoticeStatus.held and \
                any(part["sku_id"] == line.sku_id for part in notice.lines):
            order.move_notice(notice.id, "hold", f"After-sale {item.after_sale_no}")
            held.append(notice.id)
    item.held_notice_ids = held


def _release_holds(item: AfterSale) -> None:
    """The request's held notices go on, unless another open refund-only request of the order
    still needs them stopped: the hold passes to it."""
    for notice_id in item.held_notice_ids or []:
        notice = order.notice_for_update(notice_id)
        if NoticeStatus(notice.status) != NoticeStatus.held or \
                not (notice.hold_reason or "").endswith(item.after_sale_no):
            continue
        heir = db.session.scalars(select(AfterSale).where(
            AfterSale.order_id == item.order_id, AfterSale.id != item.id,
            AfterSale.kind == AfterSaleKind.refund_only,
            AfterSale.status.in_([AfterSaleStatus.requested, AfterSaleStatus.approved,
                                  AfterSaleStatus.refunding])).order_by(AfterSale.id)).first()
        if heir is None:
            order.release_notice(notice_id)
        else:
            notice.hold_reason = f"After-sale {heir.after_sale_no}"
            heir.held_notice_ids = sorted(set(heir.held_notice_ids or []) | {notice_id})


def _take_out_refunded(item: AfterSale) -> None:
    """A refund-only request refunded before shipping: its units leave the held notices (their
    stock is released); an emptied notice is cancelled, the others go on."""
    line = db.session.get(OrderLine, item.order_line_id)
    left = item.quantity
    for notice_id in item.held_notice_ids or []:
        notice = order.notice_for_update(notice_id)
        if NoticeStatus(notice.status) != NoticeStatus.held or left == 0:
            continue
        parts = [dict(part) for part in notice.lines]
        for part in parts:
            if part["sku_id"] == line.sku_id and left:
                taken = min(int(part["quantity"]), left)
                part["quantity"] = int(part["quantity"]) - taken
                left -= taken
                _release_stock(notice, line.sku_id, taken, item.after_sale_no)
        notice.lines = [part for part in parts if part["quantity"] > 0]
        if notice.lines:
            order.release_notice(notice.id)
        else:
            notice.status = NoticeStatus.cancelled
            notice.held_from = None
            publish("shipping_notice.cancelled", {"notice_id": notice.id,
                                                  "order_id": notice.order_id},
                    shop_id=notice.shop_id)


def _release_stock(notice: ShippingNotice, sku_id: int, quantity: int, reference: str) -> None:
    from models.order import OrderReservation

    rows = db.session.scalars(select(OrderReservation).where(
        OrderReservation.order_id == notice.order_id, OrderReservation.sku_id == sku_id,
        OrderReservation.warehouse_id == notice.warehouse_id,
        OrderReservation.released.is_(False)).order_by(OrderReservation.id)).all()
    for row in rows:
        if quantity == 0:
            break
        piece = min(row.quantity, quantity)
        inventory.release([inventory.Reservation(row.stock_id, row.sku_id, row.warehouse_id,
                                                 piece)], reference)
        row.quantity -= piece
        row.released = row.quantity == 0
        quantity -= piece


# -- steps --------------------------------------------------------------------------------------

def visible(after_sale_id) -> AfterSale:
    item = visible_row(AfterSale, after_sale_id)
    if item is None:
        raise NotFoundError("Not found")
    return item


def _for_update(after_sale_id) -> AfterSale:
    visible(after_sale_id)
    item = db.session.scalars(select(AfterSale).where(AfterSale.id == after_sale_id)
                              .with_for_update()).one()
    db.session.refresh(item)
    return item


def _move(item: AfterSale, step: str, note: str | None = None) -> AfterSale:
    sources, target = FLOW[step]
    current = AfterSaleStatus(item.status)
    if current not in sources:
        raise IllegalAfterSaleTransition(f"Cannot {step} a request that is {current.value}",
                                         {"status": [current.value]})
    item.status = target
    _on_timeline(item, current, target, note)
    publish(f"after_sale.{target.value}", {"after_sale_id": item.id, "order_id": item.order_id},
            shop_id=item.shop_id)
    return item


def _on_timeline(item: AfterSale, source, target, note) -> None:
    db.session.add(AfterSaleEvent(
        after_sale_id=item.id, shop_id=item.shop_id,
        from_status=source.value if source else None, to_status=target.value,
        actor=current_actor().name, note=(note or None) and note[:255], created_at=now()))


def approve(after_sale_id) -> AfterSale:
    return _move(_for_update(after_sale_id), "approve")


def reject(after_sale_id, reason) -> AfterSale:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed.field("reason", "Required.")
    item = _move(_for_update(after_sale_id), "reject", reason.strip())
    item.reject_reason, item.finished_at = reason.strip()[:255], now()
    _give_back(item)
    _release_holds(item)
    return item


def close(after_sale_id, reason=None) -> AfterSale:
    """The buyer withdraws (or an exchange is done): nothing more happens."""
    item = _move(_for_update(after_sale_id), "close", reason if isinstance(reason, str) else None)
    item.finished_at = now()
    if AfterSaleKind(item.kind) != AfterSaleKind.exchange or \
            item.return_tracking_no is None:
        _give_back(item)
    _release_holds(item)
    return item


def return_shipped(after_sale_id, carrier, tracking_no) -> AfterSale:
    item = _for_update(after_sale_id)
    if AfterSaleKind(item.kind) == AfterSaleKind.refund_only:
        raise IllegalAfterSaleTransition("Nothing is sent back on a refund-only request",
                                         {"kind": ["refund_only"]})
    carrier, tracking_no = order._carrier_and_tracking(carrier, tracking_no)
    item.return_carrier, item.return_tracking_no = carrier, tracking_no
    return _move(item, "return_shipped", f"{carrier} {tracking_no}")


def receive(after_sale_id) -> AfterSale:
    """The returned goods arrived: back into the stock of the warehouse that sent them (a
    ledger row `return`); an exchange then closes (the replacement is sent as a new
    shipment)."""
    item = _move(_for_update(after_sale_id), "receive")
    line = db.session.get(OrderLine, item.order_line_id)
    warehouse_id = _sent_from(item.order_id, line.sku_id)
    if warehouse_id is not None:
        inventory.take_back(line.sku_id, warehouse_id, item.quantity, item.after_sale_no)
    if AfterSaleKind(item.kind) == AfterSaleKind.exchange:
        _send_replacement(item, line)
    return item


def _send_replacement(item: AfterSale, line: OrderLine) -> None:
    """An exchange received: a free replacement order of the same SKU and quantity goes out
    (the returned units are back in stock, so the replacement can be reserved), and the
    request closes."""
    from models.order import Trade

    original = db.session.get(Order, item.order_id)
    trade_id = order.place_replacement(original, line.sku_id, item.quantity,
                                       f"exchange:{item.after_sale_no}")
    replacement = db.session.get(Trade, trade_id).orders[0]
    item.replacement_order_id = replacement.id
    _move(item, "close", f"Returned goods received; replacement order {replacement.order_no}")
    item.finished_at = now()


def _sent_from(order_id: int, sku_id: int) -> int | None:
    notices = db.session.scalars(select(ShippingNotice).where(
        ShippingNotice.order_id == order_id, ShippingNotice.warehouse_id.is_not(None))
        .order_by(ShippingNotice.id)).all()
    for notice in notices:
        if any(part["sku_id"] == sku_id for part in notice.lines):
            return notice.warehouse_id
    return None


def refund(after_sale_id) -> AfterSale:
    """Refund the request's amount through the payment center (asynchronous); a trade paid
    outside the gateways is refunded outside them too, and the request ends at once."""
    item = _for_update(after_sale_id)
    if AfterSaleKind(item.kind) == AfterSaleKind.exchange:
        raise IllegalAfterSaleTransition("An exchange is not refunded", {"kind": ["exchange"]})
    if AfterSaleKind(item.kind) == AfterSaleKind.return_refund and \
            AfterSaleStatus(item.status) == AfterSaleStatus.approved:
        raise IllegalAfterSaleTransition("Refund a return once the goods are received",
                                         {"status": ["approved"]})
    risk.ensure_refund_not_held(item.id)
    _move(item, "refund")
    target = db.session.get(Order, item.order_id)
    paid = db.session.scalars(select(Payment).where(
        Payment.trade_id == target.trade_id, Payment.status == PaymentStatus.succeeded)
        .order_by(Payment.id.desc())).all()
    source = next((p for p in paid if payment.refundable(p) >= item.amount), None)
    if source is None or item.amount == 0:
        _finish_refund(item, "Paid outside the gateways: refunded outside them"
                       if source is None and item.amount else None)
        return item
    refund_row = payment.request_refund(source, item.amount,
                                        f"After-sale {item.after_sale_no}")
    item.payment_refund_id = refund_row.id
    return item


def _finish_refund(item: AfterSale, note: str | None) -> None:
    _move(item, "refunded", note)
    item.finished_at = now()
    if AfterSaleKind(item.kind) == AfterSaleKind.refund_only and item.held_notice_ids:
        _take_out_refunded(item)
    _close_order_if_fully_refunded(item.order_id)


def refunded_total(order_id: int) -> Decimal:
    """What after-sales have refunded on an order."""
    return Decimal(db.session.scalar(select(func.coalesce(func.sum(AfterSale.amount), 0)).where(
        AfterSale.order_id == order_id, AfterSale.status == AfterSaleStatus.refunded)))


def _close_order_if_fully_refunded(order_id: int) -> None:
    """A full refund of the goods closes the order. Freight is not refunded through
    after-sales (requests are per goods line, at most what it was paid), so the goods' part
    of the payable is what counts."""
    total = refunded_total(order_id)
    target = db.session.get(Order, order_id)
    goods = target.payable - (target.freight or 0)
    if total >= goods > 0 and OrderStatus(target.status) != OrderStatus.closed:
        order.close_refunded(target)


@subscribe("payment.refunded", "after_sale.refund_done")
def _refund_done(payload: dict) -> None:
    """The gateway refunded a request's money: the request is refunded (once)."""
    item = db.session.scalars(select(AfterSale).where(
        AfterSale.payment_refund_id == payload["refund_id"]).with_for_update()).one_or_none()
    if item is None or AfterSaleStatus(item.status) != AfterSaleStatus.refunding:
        return
    _finish_refund(item, None)


@subscribe("payment.refund_failed", "after_sale.refund_failed")
def _refund_failed(payload: dict) -> None:
    """The refund failed for good: the request stays refunding, noted, for a person (the
    refund is in Payments → Refunds)."""
    item = db.session.scalars(select(AfterSale).where(
        AfterSale.payment_refund_id == payload["refund_id"])).one_or_none()
    if item is not None and AfterSaleStatus(item.status) == AfterSaleStatus.refunding:
        _on_timeline(item, AfterSaleStatus.refunding, AfterSaleStatus.refunding,
                     "The gateway refund failed: see Payments → Refunds")
