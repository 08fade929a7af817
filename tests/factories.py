"""How to make a row of each shop-owned model for a given shop, and a valid REST body for it.

The isolation walk, the audit walk and the bad-input sweep use these for every registered
model; a shop-owned model without an entry here makes those walks fail, so a new model is
covered the day it is registered.
"""
from itertools import count

import io
from decimal import Decimal

from PIL import Image
from sqlalchemy import select

from app.extensions import db
from models.after_sale import AfterSale, AfterSaleEvent
from models.audit import AuditLog
from models.card import Card
from models.finance import Settlement
from models.invoice import Invoice
from models.marketing import (Coupon, CouponIssue, MemberCoupon, Promotion, PromotionUsage,
                              PromotionZone)
from models.ticket import Agent, CallRecord, Ticket, TicketMessage, TicketQueue
from models.shop import Shop
from models.inventory import Stock, StockLedger, Warehouse
from models.member import Member, MemberAddress, MemberLevel
from models.review import Feedback, RatingSummary, Review, SensitiveWord
from models.order import Order, ServiceCode, ShippingNotice, Trade
from models.risk import Blacklist, RiskRule
from models.product import (Attribute, AttributeKind, Brand, Category, InputType, PriceChange,
                            Sku, Spu, SpuTransition)
from models.storage import UploadedFile
from services.actor import Actor, acting_as

_serial = count(1)
MARKER = "LEAKMARK"


def marker_of(shop: Shop) -> str:
    return f"{MARKER}-{shop.code}"


def _shop_row(shop: Shop) -> Shop:
    return shop


def _audit_row(shop: Shop) -> AuditLog:
    """An audit entry of one of `shop`'s records, written the way the product writes them."""
    shop.settlement_account = f"{marker_of(shop)}-{next(_serial)}"
    db.session.commit()
    return AuditLog.query.filter_by(model="Shop", record_pk=str(shop.id)).order_by(
        AuditLog.id.desc()).first()


def png_bytes(size=(4, 3), color=(200, 30, 30), image_format="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=image_format)
    return buffer.getvalue()


def _uploaded_file_row(shop: Shop) -> UploadedFile:
    """An image uploaded by a merchant of `shop`, through the upload service."""
    from services.storage import store_image

    with acting_as(Actor(name=f"merchant-{shop.code}", shop_id=shop.id, authenticated=True)):
        record = store_image(png_bytes(), f"{marker_of(shop)}-{next(_serial)}.png")
        db.session.commit()
    return record


def catalog() -> dict:
    """A small category tree (clothing > tops > t-shirts) with one attribute of each kind,
    and a brand; created once per test through the product services."""
    from services import product

    leaf = Category.query.filter_by(name="T-shirts").one_or_none()
    if leaf is None:
        with acting_as(Actor.system("factory")):
            root = Category(name="Clothing")
            db.session.add(root)
            product.place_category(root)
            middle = Category(name="Tops", parent_id=root.id)
            db.session.add(middle)
            product.place_category(middle)
            leaf = Category(name="T-shirts", parent_id=middle.id)
            db.session.add(leaf)
            product.place_category(leaf)
            for name, kind, input_type, options, required, category in (
                    ("Model", AttributeKind.key, InputType.text, [], True, leaf),
                    ("Material", AttributeKind.non_key, InputType.single_select,
                     ["cotton", "linen"], False, root),
                    ("Colour", AttributeKind.sales, InputType.single_select,
                     ["red", "blue", "black"], True, middle),
                    ("Size", AttributeKind.sales, InputType.single_select,
                     ["S", "M", "L"], True, leaf)):
                db.session.add(Attribute(name=name, kind=kind, input_type=input_type,
                                         options=options, required=required,
                                         category_id=category.id))
            db.session.add(Brand(name="Acme", enabled=True))
            db.session.commit()
    attributes = {a.name: a for a in Attribute.query.all()}
    return {"leaf": leaf, "middle": Category.query.filter_by(name="Tops").one(),
            "root": Category.query.filter_by(name="Clothing").one(),
            "brand": Brand.query.filter_by(name="Acme").one(), "attributes": attributes}


def spu_body(shop: Shop | None = None, **overrides) -> dict:
    parts = catalog()
    body = {"title": f"Tee {next(_serial)}", "category_id": parts["leaf"].id,
            "brand_id": parts["brand"].id,
            "attribute_values": {str(parts["attributes"]["Model"].id): "T-100"}}
    if shop is not None:
        body["shop_id"] = shop.id
    body.update(overrides)
    return body


def make_spu(shop: Shop, *, with_skus=False, **overrides) -> Spu:
    """A draft SPU of `shop` made through the product service (and its SKU grid)."""
    from services import product

    body = spu_body(shop, **overrides)
    with acting_as(Actor.system("factory")):
        spu = Spu(**body)
        product.prepare_spu(spu, creating=True)
        db.session.add(spu)
        db.session.flush()
        product.record_creation(spu)
        if with_skus:
            attributes = catalog()["attributes"]
            product.generate_skus(spu.id, {str(attributes["Colour"].id): ["red", "blue"],
                                           str(attributes["Size"].id): ["S", "M"]},
                                  Decimal("99.00"))
        db.session.commit()
    return spu


def _spu_row(shop: Shop) -> Spu:
    return make_spu(shop, title=f"{marker_of(shop)} tee {next(_serial)}")


def _sku_row(shop: Shop) -> Sku:
    return make_spu(shop, with_skus=True).skus[0]


def _spu_transition_row(shop: Shop) -> SpuTransition:
    return make_spu(shop).transitions[0]


def _price_change_row(shop: Shop) -> PriceChange:
    sku = _sku_row(shop)
    return PriceChange.query.filter_by(sku_id=sku.id).first()


def make_warehouse(shop: Shop | None, code: str | None = None) -> Warehouse:
    warehouse = Warehouse(code=code or f"W{next(_serial)}",
                          name=f"{marker_of(shop) if shop else 'platform'} warehouse",
                          shop_id=shop.id if shop else None)
    db.session.add(warehouse)
    db.session.commit()
    return warehouse


def stock_up(sku: Sku, warehouse: Warehouse, quantity: int) -> Stock:
    """Put `quantity` units of a SKU in a warehouse through the inventory service."""
    from services import inventory

    with acting_as(Actor.system("factory")):
        stock = inventory.adjust(sku.id, warehouse.id, quantity, "first stock")
        db.session.commit()
    return stock


def _stock_row(shop: Shop) -> Stock:
    sku = make_spu(shop, with_skus=True).skus[0]
    return stock_up(sku, make_warehouse(shop), 10)


def _ledger_row(shop: Shop) -> StockLedger:
    stock = _stock_row(shop)
    return StockLedger.query.filter_by(stock_id=stock.id).first()


def _notice_row(shop: Shop) -> ShippingNotice:
    """A paid order's shipping notice (payment splits the order per warehouse)."""
    return ShippingNotice.query.filter_by(order_id=paid_order(shop).id).first()


def _service_code_row(shop: Shop) -> ServiceCode:
    """The code a paid order of service goods issues."""
    from services import order as orders

    placed = make_order(shop, goods_kind="service")
    with acting_as(Actor.system("factory")):
        orders.mark_paid(placed.trade_id, "factory payment")
        db.session.commit()
    return ServiceCode.query.filter_by(order_id=placed.id).one()


def paid_order(shop: Shop, quantity: int = 1) -> Order:
    """An order of `shop`, paid (offline), its shipping notices made."""
    from services import order as orders

    placed = make_order(shop, quantity=quantity)
    with acting_as(Actor.system("factory")):
        orders.mark_paid(placed.trade_id, "factory payment")
        db.session.commit()
    return placed


def _after_sale_body(shop: Shop | None) -> dict:
    """A request on a paid line of `shop` (an existing one when there is one, so that building
    the body writes nothing)."""
    from models.order import OrderLine

    shop = shop or Shop.query.order_by(Shop.id).first()
    line = OrderLine.query.join(Order, Order.id == OrderLine.order_id).filter(
        Order.shop_id == shop.id, Order.status.in_(["paid", "fulfilling"])).order_by(
        OrderLine.id).first() or paid_order(shop).lines[0]
    return {"order_line_id": line.id, "kind": "refund_only", "quantity": 1, "amount": "10.00",
            "reason": "Arrived late"}


def _after_sale_row(shop: Shop) -> AfterSale:
    from services import after_sale

    body = _after_sale_body(shop)
    with acting_as(Actor.system("factory")):
        item = after_sale.request(body["order_line_id"], "refund_only", 1, Decimal("10.00"),
                                  body["reason"])
        db.session.commit()
    return item


def posted_yesterday(shop: Shop, amount: Decimal = Decimal("100.00")):
    """A payment of `amount` to `shop` posted to the journal yesterday (a settlement's input)."""
    from datetime import timedelta

    from services import clock, finance

    with acting_as(Actor.system("factory")):
        commission = finance.commission_of(shop, amount)
        finance.post("payment", [("1001", None, amount, Decimal("0")),
                                 ("2201", shop.id, Decimal("0"), amount - commission),
                                 ("6001", shop.id, Decimal("0"), commission)],
                     reference=f"T-factory-{next(_serial)}",
                     occurred_at=clock.now() - timedelta(days=1))
        db.session.commit()


def _settlement_body(shop: Shop | None) -> dict:
    from datetime import timedelta

    from services.clock import business_date

    shop = shop or Shop.query.order_by(Shop.id).first()
    posted_yesterday(shop)
    return {"shop_id": shop.id, "period_end": (business_date() - timedelta(days=1)).isoformat()}


def _settlement_row(shop: Shop):
    from datetime import date

    from services import finance

    body = _settlement_body(shop)
    with acting_as(Actor.system("factory")):
        statement = finance.settle(shop.id, date.fromisoformat(body["period_end"]))
        db.session.commit()
    return statement


def ticket_queue(skill: str = "general") -> "TicketQueue":
    from models.ticket import TicketQueue

    queue = TicketQueue.query.filter_by(skill=skill).first()
    if queue is None:
        queue = TicketQueue(name=f"Queue {skill} {next(_serial)}", skill=skill,
                            response_minutes=30, resolve_minutes=240, enabled=True)
        db.session.add(queue)
        db.session.commit()
    return queue


def _ticket_body(shop: Shop | None) -> dict:
    """A complaint about an order of `shop` (an existing one when there is one, so that
    building the body writes nothing to the shop)."""
    order_ = None
    if shop is not None:
        order_ = Order.query.filter_by(shop_id=shop.id).order_by(Order.id).first() or \
            make_order(shop)
    return {"queue_id": ticket_queue().id, "subject": "Where is my parcel?",
            "message": "Ordered a week ago.", "source": "complaint",
            "order_id": order_.id if order_ else None}


def _ticket_row(shop: Shop):
    from services import ticket

    body = _ticket_body(shop)
    with acting_as(Actor.system("factory")):
        made = ticket.open_ticket(body["queue_id"], body["subject"], message=body["message"],
                                  source="complaint", order_id=body["order_id"])
        db.session.commit()
    return made


def _call_row(shop: Shop):
    from services import ticket

    made = _ticket_row(shop)
    with acting_as(Actor.system("factory")):
        record = ticket.call(made.id)
        db.session.commit()
    return record


def _invoice_body(shop: Shop | None) -> dict:
    """An invoice request for a paid order of `shop` without one (made when none is left)."""
    from models.invoice import Invoice

    shop = shop or Shop.query.order_by(Shop.id).first()
    invoiced = {i.order_id for i in Invoice.query.filter_by(shop_id=shop.id)}
    order_ = next((o for o in Order.query.filter(Order.shop_id == shop.id,
                                                 Order.status.in_(["paid", "fulfilling"]))
                   .order_by(Order.id) if o.id not in invoiced), None) or paid_order(shop)
    return {"order_id": order_.id, "kind": "personal", "title": "王小明"}


def _invoice_row(shop: Shop):
    """An invoice request of `shop`, and a spare paid order left to invoice (so that a later
    request body for the shop is made without writing)."""
    from services import invoice

    paid_order(shop)
    body = _invoice_body(shop)
    with acting_as(Actor.system("factory")):
        made = invoice.request(body["order_id"], "personal", body["title"])
        db.session.commit()
    return made


def coupon_body(shop: Shop | None, **overrides) -> dict:
    from datetime import timedelta

    from services import clock

    start = clock.now() - timedelta(days=1)
    body = {"name": f"Coupon {next(_serial)}", "kind": "threshold", "amount": "10.00",
            "threshold": "100.00", "scope": "all", "scope_ids": [],
            "starts_at": start.isoformat(), "ends_at": (start + timedelta(days=30)).isoformat(),
            "total_quantity": 100, "per_member_limit": 1, "stackable": False,
            "claimable": True, "enabled": True}
    if shop is not None:
        body["shop_id"] = shop.id
    body.update(overrides)
    return body


def make_coupon(shop: Shop | None, **overrides) -> "Coupon":
    from datetime import datetime
    from decimal import Decimal as D

    from models.marketing import Coupon

    body = coupon_body(shop, **overrides)
    for money in ("amount", "threshold", "cap"):
        if body.get(money) is not None:
            body[money] = D(body[money])
    for moment in ("starts_at", "ends_at"):
        body[moment] = datetime.fromisoformat(body[moment])
    coupon = Coupon(**body)
    db.session.add(coupon)
    db.session.commit()
    return coupon


def _member_coupon_row(shop: Shop):
    from services import marketing

    coupon = make_coupon(shop)
    with acting_as(Actor.system("factory")):
        granted = marketing.claim(coupon.id, make_member().id)
        db.session.commit()
    return granted


def promotion_body(shop: Shop | None, **overrides) -> dict:
    """A 满减 promotion (满100减10) of `shop` (None: the platform's), live for 30 days."""
    from datetime import timedelta

    from services import clock

    start = clock.now() - timedelta(days=1)
    body = {"name": f"Promotion {next(_serial)}", "kind": "threshold",
            "rules": {"tiers": [{"threshold": "100.00", "amount": "10.00"}]},
            "scope": "all", "scope_ids": [], "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(days=30)).isoformat(), "priority": 0,
            "exclusive": False, "enabled": True}
    if shop is not None:
        body["shop_id"] = shop.id
    body.update(overrides)
    return body


def _dated(body: dict, money=("amount", "threshold", "cap", "budget")) -> dict:
    from datetime import datetime
    from decimal import Decimal as D

    for name in money:
        if body.get(name) is not None:
            body[name] = D(body[name])
    for moment in ("starts_at", "ends_at"):
        body[moment] = datetime.fromisoformat(body[moment])
    return body


def make_promotion(shop: Shop | None, **overrides) -> "Promotion":
    from services import marketing

    promotion = marketing.check_promotion(Promotion(**_dated(promotion_body(shop, **overrides))))
    db.session.add(promotion)
    db.session.commit()
    return promotion


def zone_body(shop: Shop | None, **overrides) -> dict:
    from datetime import timedelta

    from services import clock

    start = clock.now() - timedelta(days=1)
    body = {"name": f"Zone {next(_serial)}", "kind": "event", "banner_url": "/banners/z.png",
            "spu_ids": [1, 2],
            "starts_at": start.isoformat(), "ends_at": (start + timedelta(days=7)).isoformat(),
            "enabled": True}
    if shop is not None:
        body["shop_id"] = shop.id
    body.update(overrides)
    return body


def make_zone(shop: Shop | None, **overrides) -> "PromotionZone":
    zone = PromotionZone(**_dated(zone_body(shop, **overrides)))
    db.session.add(zone)
    db.session.commit()
    return zone


def _usage_row(shop: Shop):
    """A promotion taken by a placed order of `shop` (满100减10 on a ¥198 cart)."""
    make_promotion(shop)
    placed = make_order(shop, quantity=2)
    return db.session.scalars(select(PromotionUsage).where(
        PromotionUsage.order_id == placed.id)).one()


def _issue_row(shop: Shop):
    from services import marketing

    coupon = make_coupon(shop)
    with acting_as(Actor.system("factory")):
        batch = marketing.start_issue(coupon.id, [make_member().id], "factory")
        db.session.commit()
    return batch


def delivered_order(shop: Shop, quantity: int = 1) -> Order:
    """A paid order of `shop`, shipped and delivered (its lines may be reviewed)."""
    from services import order as orders

    placed = paid_order(shop, quantity=quantity)
    with acting_as(Actor.system("factory")):
        for notice in ShippingNotice.query.filter_by(order_id=placed.id):
            orders.ship_notice(notice.id, "SF", f"SF{notice.id:010d}")
        db.session.commit()
        orders.deliver_order(placed.id)
        db.session.commit()
    return db.session.get(Order, placed.id)


def make_review(shop: Shop, text: str = "质量很好，物流也快", rating: int = 5):
    """A review of a delivered line of `shop`, moderated (the job's work done here, whichever
    job mode the tests run in)."""
    from services import review

    line = delivered_order(shop).lines[0]
    with acting_as(Actor.system("factory")):
        item = review.post_review(line.id, rating, text)
        db.session.commit()
        review.moderate(item.id)
    return db.session.get(type(item), item.id)


def _review_body(shop: Shop | None) -> dict:
    """A review body for a delivered line of `shop` (an existing unreviewed one when there
    is one, so that building the body writes nothing)."""
    from models.order import OrderLine
    from models.review import Review

    shop = shop or Shop.query.order_by(Shop.id).first()
    line = OrderLine.query.join(Order, Order.id == OrderLine.order_id).filter(
        Order.shop_id == shop.id, Order.status == "delivered",
        OrderLine.id.not_in(db.session.query(Review.order_line_id))).first() or \
        delivered_order(shop).lines[0]
    return {"order_line_id": line.id, "rating": 4, "text": "还不错", "images": []}


def _rating_row(shop: Shop):
    from models.review import RatingSummary

    review = make_review(shop)
    return RatingSummary.query.filter_by(shop_id=shop.id, spu_id=review.spu_id).one()


ROW_FACTORIES = {
    Review: make_review,
    RatingSummary: _rating_row,
    Coupon: make_coupon,
    MemberCoupon: _member_coupon_row,
    Promotion: make_promotion,
    PromotionZone: make_zone,
    PromotionUsage: _usage_row,
    CouponIssue: _issue_row,
    Invoice: _invoice_row,
    Ticket: _ticket_row,
    TicketMessage: lambda shop: _ticket_row(shop).messages[0],
    CallRecord: _call_row,
    Settlement: _settlement_row,
    AfterSale: _after_sale_row,
    AfterSaleEvent: lambda shop: _after_sale_row(shop).timeline[0],
    ServiceCode: _service_code_row,
    ShippingNotice: _notice_row,
    Order: lambda shop: make_order(shop),
    Warehouse: make_warehouse,
    Stock: _stock_row,
    StockLedger: _ledger_row,
    Shop: _shop_row,
    AuditLog: _audit_row,
    UploadedFile: _uploaded_file_row,
    Spu: _spu_row,
    Sku: _sku_row,
    SpuTransition: _spu_transition_row,
    PriceChange: _price_change_row,
}


def make_row(model, shop: Shop):
    """A committed row of `model` belonging to `shop`."""
    try:
        factory = ROW_FACTORIES[model]
    except KeyError:
        raise AssertionError(
            f"{model.__name__} is shop-owned but tests/factories.py has no ROW_FACTORIES entry")
    return factory(shop)


def _shop_body(shop: Shop | None) -> dict:
    n = next(_serial)
    return {"code": f"S{n}", "name": f"Shop {n}", "status": "open", "commission_rate": "0.0500"}


# Valid POST bodies for each writable REST resource, in `shop` (None: the merchant's own).
def make_order(shop: Shop, quantity: int = 1, **spu_terms) -> Order:
    """An unpaid order of `shop`, placed through checkout: member, address, an on-sale SKU
    with stock (`spu_terms`: goods_kind, fulfilment, presale_ships_on, presale_deposit)."""
    from services import order as orders
    from services import product

    spu = make_spu(shop, with_skus=True, **spu_terms)
    with acting_as(Actor.system("factory")):
        product.submit_spu(spu.id)
        product.approve_spu(spu.id)
        db.session.commit()
    sku = spu.skus[0]
    stock_up(sku, make_warehouse(shop), 10)
    buyer = make_member()
    address = MemberAddress(**address_body(buyer.id))
    db.session.add(address)
    db.session.commit()
    with acting_as(Actor.system("factory")):
        placed = orders.place({"member_id": buyer.id, "address_id": address.id,
                               "lines": [{"sku_id": sku.id, "quantity": quantity}]},
                              f"factory-{next(_serial)}")
        db.session.commit()
    return db.session.get(Trade, placed.trade_id).orders[0]


def stocked_cart(shops, stock: int = 5) -> dict:
    """Two on-sale SKUs of shop A (99.00 each) and one of shop B, `stock` units each in a
    warehouse of their shop; a member ("buyer") with an address."""
    from services import product

    catalog()
    skus = []
    for shop, count in ((shops["A"], 2), (shops["B"], 1)):
        spu = make_spu(shop, with_skus=True)
        with acting_as(Actor.system("factory")):
            product.submit_spu(spu.id)
            product.approve_spu(spu.id)
            db.session.commit()
        warehouse = make_warehouse(shop)
        for sku in spu.skus[:count]:
            stock_up(sku, warehouse, stock)
            skus.append(sku)
    buyer = make_member("buyer")
    address = MemberAddress(**address_body(buyer.id))
    db.session.add(address)
    db.session.commit()
    return {"skus": skus, "member": buyer, "address": address}


def make_member(account: str | None = None) -> Member:
    member = Member(account=account or f"buyer{next(_serial)}", name="王小明", phone="13812345678")
    db.session.add(member)
    db.session.commit()
    return member


def address_body(member_id: int, **overrides) -> dict:
    return {"member_id": member_id, "recipient": "王小明", "phone": "13812345678",
            "province_code": "310000", "city_code": "310100", "district_code": "310104",
            "detail": "漕溪北路 88 号 2 号楼 301 室", **overrides}


API_BODIES = {
    Review: _review_body,
    Feedback: lambda shop: {"member_id": make_member().id, "topic": "app",
                            "text": "希望增加夜间模式"},
    SensitiveWord: lambda shop: {"word": f"敏感词{next(_serial)}", "category": "other",
                                 "action": "mask"},
    Member: lambda shop: {"account": f"buyer{next(_serial)}", "name": "李雷",
                          "phone": "13900001111"},
    MemberAddress: lambda shop: address_body(make_member().id),
    Warehouse: lambda shop: {"code": f"W{next(_serial)}", "name": "Warehouse",
                             **({"shop_id": shop.id} if shop else {})},
    Shop: _shop_body,
    Category: lambda shop: {"name": f"Category {next(_serial)}", "parent_id": None},
    Brand: lambda shop: {"name": f"Brand {next(_serial)}", "enabled": True},
    Attribute: lambda shop: {"category_id": catalog()["leaf"].id, "name": f"Attr {next(_serial)}",
                             "kind": "non_key", "input_type": "text"},
    Spu: lambda shop: spu_body(shop),
    AfterSale: _after_sale_body,
    Settlement: _settlement_body,
    Ticket: _ticket_body,
    Invoice: _invoice_body,
    Coupon: coupon_body,
    Promotion: promotion_body,
    PromotionZone: zone_body,
    MemberLevel: lambda shop: {"name": f"Level {next(_serial)}",
                               "growth_threshold": next(_serial) * 100,
                               "discount_percent": "2.00", "points_multiplier": "1.50"},
    Card: lambda shop: {"kind": "gift", "amount": "100.00"},
    TicketQueue: lambda shop: {"name": f"Queue {next(_serial)}", "skill": "general",
                               "response_minutes": 30, "resolve_minutes": 240,
                               "enabled": True},
    Agent: lambda shop: {"user_id": _agent_user().id, "skills": ["general"], "available": True},
    RiskRule: lambda shop: {"name": f"Rule {next(_serial)}", "event": "order_placed",
                            "kind": "velocity", "action": "review", "enabled": True,
                            "params": {"key": "member", "limit": 5, "window_minutes": 10}},
    Blacklist: lambda shop: {"kind": "device", "value": f"device-{next(_serial)}",
                             "reason": "Seen in fraud"},
}


def _agent_user():
    from services.security import upsert_user

    with acting_as(Actor.system("factory")):
        user, _ = upsert_user(f"agent{next(_serial)}", "Agent-pass-1", "CustomerService")
        db.session.commit()
    return user


def api_body(model, shop: Shop | None) -> dict:
    try:
        factory = API_BODIES[model]
    except KeyError:
        raise AssertionError(
            f"{model.__name__} has a POST endpoint but tests/factories.py has no API_BODIES entry")
    return factory(shop)


def refund_through_after_sale(placed: Order, amount, kind: str = "refund_only"):
    """One unit of the order's first line refunded through after-sales, as the shop would do
    it (a return is sent back and received first); the jobs it leaves run in-process."""
    from app.queue import run_inprocess_jobs
    from services import after_sale

    db.session.expire_all()   # the order may have been paid or moved by another session
    with acting_as(Actor.system("factory")):
        request = after_sale.request(placed.lines[0].id, kind, 1, Decimal(amount), "Refund")
        db.session.commit()
        after_sale.approve(request.id)
        if kind == "return_refund":
            after_sale.return_shipped(request.id, "SF", "SF0000000001")
            after_sale.receive(request.id)
        after_sale.refund(request.id)
        db.session.commit()
        run_inprocess_jobs(db.session)
    return request
