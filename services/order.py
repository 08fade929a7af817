"""订单中心 rules: quote and place (one trade, one order per shop, stock reserved atomically),
idempotent checkout, the order state machine with its timeline, cancel and the unpaid
timeout (which release stock exactly once), and offline payment.

Every status change locks the trade row first (trade, then its orders by id), so cancel,
timeout and payment arriving together are serialised: one wins, the other sees the new state.
"""
import hashlib
import json
import secrets
from datetime import timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from models.member import Member, MemberAddress
from models.order import (IdempotencyKey, NoticeStatus, Order, OrderEvent, OrderLine,
                          OrderReservation, OrderStatus, ShippingNotice, Trade)
from models.product import Sku, SpuStatus
from services import inventory
from services.actor import current_actor, scope_query
from services.clock import now
from services.errors import ConflictError, NotFoundError, ValidationFailed
from services.events import publish
from services.audit import set_reason
from services.money import allocate
from services.scheduler import scheduled

ZERO = Decimal("0.00")
MAX_QUANTITY = 9999
MAX_LINES = 100

# What each step may start from, and where it leads.
ORDER_FLOW = {
    "pay": ({OrderStatus.pending_payment}, OrderStatus.paid),
    "cancel": ({OrderStatus.pending_payment}, OrderStatus.cancelled),
    "fulfil": ({OrderStatus.paid}, OrderStatus.fulfilling),
    "ship": ({OrderStatus.fulfilling}, OrderStatus.shipped),
    "deliver": ({OrderStatus.shipped}, OrderStatus.delivered),
    "complete": ({OrderStatus.delivered}, OrderStatus.completed),
}


class IllegalOrderTransitionError(ConflictError):
    """The order's (or trade's) status does not allow this step."""


# -- quote ---------------------------------------------------------------------------------------

def _checked_lines(lines) -> list[tuple[Sku, int]]:
    """The cart's lines as (SKU, quantity); unknown, disabled or not-on-sale SKUs are refused."""
    if not isinstance(lines, list) or not lines:
        raise ValidationFailed.field("lines", "At least one line.")
    if len(lines) > MAX_LINES:
        raise ValidationFailed.field("lines", f"At most {MAX_LINES} lines.")
    errors, checked, quantities = {}, [], {}
    for n, line in enumerate(lines):
        sku_id, quantity = line.get("sku_id"), line.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or \
                not 0 < quantity <= MAX_QUANTITY:
            errors[f"lines.{n}.quantity"] = [f"A whole number from 1 to {MAX_QUANTITY}."]
            continue
        sku = db.session.get(Sku, sku_id) if isinstance(sku_id, int) and \
            not isinstance(sku_id, bool) and 0 < sku_id < 2**31 else None
        if sku is None:
            errors[f"lines.{n}.sku_id"] = ["Related record not found."]
        elif not sku.enabled or SpuStatus(sku.spu.status) != SpuStatus.on_sale:
            errors[f"lines.{n}.sku_id"] = ["Not on sale."]
        else:
            quantities[sku.id] = quantities.get(sku.id, 0) + quantity
            if sku.id not in {s.id for s, _ in checked}:
                checked.append((sku, 0))
    if errors:
        raise ValidationFailed("Validation failed", errors)
    return [(sku, quantities[sku.id]) for sku, _ in checked]


def _priced(lines) -> list[dict]:
    """Each line's amounts; discounts come with the pricing engine (marketing)."""
    priced = []
    for sku, quantity in lines:
        amount = (sku.price * quantity).quantize(Decimal("0.01"))
        priced.append({"sku": sku, "quantity": quantity, "unit_price": sku.price,
                       "amount": amount, "discount": ZERO, "payable": amount})
    return priced


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def quote(body: dict) -> dict:
    """What the cart costs now: lines, goods amount, discounts, freight, payable."""
    _member_and_address(body)
    priced = _priced(_checked_lines(body.get("lines")))
    goods = sum((p["amount"] for p in priced), ZERO)
    discount = sum((p["discount"] for p in priced), ZERO)
    return {
        "lines": [{"sku_id": p["sku"].id, "quantity": p["quantity"],
                   "unit_price": _money(p["unit_price"]), "amount": _money(p["amount"]),
                   "discount": _money(p["discount"]), "payable": _money(p["payable"])}
                  for p in priced],
        "goods_amount": _money(goods), "discount_amount": _money(discount), "freight": "0.00",
        "payable": _money(goods - discount),
    }


def _member_and_address(body: dict) -> tuple[Member, MemberAddress]:
    member_id, address_id = body.get("member_id"), body.get("address_id")
    member = db.session.get(Member, member_id) if _is_id(member_id) else None
    if member is None or member.status != "active":
        raise ValidationFailed.field("member_id", "Related record not found.")
    address = db.session.get(MemberAddress, address_id) if _is_id(address_id) else None
    if address is None or address.member_id != member.id:
        raise ValidationFailed.field("address_id", "Related record not found.")
    return member, address


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


# -- place ---------------------------------------------------------------------------------------

def _request_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def replayed_trade(key: str, body: dict) -> Trade | None:
    """The trade an earlier request with this key made (same body), or None; 422 when the key
    was used for another body."""
    row = db.session.scalars(select(IdempotencyKey).where(
        IdempotencyKey.caller == current_actor().name, IdempotencyKey.key == key)).one_or_none()
    if row is None:
        return None
    if row.request_hash != _request_hash(body):
        raise ValidationFailed.field("idempotency_key", "Already used for another request.")
    return db.session.get(Trade, row.trade_id)


def _number(prefix: str) -> str:
    return f"{prefix}{now().strftime('%Y%m%d%H%M%S')}{secrets.randbelow(10**6):06d}"


def place(body: dict, key: str) -> tuple[Trade, bool]:
    """Create the trade, its orders and lines, and reserve all its stock; returns (trade,
    created). A replayed key answers the trade it made; a shortfall raises ShortStockError."""
    if not isinstance(key, str) or not key.strip() or len(key) > 128:
        raise ValidationFailed.field("idempotency_key", "Send an Idempotency-Key header.")
    existing = replayed_trade(key, body)
    if existing is not None:
        return existing, False
    member, address = _member_and_address(body)
    priced = _priced(_checked_lines(body.get("lines")))
    trade = _new_trade(member, address, priced)
    # Claim the key before reserving: a concurrent duplicate waits here for the first request
    # and answers its trade, instead of racing it for the stock.
    db.session.add(IdempotencyKey(caller=current_actor().name, key=key,
                                  request_hash=_request_hash(body), trade_id=trade.id))
    try:
        db.session.flush()
    except IntegrityError:  # a concurrent request with the same key won
        db.session.rollback()
        existing = replayed_trade(key, body)
        if existing is None:
            raise ConflictError("A request with this key is being handled",
                                {"idempotency_key": ["Retry shortly."]})
        return existing, False
    reservations = inventory.reserve([(p["sku"].id, p["quantity"]) for p in priced],
                                     trade.trade_no)
    _attach_reservations(trade, reservations)
    publish("trade.placed", {"trade_id": trade.id})
    return trade, True


def _new_trade(member, address, priced) -> Trade:
    by_shop: dict[int, list[dict]] = {}
    for line in priced:
        by_shop.setdefault(line["sku"].shop_id, []).append(line)
    goods = sum((p["amount"] for p in priced), ZERO)
    discount = sum((p["discount"] for p in priced), ZERO)
    trade = Trade(trade_no=_number("T"), member_id=member.id, address=_address_snapshot(address),
                  goods_amount=goods, discount_amount=discount, freight=ZERO,
                  payable=goods - discount, created_at=now())
    db.session.add(trade)
    for shop_id, lines in sorted(by_shop.items()):
        order_goods = sum((p["amount"] for p in lines), ZERO)
        order_discount = sum((p["discount"] for p in lines), ZERO)
        order = Order(order_no=_number("O"), shop_id=shop_id, member_id=member.id,
                      goods_amount=order_goods, discount_amount=order_discount, freight=ZERO,
                      payable=order_goods - order_discount, created_at=now())
        trade.orders.append(order)
        for p in lines:
            sku = p["sku"]
            order.lines.append(OrderLine(
                shop_id=shop_id, sku_id=sku.id, spu_id=sku.spu_id, sku_code=sku.code,
                title=sku.spu.title, sales_values=dict(sku.sales_values),
                unit_price=p["unit_price"], quantity=p["quantity"], amount=p["amount"],
                discount=p["discount"], payable=p["payable"]))
        order.timeline.append(OrderEvent(shop_id=shop_id, from_status=None,
                                         to_status=OrderStatus.pending_payment.value,
                                         actor=current_actor().name, created_at=now()))
    db.session.flush()
    return trade


def _address_snapshot(address: MemberAddress) -> dict:
    return {"recipient": address.recipient, "phone": address.phone,
            "province_code": address.province_code, "city_code": address.city_code,
            "district_code": address.district_code, "detail": address.detail}


def _attach_reservations(trade: Trade, reservations) -> None:
    orders = {order.shop_id: order for order in trade.orders}
    skus = {line.sku_id: line.shop_id for order in trade.orders for line in order.lines}
    for item in reservations:
        order = orders[skus[item.sku_id]]
        order.reservations.append(OrderReservation(
            shop_id=order.shop_id, stock_id=item.stock_id, sku_id=item.sku_id,
            warehouse_id=item.warehouse_id, quantity=item.quantity))


# -- the state machine --------------------------------------------------------------------------

def trade_for_update(trade_id: int) -> Trade:
    """The trade row-locked, then its orders in id order (the fixed lock order)."""
    trade = db.session.execute(select(Trade).where(Trade.id == trade_id)
                               .with_for_update()).scalar_one_or_none()
    if trade is None:
        raise NotFoundError("Not found")
    db.session.execute(select(Order.id).where(Order.trade_id == trade.id)
                       .order_by(Order.id).with_for_update())
    db.session.refresh(trade)
    return trade


def _move_order(order: Order, step: str, note: str | None) -> None:
    sources, target = ORDER_FLOW[step]
    current = OrderStatus(order.status)
    if current not in sources:
        raise IllegalOrderTransitionError(
            f"Cannot {step} an order that is {current.value}", {"status": [current.value]})
    order.status = target
    order.timeline.append(OrderEvent(shop_id=order.shop_id, from_status=current.value,
                                     to_status=target.value, actor=current_actor().name,
                                     note=note, created_at=now()))


def _move_trade(trade: Trade, step: str, note: str | None) -> Trade:
    sources, target = ORDER_FLOW[step]
    if OrderStatus(trade.status) not in sources:
        raise IllegalOrderTransitionError(
            f"Cannot {step} a trade that is {OrderStatus(trade.status).value}",
            {"status": [OrderStatus(trade.status).value]})
    for order in trade.orders:
        _move_order(order, step, note)
    trade.status = target
    return trade


def _required(reason) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed.field("reason", "Required.")
    return reason.strip()[:255]


def cancel_trade(trade_id: int, reason: str) -> Trade:
    """Cancel an unpaid trade and release its stock (exactly once)."""
    reason = _required(reason)
    trade = _move_trade(trade_for_update(trade_id), "cancel", reason)
    for order in trade.orders:
        held = [r for r in order.reservations if not r.released]
        inventory.release([inventory.Reservation(r.stock_id, r.sku_id, r.warehouse_id,
                                                 r.quantity) for r in held], trade.trade_no)
        for row in held:
            row.released = True
    publish("trade.cancelled", {"trade_id": trade.id, "reason": reason})
    return trade


def mark_paid(trade_id: int, reason: str) -> Trade:
    """Staff record an offline payment (until the payment center exists)."""
    reason = _required(reason)
    trade = _move_trade(trade_for_update(trade_id), "pay", reason)
    trade.paid_at = now()
    for order in trade.orders:
        order.paid_at = trade.paid_at
        split_into_notices(order)
    publish("trade.paid", {"trade_id": trade.id})
    return trade


def split_into_notices(order: Order) -> list[ShippingNotice]:
    """A paid order becomes one shipping notice per warehouse holding its stock; each line's
    payable is apportioned over the warehouses by quantity, so the notices sum to the order."""
    by_warehouse: dict[int, dict[int, int]] = {}
    for reservation in order.reservations:
        if not reservation.released:
            lines = by_warehouse.setdefault(reservation.warehouse_id, {})
            lines[reservation.sku_id] = lines.get(reservation.sku_id, 0) + reservation.quantity
    warehouses = sorted(by_warehouse)
    parts: dict[int, list[dict]] = {w: [] for w in warehouses}
    for line in order.lines:
        holders = [w for w in warehouses if line.sku_id in by_warehouse[w]]
        if not holders:
            raise ConflictError("The order's stock is no longer reserved",
                                {"status": [OrderStatus(order.status).value]})
        shares = allocate(line.payable, [Decimal(by_warehouse[w][line.sku_id]) for w in holders])
        for warehouse_id, share in zip(holders, shares):
            parts[warehouse_id].append({"sku_id": line.sku_id, "payable": f"{share:.2f}",
                                        "quantity": by_warehouse[warehouse_id][line.sku_id]})
    notices = []
    for warehouse_id in warehouses:
        notice = ShippingNotice(notice_no=_number("S"), shop_id=order.shop_id,
                                warehouse_id=warehouse_id, lines=parts[warehouse_id],
                                payable=sum((Decimal(p["payable"]) for p in parts[warehouse_id]),
                                            ZERO), created_at=now())
        order.notices.append(notice)
        notices.append(notice)
    _move_order(order, "fulfil", f"{len(notices)} shipping notice(s)")
    db.session.flush()
    for notice in notices:
        publish("shipping_notice.created", {"notice_id": notice.id,
                                            "warehouse_id": notice.warehouse_id},
                shop_id=order.shop_id)
    return notices


def notice_for_update(notice_id: int) -> ShippingNotice:
    notice = scope_query(db.session.query(ShippingNotice), ShippingNotice) \
        .filter(ShippingNotice.id == notice_id).one_or_none()
    if notice is None:
        raise NotFoundError("Not found")
    trade_for_update(db.session.get(Order, notice.order_id).trade_id)
    db.session.refresh(notice)
    return notice


def ship_notice(notice_id: int, carrier: str, tracking_no: str) -> ShippingNotice:
    """The warehouse shipped: stock leaves (on hand and reserved go down); when every notice
    of the order has shipped, the order is shipped."""
    errors = {}
    if not isinstance(carrier, str) or not carrier.strip():
        errors["carrier"] = ["Required."]
    if not isinstance(tracking_no, str) or not tracking_no.strip():
        errors["tracking_no"] = ["Required."]
    if errors:
        raise ValidationFailed("Validation failed", errors)
    notice = notice_for_update(notice_id)
    if NoticeStatus(notice.status) in (NoticeStatus.shipped, NoticeStatus.cancelled,
                                       NoticeStatus.held):
        raise IllegalOrderTransitionError(
            f"Cannot ship a notice that is {NoticeStatus(notice.status).value}",
            {"status": [NoticeStatus(notice.status).value]})
    order = db.session.get(Order, notice.order_id)
    held = [r for r in order.reservations
            if r.warehouse_id == notice.warehouse_id and not r.released]
    inventory.deduct([inventory.Reservation(r.stock_id, r.sku_id, r.warehouse_id, r.quantity)
                      for r in held], notice.notice_no)
    for row in held:
        row.released = True
    notice.status, notice.carrier, notice.tracking_no = NoticeStatus.shipped, carrier.strip(), \
        tracking_no.strip()
    notice.shipped_at = now()
    if all(NoticeStatus(n.status) == NoticeStatus.shipped for n in order.notices):
        _move_order(order, "ship", f"{carrier.strip()} {tracking_no.strip()}")
        _follow_trade(order.trade)
    publish("shipping_notice.shipped", {"notice_id": notice.id, "order_id": order.id},
            shop_id=order.shop_id)
    return notice


def _follow_trade(trade: Trade) -> None:
    """The trade's status follows its orders: the least advanced one."""
    order_of_progress = [OrderStatus.pending_payment, OrderStatus.paid, OrderStatus.fulfilling,
                         OrderStatus.shipped, OrderStatus.delivered, OrderStatus.completed]
    statuses = [OrderStatus(o.status) for o in trade.orders]
    if all(s in order_of_progress for s in statuses):
        trade.status = min(statuses, key=order_of_progress.index)


def _order_step(order_id: int, step: str, note: str | None) -> Order:
    found = visible_order(order_id)
    trade = trade_for_update(found.trade_id)
    target = next(o for o in trade.orders if o.id == found.id)
    _move_order(target, step, note)
    if step == "deliver":
        target.delivered_at = now()
    _follow_trade(trade)
    publish(f"order.{'delivered' if step == 'deliver' else 'completed'}",
            {"order_id": target.id}, shop_id=target.shop_id)
    return target


def deliver_order(order_id: int) -> Order:
    """Staff record delivery (until carrier tracking exists)."""
    return _order_step(order_id, "deliver", None)


def confirm_receipt(order_id: int) -> Order:
    """The buyer confirms receipt: the order completes."""
    return _order_step(order_id, "complete", "receipt confirmed")


@scheduled("orders.auto_confirm")
def auto_confirm_delivered() -> int:
    """自动确认收货: delivered orders older than AUTO_CONFIRM_DAYS complete."""
    deadline = now() - timedelta(days=current_app.config["AUTO_CONFIRM_DAYS"])
    due = db.session.scalars(select(Order.id).where(
        Order.status == OrderStatus.delivered, Order.delivered_at <= deadline)
        .order_by(Order.id)).all()
    db.session.rollback()
    done = 0
    for order_id in due:
        try:
            _order_step(order_id, "complete", "auto-confirmed")
            db.session.commit()
            done += 1
        except IllegalOrderTransitionError:
            db.session.rollback()
    return done


def unpaid_deadline():
    return now() - timedelta(minutes=current_app.config["UNPAID_TIMEOUT_MINUTES"])


@scheduled("orders.cancel_unpaid")
def cancel_unpaid_trades() -> int:
    """Cancel trades unpaid past UNPAID_TIMEOUT_MINUTES; each in its own transaction, and a
    trade paid meanwhile is left alone (the lock decides)."""
    due = db.session.scalars(select(Trade.id).where(
        Trade.status == OrderStatus.pending_payment, Trade.created_at <= unpaid_deadline())
        .order_by(Trade.id)).all()
    db.session.rollback()
    cancelled = 0
    for trade_id in due:
        try:
            cancel_trade(trade_id, "unpaid timeout")
            db.session.commit()
            cancelled += 1
        except IllegalOrderTransitionError:
            db.session.rollback()
    return cancelled


def change_order_price(order_id: int, payable, reason: str) -> Order:
    """改价: set an unpaid order's payable (0 ≤ payable ≤ goods amount); the difference is
    apportioned over its lines to the cent (largest remainder) and the trade follows."""
    reason = _required(reason)
    if not isinstance(payable, Decimal) or payable < 0:
        raise ValidationFailed.field("payable", "Must not be negative.")
    set_reason(db.session, reason)
    found = visible_order(order_id)
    trade = trade_for_update(found.trade_id)
    target = next(o for o in trade.orders if o.id == found.id)
    if OrderStatus(target.status) != OrderStatus.pending_payment:
        raise IllegalOrderTransitionError("Only an unpaid order's price can change",
                                          {"status": [OrderStatus(target.status).value]})
    if payable > target.goods_amount:
        raise ValidationFailed.field("payable", "At most the goods amount.")
    old = target.payable
    shares = allocate(payable, [line.amount for line in target.lines])
    for line, share in zip(target.lines, shares):
        line.payable, line.discount = share, line.amount - share
    target.payable, target.discount_amount = payable, target.goods_amount - payable
    trade.payable = sum((o.payable for o in trade.orders), ZERO)
    trade.discount_amount = sum((o.discount_amount for o in trade.orders), ZERO)
    status = OrderStatus(target.status).value
    target.timeline.append(OrderEvent(shop_id=target.shop_id, from_status=status,
                                      to_status=status, actor=current_actor().name,
                                      note=f"price {old:.2f} → {payable:.2f}: {reason}",
                                      created_at=now()))
    publish("order.price_changed", {"order_id": target.id, "old": f"{old:.2f}",
                                    "new": f"{payable:.2f}"}, shop_id=target.shop_id)
    return target


def visible_order(order_id: int) -> Order:
    found = scope_query(db.session.query(Order), Order).filter(Order.id == order_id).one_or_none()
    if found is None:
        raise NotFoundError("Not found")
    return found


def visible_trade(trade_id: int) -> Trade:
    trade = scope_query(db.session.query(Trade), Trade).filter(Trade.id == trade_id).one_or_none()
    if trade is None:
        raise NotFoundError("Not found")
    return trade


def trade_result(trade: Trade) -> dict:
    """The trade as the checkout API answers it."""
    return {"id": trade.id, "trade_no": trade.trade_no, "status": OrderStatus(trade.status).value,
            "payable": _money(trade.payable),
            "orders": [{"id": o.id, "order_no": o.order_no, "shop_id": o.shop_id,
                        "status": OrderStatus(o.status).value, "payable": _money(o.payable),
                        "lines": [{"id": line.id, "sku_id": line.sku_id,
                                   "quantity": line.quantity,
                                   "unit_price": _money(line.unit_price),
                                   "payable": _money(line.payable)} for line in o.lines]}
                       for o in trade.orders]}
