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
from types import SimpleNamespace
from typing import NamedTuple

from flask import current_app
from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from models.member import Member, MemberAddress, MemberLevel
from models.order import (IdempotencyKey, NoticeStatus, Order, OrderEvent, OrderLine,
                          OrderReservation, OrderStatus, ServiceCode, ShippingNotice, Trade)
from models.product import Category, Fulfilment, GoodsKind, Sku, Spu, SpuStatus
from services import inventory, logistics, marketing, pricing, risk
from services.actor import current_actor, is_row_id, scope_query
from services.clock import business_date, now
from services.errors import ConflictError, NotFoundError, ValidationFailed
from services.events import publish
from services.audit import record_inserts, set_reason
from services.money import allocate
from services.numbering import number
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
    # virtual orders: the service codes are the delivery
    "issue_codes": ({OrderStatus.paid}, OrderStatus.delivered),
    "complete": ({OrderStatus.delivered}, OrderStatus.completed),
    # after-sales refunded everything the buyer paid
    "close": ({OrderStatus.paid, OrderStatus.fulfilling, OrderStatus.shipped,
               OrderStatus.delivered, OrderStatus.completed}, OrderStatus.closed),
}


class IllegalOrderTransitionError(ConflictError):
    """The order's (or trade's) status does not allow this step."""


# -- the statements of checkout --------------------------------------------------------------------
# Checkout is the hottest write path: it reads and writes with SQLAlchemy Core statements built
# once (their SQL is cached), and hands its inserted rows to the audit log itself.

TRADE, ORDER, LINE, TIMELINE = Trade.__table__, Order.__table__, OrderLine.__table__, \
    OrderEvent.__table__
KEY, RESERVATION = IdempotencyKey.__table__, OrderReservation.__table__
SKU, SPU, MEMBER, ADDRESS = Sku.__table__, Spu.__table__, Member.__table__, MemberAddress.__table__
CATEGORY, LEVEL = Category.__table__, MemberLevel.__table__
ADDRESS_FIELDS = ("recipient", "phone", "province_code", "city_code", "district_code", "detail")

_KEY_LOOKUP = select(KEY.c.request_hash, KEY.c.trade_id).where(
    KEY.c.caller == bindparam("caller"), KEY.c.key == bindparam("key"))
_BUYER = (
    select(MEMBER.c.id.label("member_id"), MEMBER.c.status, ADDRESS.c.id.label("address_id"),
           *(ADDRESS.c[name] for name in ADDRESS_FIELDS), LEVEL.c.name.label("level_name"),
           LEVEL.c.discount_percent, LEVEL.c.free_shipping_threshold)
    .select_from(MEMBER.outerjoin(ADDRESS, and_(ADDRESS.c.id == bindparam("address_id"),
                                                ADDRESS.c.member_id == MEMBER.c.id))
                 .outerjoin(LEVEL, LEVEL.c.id == MEMBER.c.level_id))
    .where(MEMBER.c.id == bindparam("member_id")))
_CART = (
    select(SKU.c.id, SKU.c.spu_id, SKU.c.shop_id, SKU.c.code, SKU.c.price, SKU.c.enabled,
           SKU.c.sales_values, SKU.c.weight_kg, SPU.c.title, SPU.c.status, SPU.c.goods_kind,
           SPU.c.fulfilment, SPU.c.presale_ships_on, SPU.c.presale_deposit, SPU.c.brand_id,
           SPU.c.freight_template_id, CATEGORY.c.path.label("category_path"))
    .join(SPU, SPU.c.id == SKU.c.spu_id)
    .join(CATEGORY, CATEGORY.c.id == SPU.c.category_id)
    .where(SKU.c.id.in_(bindparam("sku_ids", expanding=True))))
_INSERT_TRADE = insert(TRADE).returning(TRADE.c.id)
_INSERT_KEY = insert(KEY).returning(KEY.c.id)
_INSERT_ORDERS = insert(ORDER).returning(ORDER.c.id, sort_by_parameter_order=True)
_INSERT_TIMELINE = insert(TIMELINE).returning(TIMELINE.c.id, sort_by_parameter_order=True)
_INSERT_LINES = insert(LINE).returning(LINE.c.id, sort_by_parameter_order=True)
_INSERT_RESERVATIONS = insert(RESERVATION).returning(RESERVATION.c.id,
                                                     sort_by_parameter_order=True)


def _inserted(model, table_insert, rows: list[dict]) -> list[dict]:
    """Insert `rows` in one statement; each row gets its `id` and its audit entry."""
    ids = db.session.connection().execute(table_insert, rows).scalars().all()
    for row, row_id in zip(rows, ids):
        row["id"] = row_id
    record_inserts(db.session, model, rows)
    return rows


# -- quote ---------------------------------------------------------------------------------------

def _checked_lines(lines) -> list[tuple]:
    """The cart's lines as (SKU row with its SPU's columns, quantity); unknown, disabled or
    not-on-sale SKUs are refused. One query for the whole cart."""
    if not isinstance(lines, list) or not lines:
        raise ValidationFailed.field("lines", "At least one line.")
    if len(lines) > MAX_LINES:
        raise ValidationFailed.field("lines", f"At most {MAX_LINES} lines.")
    ids = list({line.get("sku_id") for line in lines
                if isinstance(line, dict) and is_row_id(line.get("sku_id"))})
    skus = {sku.id: sku for sku in db.session.connection().execute(_CART, {"sku_ids": ids})} \
        if ids else {}
    errors, quantities = {}, {}
    for n, line in enumerate(lines):
        if not isinstance(line, dict):
            errors[f"lines.{n}"] = ["An object with sku_id and quantity."]
            continue
        sku_id, quantity = line.get("sku_id"), line.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or \
                not 0 < quantity <= MAX_QUANTITY:
            errors[f"lines.{n}.quantity"] = [f"A whole number from 1 to {MAX_QUANTITY}."]
            continue
        sku = skus.get(sku_id) if is_row_id(sku_id) else None
        if sku is None:
            errors[f"lines.{n}.sku_id"] = ["Related record not found."]
        elif not sku.enabled or SpuStatus(sku.status) != SpuStatus.on_sale:
            errors[f"lines.{n}.sku_id"] = ["Not on sale."]
        else:
            quantities[sku.id] = quantities.get(sku.id, 0) + quantity
    if errors:
        raise ValidationFailed("Validation failed", errors)
    return [(skus[sku_id], quantity) for sku_id, quantity in quantities.items()]


class Priced(NamedTuple):
    lines: list[dict]
    result: pricing.Pricing


def _priced(lines, buyer, body: dict) -> Priced:
    """Each line's amounts, discounts and routing, from the pricing engine; each shop's
    freight from its templates and the buyer's province (on the lines' payable after
    discounts), which the engine may waive."""
    level = SimpleNamespace(name=buyer.level_name, discount_percent=buyer.discount_percent,
                            free_shipping_threshold=buyer.free_shipping_threshold) \
        if buyer.level_name is not None else None

    def freight(priced_lines) -> dict:
        return logistics.freight_by_shop(
            [logistics.FreightLine(sku.shop_id, sku.freight_template_id, sku.weight_kg,
                                   quantity, line.payable)
             for (sku, quantity), line in zip(lines, priced_lines)
             if GoodsKind(sku.goods_kind) != GoodsKind.service],
            buyer.province_code)

    result = marketing.price_cart(
        buyer.member_id, level,
        [pricing.Line(sku.id, sku.spu_id, sku.shop_id, sku.category_path, sku.brand_id,
                      sku.price, quantity) for sku, quantity in lines],
        body.get("coupon_codes"), body.get("points"), freight=freight)
    flash = {p.rule for p in result.promotions if p.kind == "flash_sale"}
    priced = []
    for (sku, quantity), line in zip(lines, result.lines):
        priced.append({"sku": sku, "quantity": quantity, "unit_price": sku.price,
                       "amount": line.amount, "discount": line.discount,
                       "payable": line.payable, "discounts": line.discounts,
                       "order_type": "flash_sale" if line.item_rule in flash
                       else order_type_of(sku)})
    return Priced(priced, result)


def _shares(discounts: list[dict]) -> list[dict]:
    return [{"rule": d["rule"], "amount": _money(d["amount"]), "funded_by": d["funded_by"]}
            for d in discounts]


def order_type_of(spu) -> str:
    """normal, pre_sale (ships from a later day) or virtual (service goods, nothing ships);
    a line priced by a flash sale makes a flash_sale order. `spu` is an SPU or a row with its
    columns."""
    if spu.presale_ships_on is not None and spu.presale_ships_on > business_date():
        return "pre_sale"
    if GoodsKind(spu.goods_kind) == GoodsKind.service:
        return "virtual"
    return "normal"


def needs_stock(line) -> bool:
    """Lines our warehouses send (see `ships_from_stock`)."""
    return ships_from_stock(line.goods_kind, line.fulfilment)


def ships_from_stock(goods_kind, fulfilment) -> bool:
    """Physical goods from own stock or consignment (代销). Services need none; drop-shipped
    goods (代发) are the supplier's stock."""
    return GoodsKind(goods_kind) != GoodsKind.service and \
        Fulfilment(fulfilment) != Fulfilment.dropship


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def quote(body: dict) -> dict:
    """What the cart costs now: lines with each discount's share, goods amount, discounts,
    freight, payable, and the explanation of every rule considered."""
    return _quoted(body, _buyer(body))


def preview(body: dict) -> dict:
    """A quote for marketing staff trying the live rules: a member, no address."""
    return _quoted(body, _buyer(body, need_address=False))


def _quoted(body: dict, buyer) -> dict:
    priced, result = _priced(_checked_lines(body.get("lines")), buyer, body)
    return {
        "lines": [{"sku_id": p["sku"].id, "quantity": p["quantity"],
                   "unit_price": _money(p["unit_price"]), "amount": _money(p["amount"]),
                   "discount": _money(p["discount"]), "payable": _money(p["payable"]),
                   "discounts": [{"rule": d["rule"], "amount": _money(d["amount"])}
                                 for d in p["discounts"]]}
                  for p in priced],
        "goods_amount": _money(result.goods_amount),
        "discount_amount": _money(result.discount_amount),
        "freight": _money(result.freight - result.freight_waived),
        "freight_before_waiver": _money(result.freight),
        "points_used": result.points_used, "payable": _money(result.payable),
        "explanation": result.explanation,
    }


def _buyer(body: dict, need_address: bool = True):
    """The active member and their address (one row: member_id, status, address_id, the
    address fields and the member's level), else 422 naming the field."""
    member_id, address_id = body.get("member_id"), body.get("address_id")
    buyer = db.session.connection().execute(_BUYER, {
        "member_id": member_id, "address_id": address_id if is_row_id(address_id) else None,
    }).first() if is_row_id(member_id) else None
    if buyer is None or buyer.status != "active":
        raise ValidationFailed.field("member_id", "Related record not found.")
    if buyer.address_id is None and need_address:
        raise ValidationFailed.field("address_id", "Related record not found.")
    return buyer


# -- place ---------------------------------------------------------------------------------------

class Placed(NamedTuple):
    trade_id: int
    created: bool


def _request_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _replayed(key: str, body: dict) -> int | None:
    """The id of the trade an earlier request with this key made (same body), or None; 422
    when the key was used for another body."""
    row = db.session.connection().execute(
        _KEY_LOOKUP, {"caller": current_actor().name, "key": key}).first()
    if row is None:
        return None
    if row.request_hash != _request_hash(body):
        raise ValidationFailed.field("idempotency_key", "Already used for another request.")
    return row.trade_id


def place(body: dict, key: str) -> Placed:
    """Create the trade, its orders and lines, and reserve all its stock; returns the trade's
    id and whether this call created it. A replayed key answers the trade it made; a
    shortfall raises ShortStockError (the caller rolls back)."""
    if not isinstance(key, str) or not key.strip() or len(key) > 128:
        raise ValidationFailed.field("idempotency_key", "Send an Idempotency-Key header.")
    client = risk.checked_client(body.get("client"))
    existing = _replayed(key, body)
    if existing is not None:
        return Placed(existing, False)
    buyer = _buyer(body)
    priced, result = _priced(_checked_lines(body.get("lines")), buyer, body)
    verdict = risk.assess("order_placed", member_id=buyer.member_id, device=client["device_id"],
                          ip=client["ip"], address=_address_snapshot(buyer), amount=result.payable)
    if verdict.blocked:     # the decision is kept; nothing of the trade is
        raise risk.RiskBlocked()
    try:
        # Claim the key right after the trade, before reserving: a concurrent duplicate waits
        # there for the first request and answers its trade, instead of racing it for stock.
        trade = _claimed_trade(buyer, priced, key, _request_hash(body), _snapshot(result),
                               risk_status="held" if verdict.decision == "hold" else "none",
                               freight=result.freight - result.freight_waived)
    except IntegrityError:  # a concurrent request with the same key won
        db.session.rollback()
        existing = _replayed(key, body)
        if existing is None:
            raise ConflictError("A request with this key is being handled",
                                {"idempotency_key": ["Retry shortly."]})
        return Placed(existing, False)
    risk.link(verdict, f"trade:{trade['id']}")
    orders = _new_orders(trade, buyer, priced, {
        shop: amount - result.waived.get(shop, ZERO) for shop, amount in result.freights.items()})
    marketing.commit_checkout(result, trade, orders, buyer.member_id)
    lines = [line for order in orders for line in order["lines"]]
    stocked = [(line["sku_id"], line["quantity"]) for line in lines
               if ships_from_stock(line["goods_kind"], line["fulfilment"])]
    reservations = inventory.reserve(stocked, trade["trade_no"], buyer.province_code)
    _attach_reservations(orders, reservations)
    publish("trade.placed", {"trade_id": trade["id"]})
    return Placed(trade["id"], True)


def place_replacement(original: Order, sku_id: int, quantity: int, key: str) -> int:
    """A replacement (换货补发): a free order for the same buyer, address and SKU, paid at
    once, so it is reserved, dispatched and shipped like any order. `key` makes it once only:
    the same key answers the trade it made."""
    sku = db.session.connection().execute(_CART, {"sku_ids": [sku_id]}).first()
    if sku is None:
        raise ValidationFailed.field("sku_id", "Related record not found.")
    buyer = SimpleNamespace(member_id=original.member_id, **original.address)
    body = {"replacement_of": original.id, "sku_id": sku_id, "quantity": quantity}
    existing = _replayed(key, body)
    if existing is not None:
        return existing
    priced = [{"sku": sku, "quantity": quantity, "unit_price": ZERO, "amount": ZERO,
               "discount": ZERO, "payable": ZERO, "discounts": [], "order_type": "normal"}]
    trade = _claimed_trade(buyer, priced, key, _request_hash(body))
    orders = _new_orders(trade, buyer, priced)
    stocked = [(line["sku_id"], line["quantity"]) for line in orders[0]["lines"]
               if ships_from_stock(line["goods_kind"], line["fulfilment"])]
    reservations = inventory.reserve(stocked, trade["trade_no"], buyer.province_code)
    _attach_reservations(orders, reservations)
    pay_locked(trade_for_update(trade["id"]), f"Replacement for order {original.order_no}")
    return trade["id"]


def _snapshot(result: pricing.Pricing) -> dict:
    """How the trade's price came about, kept with it: the explanation, the coupons and the
    points it used."""
    return {"explanation": result.explanation, "points_used": result.points_used,
            "coupons": [c.code for c in result.coupons],
            "freight_before_waiver": _money(result.freight),
            "freight_waived": _money(result.freight_waived)}


def _claimed_trade(buyer, priced, key: str, request_hash: str, snapshot=None,
                   risk_status: str = "none", freight: Decimal = ZERO) -> dict:
    """The trade row and the idempotency key pointing at it; `freight` is what the buyer
    pays for shipping (after any waiver)."""
    goods = sum((p["amount"] for p in priced), ZERO)
    discount = sum((p["discount"] for p in priced), ZERO)
    stamp = now()
    trade = _inserted(Trade, _INSERT_TRADE, [{
        "trade_no": number("T"), "member_id": buyer.member_id,
        "address": _address_snapshot(buyer), "status": OrderStatus.pending_payment,
        "goods_amount": goods, "discount_amount": discount, "freight": freight,
        "payable": goods - discount + freight, "pricing": snapshot, "risk_status": risk_status,
        "created_at": stamp, "paid_at": None}])[0]
    _inserted(IdempotencyKey, _INSERT_KEY, [{
        "caller": current_actor().name, "key": key, "request_hash": request_hash,
        "trade_id": trade["id"], "created_at": stamp}])
    return trade


def _new_orders(trade: dict, buyer, priced, freights: dict | None = None) -> list[dict]:
    """One order per shop and order type (a pre-sale or a service never waits for, or holds
    back, the rest of the cart), each with its lines and first timeline row; each shop's
    freight paid ({shop_id: amount}) is allocated over its orders."""
    by_shop: dict[tuple[int, str], list[dict]] = {}
    for line in priced:
        by_shop.setdefault((line["sku"].shop_id, line["order_type"]), []).append(line)
    groups = sorted(by_shop.items())
    shares = _freight_shares(groups, freights or {})
    orders = _inserted(Order, _INSERT_ORDERS, [
        _order_row(trade, buyer, shop_id, order_type, lines, share)
        for ((shop_id, order_type), lines), share in zip(groups, shares)])
    actor, stamp = current_actor().name, trade["created_at"]
    _inserted(OrderEvent, _INSERT_TIMELINE, [
        {"order_id": order["id"], "shop_id": order["shop_id"], "from_status": None,
         "to_status": OrderStatus.pending_payment.value, "actor": actor, "note": None,
         "created_at": stamp} for order in orders])
    rows = []
    for order, (_, lines) in zip(orders, groups):
        order["lines"] = [_line_row(order, p) for p in lines]
        rows += order["lines"]
    _inserted(OrderLine, _INSERT_LINES, rows)
    return orders


def _freight_shares(groups: list, freights: dict) -> list[Decimal]:
    """Each order's part of its shop's freight, by the payable of the lines that ship (by
    their quantity when those are all free), to the cent."""
    shares = [ZERO] * len(groups)
    for shop_id, amount in freights.items():
        if not amount:
            continue
        mine = [n for n, ((shop, _), _) in enumerate(groups) if shop == shop_id]
        shipped = [[p for p in groups[n][1] if GoodsKind(p["sku"].goods_kind) != GoodsKind.service]
                   for n in mine]
        weights = [sum((p["payable"] for p in lines), ZERO) for lines in shipped]
        if not any(weights):
            weights = [Decimal(sum(p["quantity"] for p in lines)) for lines in shipped]
        for n, share in zip(mine, allocate(amount, weights)):
            shares[n] = share
    return shares


def _order_row(trade: dict, buyer, shop_id: int, order_type: str, lines: list[dict],
               freight: Decimal = ZERO) -> dict:
    goods = sum((p["amount"] for p in lines), ZERO)
    discount = sum((p["discount"] for p in lines), ZERO)
    deposit, ships_after = _presale_terms(lines) if order_type == "pre_sale" else (None, None)
    return {"order_no": number("O"), "trade_id": trade["id"], "shop_id": shop_id,
            "member_id": buyer.member_id, "status": OrderStatus.pending_payment,
            "order_type": order_type, "goods_amount": goods, "discount_amount": discount,
            "platform_discount": sum((d["amount"] for p in lines for d in p["discounts"]
                                      if d["funded_by"] == "platform"), ZERO),
            "freight": freight, "payable": goods - discount + freight, "seller_remark": None,
            "seller_flag": "none", "address": trade["address"], "deposit": deposit,
            "ships_after": ships_after, "created_at": trade["created_at"], "paid_at": None,
            "delivered_at": None}


def _line_row(order: dict, p: dict) -> dict:
    sku = p["sku"]
    return {"order_id": order["id"], "shop_id": order["shop_id"], "sku_id": sku.id,
            "spu_id": sku.spu_id, "sku_code": sku.code, "title": sku.title,
            "sales_values": dict(sku.sales_values), "unit_price": p["unit_price"],
            "quantity": p["quantity"], "amount": p["amount"], "discount": p["discount"],
            "payable": p["payable"], "discounts": _shares(p["discounts"]),
            "goods_kind": GoodsKind(sku.goods_kind).value,
            "fulfilment": Fulfilment(sku.fulfilment).value, "after_sale_amount": ZERO}


def _presale_terms(lines: list[dict]) -> tuple[Decimal, object]:
    """预售: the deposit (per unit, at most each line's payable) and the first shipping day."""
    deposit = ZERO
    for p in lines:
        sku = p["sku"]
        per_unit = sku.presale_deposit if sku.presale_deposit is not None else p["unit_price"]
        deposit += min(per_unit * p["quantity"], p["payable"])
    return deposit, max(p["sku"].presale_ships_on for p in lines)


def _address_snapshot(address) -> dict:
    return {name: getattr(address, name) for name in ADDRESS_FIELDS}


def _attach_reservations(orders: list[dict], reservations) -> None:
    """Each reservation belongs to the order holding its SKU (a SKU is in one order only:
    its shop and its SPU's order type decide)."""
    if not reservations:
        return
    owner = {line["sku_id"]: order for order in orders for line in order["lines"]}
    _inserted(OrderReservation, _INSERT_RESERVATIONS, [
        {"order_id": owner[item.sku_id]["id"], "shop_id": owner[item.sku_id]["shop_id"],
         "stock_id": item.stock_id, "sku_id": item.sku_id, "warehouse_id": item.warehouse_id,
         "quantity": item.quantity, "released": False} for item in reservations])


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
        publish("order.cancelled", {"order_id": order.id, "trade_id": trade.id,
                                    "reason": reason}, shop_id=order.shop_id)
    marketing.give_back_trade(trade)
    publish("trade.cancelled", {"trade_id": trade.id, "reason": reason})
    return trade


def mark_paid(trade_id: int, reason: str) -> Trade:
    """Staff record a payment taken outside the gateways (cash, bank transfer)."""
    reason = _required(reason)
    return pay_locked(trade_for_update(trade_id), reason)


def pay_locked(trade: Trade, note: str) -> Trade:
    """The trade (locked by the caller, `trade_for_update`) is paid: its orders move on to
    fulfilment. A trade that is not awaiting payment answers 409."""
    trade = _move_trade(trade, "pay", note)
    trade.paid_at = now()
    for order in trade.orders:
        order.paid_at = trade.paid_at
        publish("order.paid", {"order_id": order.id, "trade_id": trade.id},
                shop_id=order.shop_id)
        start_fulfilment(order)
    marketing.use_coupons(trade.id)
    _follow_trade(trade)
    publish("trade.paid", {"trade_id": trade.id})
    return trade


def close_refunded(order: Order) -> Order:
    """Everything the buyer paid for the order went back (after-sales): the order closes,
    and its trade follows."""
    _move_order(order, "close", "Fully refunded")
    marketing.give_back_order(order)
    _follow_trade(db.session.get(Trade, order.trade_id))
    publish("order.closed", {"order_id": order.id}, shop_id=order.shop_id)
    return order


def start_fulfilment(order: Order) -> None:
    """Route a paid order: service codes for service goods; a virtual order is delivered by
    them; a pre-sale waits for its shipping day; the rest is split into shipping notices."""
    issue_service_codes(order)
    if order.order_type == "virtual":
        _move_order(order, "issue_codes", "service codes issued")
        order.delivered_at = now()
        publish("order.delivered", {"order_id": order.id}, shop_id=order.shop_id)
    elif order.order_type == "pre_sale" and order.ships_after and \
            order.ships_after > business_date():
        return
    else:
        split_into_notices(order)


def issue_service_codes(order: Order) -> list[ServiceCode]:
    """One code per service line, redeemable once per unit bought."""
    codes = []
    for line in order.lines:
        if GoodsKind(line.goods_kind) in (GoodsKind.service, GoodsKind.service_physical):
            code = ServiceCode(code=_service_code(), shop_id=order.shop_id, order_id=order.id,
                               order_line_id=line.id, member_id=order.member_id,
                               uses_total=line.quantity, uses_left=line.quantity,
                               created_at=now())
            db.session.add(code)
            codes.append(code)
    if codes:
        db.session.flush()
        publish("service_code.issued", {"order_id": order.id,
                                        "codes": [c.id for c in codes]}, shop_id=order.shop_id)
    return codes


CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def _service_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))


@scheduled("orders.release_presale")
def release_presale_orders() -> int:
    """Paid pre-sale orders whose shipping day has come are split into shipping notices."""
    due = db.session.scalars(select(Order.id).where(
        Order.status == OrderStatus.paid, Order.order_type == "pre_sale",
        Order.ships_after <= business_date()).order_by(Order.id)).all()
    db.session.rollback()
    released = 0
    for order_id in due:
        trade = trade_for_update(db.session.get(Order, order_id).trade_id)
        order = next(o for o in trade.orders if o.id == order_id)
        if OrderStatus(order.status) == OrderStatus.paid:  # nobody else got there first
            split_into_notices(order)
            _follow_trade(trade)
            released += 1
        db.session.commit()
    return released


def split_into_notices(order: Order) -> list[ShippingNotice]:
    """A paid order becomes one shipping notice per warehouse holding its stock (the dispatch
    rules chose them at reservation), plus one for the supplier when lines are drop-shipped.
    Each line's payable is apportioned over its notices by quantity, so they sum to the order."""
    by_route: dict[int | None, dict[int, int]] = {}
    for reservation in order.reservations:
        if not reservation.released:
            lines = by_route.setdefault(reservation.warehouse_id, {})
            lines[reservation.sku_id] = lines.get(reservation.sku_id, 0) + reservation.quantity
    for line in order.lines:
        if Fulfilment(line.fulfilment) == Fulfilment.dropship and \
                GoodsKind(line.goods_kind) != GoodsKind.service:
            by_route.setdefault(None, {})[line.sku_id] = line.quantity
    routes = sorted(by_route, key=lambda w: (w is None, w or 0))
    shipped_lines = [(line.sku_id, line.payable) for line in order.lines
                     if GoodsKind(line.goods_kind) != GoodsKind.service]
    if any(all(sku_id not in by_route[w] for w in routes) for sku_id, _ in shipped_lines):
        raise ConflictError("The order's stock is no longer reserved",
                            {"status": [OrderStatus(order.status).value]})
    parts = notice_parts(shipped_lines, by_route, routes)
    notices = []
    for warehouse_id in routes:
        dropship = warehouse_id is None
        notice = ShippingNotice(
            notice_no=number("S"), shop_id=order.shop_id, warehouse_id=warehouse_id,
            route="dropship" if dropship else "warehouse",
            status=NoticeStatus.pending if dropship else NoticeStatus.assigned,
            lines=parts[warehouse_id],
            payable=sum((Decimal(p["payable"]) for p in parts[warehouse_id]), ZERO),
            created_at=now())
        order.notices.append(notice)
        notices.append(notice)
    _move_order(order, "fulfil", f"{len(notices)} shipping notice(s)")
    db.session.flush()
    for notice in notices:
        publish("shipping_notice.created", {"notice_id": notice.id, "route": notice.route,
                                            "warehouse_id": notice.warehouse_id},
                shop_id=order.shop_id)
    if order.trade.risk_status == "held":     # risk control holds the trade's shipping
        hold_for_risk(notices)
    return notices


def notice_parts(lines: list[tuple[int, Decimal]], by_route: dict, routes: list) -> dict:
    """Each notice's part of the order: every (sku_id, payable) line is apportioned over the
    routes holding it by quantity (largest remainder), so each line's parts sum to its payable
    and the notices sum to the order."""
    parts: dict = {route: [] for route in routes}
    for sku_id, payable in lines:
        holders = [route for route in routes if sku_id in by_route[route]]
        shares = allocate(payable, [Decimal(by_route[route][sku_id]) for route in holders])
        for route, share in zip(holders, shares):
            parts[route].append({"sku_id": sku_id, "payable": f"{share:.2f}",
                                 "quantity": by_route[route][sku_id]})
    return parts


def notice_for_update(notice_id: int) -> ShippingNotice:
    notice = scope_query(db.session.query(ShippingNotice), ShippingNotice) \
        .filter(ShippingNotice.id == notice_id).one_or_none()
    if notice is None:
        raise NotFoundError("Not found")
    trade_for_update(db.session.get(Order, notice.order_id).trade_id)
    db.session.refresh(notice)
    return notice


# What each warehouse step may start from, and where it leads (ship and release are apart).
NOTICE_FLOW = {
    "pick": ({NoticeStatus.assigned}, NoticeStatus.picking),
    "pack": ({NoticeStatus.picking}, NoticeStatus.packed),
    # WMS: a cancelled pick list gives its notices back to the warehouse's queue
    "unpick": ({NoticeStatus.picking}, NoticeStatus.assigned),
    "hold": ({NoticeStatus.pending, NoticeStatus.assigned, NoticeStatus.picking,
              NoticeStatus.packed}, NoticeStatus.held),
}
SHIPPABLE = {NoticeStatus.assigned, NoticeStatus.picking, NoticeStatus.packed}


def _notice_must_be(notice: ShippingNotice, step: str, sources) -> None:
    current = NoticeStatus(notice.status)
    if current not in sources:
        raise IllegalOrderTransitionError(f"Cannot {step} a notice that is {current.value}",
                                          {"status": [current.value]})


RISK_HOLD = "Risk review"


def hold_for_risk(notices, reason: str = RISK_HOLD) -> list[ShippingNotice]:
    """风控: unshipped notices of a trade risk control holds wait for a person (the caller
    holds the trade's lock); those it held already take the new reason."""
    held = []
    for notice in notices:
        current = NoticeStatus(notice.status)
        if current == NoticeStatus.held and (notice.hold_reason or "").startswith(RISK_HOLD):
            notice.hold_reason = reason[:255]
        elif current in NOTICE_FLOW["hold"][0]:
            notice.held_from, notice.hold_reason = current.value, reason[:255]
            notice.status = NoticeStatus.held
            _notice_on_timeline(notice, f"{notice.notice_no} hold: {reason}")
            publish("shipping_notice.held", {"notice_id": notice.id,
                                             "order_id": notice.order_id},
                    shop_id=notice.shop_id)
            held.append(notice)
    return held


def move_notice(notice_id: int, step: str, reason: str | None = None) -> ShippingNotice:
    """A warehouse step (pick, pack, hold with a reason), reported to the order's timeline
    and to subscribers (`shipping_notice.<step>`)."""
    if step == "hold":
        reason = _required(reason)
    notice = notice_for_update(notice_id)
    sources, target = NOTICE_FLOW[step]
    _notice_must_be(notice, step, sources)
    if step == "hold":
        notice.held_from, notice.hold_reason = NoticeStatus(notice.status).value, reason
    notice.status = target
    _notice_on_timeline(notice, f"{notice.notice_no} {step}" + (f": {reason}" if reason else ""))
    publish(f"shipping_notice.{target.value}", {"notice_id": notice.id,
                                                "order_id": notice.order_id},
            shop_id=notice.shop_id)
    return notice


def release_notice(notice_id: int, by_risk: bool = False) -> ShippingNotice:
    """A held notice goes back to where it was held; one held by risk control only when its
    case is released."""
    notice = notice_for_update(notice_id)
    _notice_must_be(notice, "release", {NoticeStatus.held})
    if not by_risk and (notice.hold_reason or "").startswith(RISK_HOLD):
        raise IllegalOrderTransitionError("Held by risk control until its case is resolved",
                                          {"status": ["held"]})
    notice.status = NoticeStatus(notice.held_from or NoticeStatus.assigned.value)
    notice.held_from, notice.hold_reason = None, None
    _notice_on_timeline(notice, f"{notice.notice_no} released")
    publish("shipping_notice.released", {"notice_id": notice.id, "order_id": notice.order_id},
            shop_id=notice.shop_id)
    return notice


def _notice_on_timeline(notice: ShippingNotice, note: str) -> None:
    _note(db.session.get(Order, notice.order_id), note)


def _note(order: Order, note: str) -> None:
    """A timeline entry that records something done to the order without moving it."""
    status = OrderStatus(order.status).value
    order.timeline.append(OrderEvent(shop_id=order.shop_id, from_status=status, to_status=status,
                                     actor=current_actor().name, note=note[:255],
                                     created_at=now()))


def _carrier_and_tracking(carrier, tracking_no) -> tuple[str, str]:
    errors = {}
    if not isinstance(carrier, str) or not carrier.strip() or len(carrier.strip()) > 64:
        errors["carrier"] = ["Required, at most 64 characters."]
    if not isinstance(tracking_no, str) or not tracking_no.strip() or \
            len(tracking_no.strip()) > 64:
        errors["tracking_no"] = ["Required, at most 64 characters."]
    if errors:
        raise ValidationFailed("Validation failed", errors)
    return carrier.strip(), tracking_no.strip()


def ship_notice(notice_id: int, carrier: str, tracking_no: str) -> ShippingNotice:
    """The warehouse (or, drop-shipped, the supplier) shipped: stock leaves (on hand and
    reserved go down); when every notice of the order has shipped, the order is shipped."""
    carrier, tracking_no = _carrier_and_tracking(carrier, tracking_no)
    notice = notice_for_update(notice_id)
    _ship_locked(notice, carrier, tracking_no)
    return notice


def _ship_locked(notice: ShippingNotice, carrier: str, tracking_no: str) -> None:
    from services import customs

    shippable = SHIPPABLE | ({NoticeStatus.pending} if notice.route == "dropship" else set())
    _notice_must_be(notice, "ship", shippable)
    customs.ensure_cleared(notice)      # a bonded warehouse ships only cleared declarations
    order = db.session.get(Order, notice.order_id)
    held = [r for r in order.reservations
            if notice.warehouse_id is not None and r.warehouse_id == notice.warehouse_id
            and not r.released]
    inventory.deduct([inventory.Reservation(r.stock_id, r.sku_id, r.warehouse_id, r.quantity)
                      for r in held], notice.notice_no)
    for row in held:
        row.released = True
    notice.status, notice.carrier, notice.tracking_no = NoticeStatus.shipped, carrier, tracking_no
    notice.shipped_at = now()
    live = [n for n in order.notices if NoticeStatus(n.status) != NoticeStatus.cancelled]
    if all(NoticeStatus(n.status) == NoticeStatus.shipped for n in live):
        _move_order(order, "ship", f"{carrier} {tracking_no}")
        _follow_trade(order.trade)
        publish("order.shipped", {"order_id": order.id, "notice_id": notice.id},
                shop_id=order.shop_id)
    else:
        _notice_on_timeline(notice, f"{notice.notice_no} shipped: {carrier} {tracking_no}")
    publish("shipping_notice.shipped", {"notice_id": notice.id, "order_id": order.id},
            shop_id=order.shop_id)


MAX_IMPORT_ROWS = 1000


def import_tracking(rows) -> list[ShippingNotice]:
    """Bulk import of tracking numbers for self-shipped orders: each row names a notice
    (`notice_no`) or an order with one unshipped notice (`order_no`), a carrier and a
    tracking number. All or nothing: any bad row → 422 naming the rows, nothing ships."""
    if not isinstance(rows, list) or not rows:
        raise ValidationFailed.field("rows", "At least one row.")
    if len(rows) > MAX_IMPORT_ROWS:
        raise ValidationFailed.field("rows", f"At most {MAX_IMPORT_ROWS} rows.")
    errors, plan, seen = {}, [], set()
    for n, row in enumerate(rows, start=1):
        try:
            if not isinstance(row, dict):
                raise ValidationFailed.field("row", "An object (or a CSV line).")
            carrier, tracking_no = _carrier_and_tracking(row.get("carrier"), row.get("tracking_no"))
            notice = _notice_of_row(row)
            if notice.id in seen:
                raise ValidationFailed.field("notice_no", "Named twice in this import.")
            seen.add(notice.id)
            plan.append((notice.id, carrier, tracking_no))
        except (ValidationFailed, NotFoundError, ConflictError) as err:
            for field, reasons in (err.errors or {"row": [err.message]}).items():
                errors[f"rows.{n}.{field}"] = reasons
    if errors:
        raise ValidationFailed("Some rows cannot be imported; nothing was shipped", errors)
    shipped = []
    for notice_id, carrier, tracking_no in plan:
        notice = notice_for_update(notice_id)
        _ship_locked(notice, carrier, tracking_no)
        shipped.append(notice)
    return shipped


def _notice_of_row(row: dict) -> ShippingNotice:
    query = scope_query(db.session.query(ShippingNotice), ShippingNotice)
    notice_no, order_no = row.get("notice_no"), row.get("order_no")
    if isinstance(notice_no, str) and notice_no.strip():
        notice = query.filter(ShippingNotice.notice_no == notice_no.strip()).one_or_none()
        if notice is None:
            raise ValidationFailed.field("notice_no", "No such shipping notice.")
    elif isinstance(order_no, str) and order_no.strip():
        candidates = query.join(Order, Order.id == ShippingNotice.order_id).filter(
            Order.order_no == order_no.strip(),
            ShippingNotice.status.in_([s.value for s in SHIPPABLE | {NoticeStatus.pending}])
        ).all()
        if len(candidates) != 1:
            raise ValidationFailed.field(
                "order_no", "No unshipped notice for this order." if not candidates else
                "The order has several unshipped notices: name the notice_no.")
        notice = candidates[0]
    else:
        raise ValidationFailed.field("notice_no", "Name a notice_no or an order_no.")
    shippable = SHIPPABLE | ({NoticeStatus.pending} if notice.route == "dropship" else set())
    if NoticeStatus(notice.status) not in shippable:
        raise ConflictError("Not shippable", {"status": [NoticeStatus(notice.status).value]})
    return notice


def _follow_trade(trade: Trade) -> None:
    """The trade's status follows its orders: the least advanced one. Fulfilment is each
    shop's business, so a trade being fulfilled stays `paid` (what the buyer did)."""
    order_of_progress = [OrderStatus.pending_payment, OrderStatus.paid, OrderStatus.fulfilling,
                         OrderStatus.shipped, OrderStatus.delivered, OrderStatus.completed]
    statuses = [OrderStatus(o.status) for o in trade.orders]
    if statuses and all(s == OrderStatus.closed for s in statuses):
        trade.status = OrderStatus.closed
        return
    statuses = [s for s in statuses if s != OrderStatus.closed]   # refunded orders step aside
    if statuses and all(s in order_of_progress for s in statuses):
        least = min(statuses, key=order_of_progress.index)
        trade.status = OrderStatus.paid if least == OrderStatus.fulfilling else least


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


def deliver_by_carrier(notice_id: int) -> Order | None:
    """The carrier reported this notice signed for (its `delivered_at` is set): once every
    live notice of a shipped order is signed, the order is delivered. Idempotent: an order
    not (or no longer) `shipped` is left as it is, so `order.delivered` is published once."""
    notice = notice_for_update(notice_id)
    target = db.session.get(Order, notice.order_id)
    live = [n for n in target.notices if NoticeStatus(n.status) != NoticeStatus.cancelled]
    if OrderStatus(target.status) != OrderStatus.shipped or \
            any(n.delivered_at is None for n in live):
        return None
    return _order_step(target.id, "deliver", "signed for (carrier tracking)")


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
    """改价: set an unpaid order's payable (0 ≤ payable ≤ goods amount + freight); its freight
    stays (up to the new payable), the goods' difference is apportioned over its lines to the
    cent (largest remainder) and the trade follows."""
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
    if payable > target.goods_amount + target.freight:
        raise ValidationFailed.field("payable", "At most the goods amount and the freight.")
    old = target.payable
    freight = min(target.freight, payable)
    goods = payable - freight
    shares = allocate(goods, [line.amount for line in target.lines])
    for line, share in zip(target.lines, shares):
        line.payable, line.discount = share, line.amount - share
    target.payable, target.discount_amount = payable, target.goods_amount - goods
    target.freight = freight
    if target.deposit is not None:
        target.deposit = min(target.deposit, goods)
    trade.payable = sum((o.payable for o in trade.orders), ZERO)
    trade.discount_amount = sum((o.discount_amount for o in trade.orders), ZERO)
    trade.freight = sum((o.freight for o in trade.orders), ZERO)
    _note(target, f"price {old:.2f} → {payable:.2f}: {reason}")
    publish("order.price_changed", {"order_id": target.id, "old": f"{old:.2f}",
                                    "new": f"{payable:.2f}"}, shop_id=target.shop_id)
    return target


SELLER_FLAGS = ("none", "red", "yellow", "green", "blue", "purple")


def set_seller_remark(order_id: int, remark, flag) -> Order:
    """The merchant's own note and flag (旗帜) on an order; buyers never see them."""
    errors = {}
    if remark is not None and (not isinstance(remark, str) or len(remark) > 255):
        errors["remark"] = ["Text of at most 255 characters."]
    if flag is not None and flag not in SELLER_FLAGS:
        errors["flag"] = [f"One of: {', '.join(SELLER_FLAGS)}."]
    if remark is None and flag is None:
        errors["remark"] = ["Send a remark, a flag or both."]
    if errors:
        raise ValidationFailed("Validation failed", errors)
    target = visible_order(order_id)
    if remark is not None:
        target.seller_remark = remark.strip() or None
    if flag is not None:
        target.seller_flag = flag
    return target


CHANGEABLE_ADDRESS = {OrderStatus.pending_payment, OrderStatus.paid, OrderStatus.fulfilling}


def change_address(order_id: int, address: dict, reason) -> Order:
    """Change where an order ships, before anything of it has shipped (the buyer asked the
    merchant or customer service); the warehouse hears of it through an event."""
    reason = _required(reason)
    cleaned = _checked_address(address)
    found = visible_order(order_id)
    trade = trade_for_update(found.trade_id)
    target = next(o for o in trade.orders if o.id == found.id)
    status = OrderStatus(target.status)
    shipped = [n for n in target.notices if NoticeStatus(n.status) == NoticeStatus.shipped]
    if status not in CHANGEABLE_ADDRESS or shipped:
        raise IllegalOrderTransitionError("The address can change only before shipping",
                                          {"status": [status.value]})
    set_reason(db.session, reason)
    target.address = cleaned
    _note(target, f"address changed: {reason}")
    publish("order.address_changed", {"order_id": target.id,
                                      "notices": [n.id for n in target.notices]},
            shop_id=target.shop_id)
    return target


def _checked_address(address) -> dict:
    from services.member import check_address

    if not isinstance(address, dict):
        raise ValidationFailed.field("address", "An object with " + ", ".join(ADDRESS_FIELDS))
    values = {f: address.get(f) for f in ADDRESS_FIELDS}
    errors = {f"address.{f}": ["Text."] for f, v in values.items() if not isinstance(v, str)}
    if errors:
        raise ValidationFailed("Validation failed", errors)
    values = {f: v.strip() for f, v in values.items()}
    if not values["recipient"] or len(values["recipient"]) > 64:
        raise ValidationFailed.field("address.recipient", "Required, at most 64 characters.")
    if len(values["detail"]) > 255:
        raise ValidationFailed.field("address.detail", "At most 255 characters.")
    try:
        check_address(MemberAddress(**values))
    except ValidationFailed as err:
        raise ValidationFailed(err.message, {f"address.{k}": v for k, v in err.errors.items()})
    return values


REDEEMABLE = {OrderStatus.paid, OrderStatus.fulfilling, OrderStatus.shipped,
              OrderStatus.delivered, OrderStatus.completed}


def redeem_service_code(code, uses=1) -> ServiceCode:
    """核销: the merchant takes `uses` units of a buyer's code (one atomic conditional update,
    so two counters redeeming the last use at once cannot both succeed). A virtual order
    whose codes are all used completes."""
    if not isinstance(code, str) or not code.strip():
        raise ValidationFailed.field("code", "Required.")
    if isinstance(uses, bool) or not isinstance(uses, int) or not 0 < uses <= MAX_QUANTITY:
        raise ValidationFailed.field("uses", f"A whole number from 1 to {MAX_QUANTITY}.")
    row = scope_query(db.session.query(ServiceCode), ServiceCode) \
        .filter(ServiceCode.code == code.strip().upper()).one_or_none()
    if row is None:
        raise NotFoundError("Not found", {"code": ["No such code."]})
    trade = trade_for_update(db.session.get(Order, row.order_id).trade_id)
    order = next(o for o in trade.orders if o.id == row.order_id)
    if OrderStatus(order.status) not in REDEEMABLE:
        raise IllegalOrderTransitionError("The order cannot be redeemed",
                                          {"status": [OrderStatus(order.status).value]})
    done = db.session.execute(
        update(ServiceCode).where(ServiceCode.id == row.id, ServiceCode.uses_left >= uses)
        .values(uses_left=ServiceCode.uses_left - uses, last_redeemed_at=now())
        .execution_options(synchronize_session=False)).rowcount
    db.session.expire(row)
    if not done:
        raise ConflictError("Not enough uses left", {"uses": [f"{row.uses_left} left."]})
    _note(order, f"code …{row.code[-4:]} redeemed ×{uses}")
    publish("service_code.redeemed", {"code_id": row.id, "order_id": order.id, "uses": uses},
            shop_id=order.shop_id)
    left = db.session.scalar(select(func.sum(ServiceCode.uses_left))
                             .where(ServiceCode.order_id == order.id))
    if not left and order.order_type == "virtual" and \
            OrderStatus(order.status) == OrderStatus.delivered:
        _move_order(order, "complete", "all service codes redeemed")
        _follow_trade(trade)
        publish("order.completed", {"order_id": order.id}, shop_id=order.shop_id)
    return row


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
            "risk_status": trade.risk_status,
            "payable": _money(trade.payable),
            "discount_amount": _money(trade.discount_amount),
            "explanation": (trade.pricing or {}).get("explanation", []),
            "points_used": (trade.pricing or {}).get("points_used", 0),
            "orders": [{"id": o.id, "order_no": o.order_no, "shop_id": o.shop_id,
                        "status": OrderStatus(o.status).value, "payable": _money(o.payable),
                        "lines": [{"id": line.id, "sku_id": line.sku_id,
                                   "quantity": line.quantity,
                                   "unit_price": _money(line.unit_price),
                                   "payable": _money(line.payable),
                                   "discounts": [{"rule": d["rule"], "amount": d["amount"]}
                                                 for d in line.discounts or []]}
                                  for line in o.lines]}
                       for o in trade.orders]}
