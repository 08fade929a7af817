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
from models.order import (IdempotencyKey, Order, OrderEvent, OrderLine, OrderReservation,
                          OrderStatus, Trade)
from models.product import Sku, Spu, SpuStatus
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
    publish("trade.paid", {"trade_id": trade.id})
    return trade


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
