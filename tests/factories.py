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
from models.purchasing import (PurchaseOrder, PurchaseOrderLine, ReplenishmentRule, Supplier,
                               SupplierDocument, SupplierPrice, SupplierStatement,
                               SupplierStatementItem, SupplierTransition)
from models.wms import PickList, Receipt, StockCount, StockTransfer
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


# -- WMS -----------------------------------------------------------------------------------------

def _shop_of(shop: Shop | None) -> Shop:
    return shop or Shop.query.order_by(Shop.id).first()


def _own_warehouses(shop: Shop, wanted: int = 1) -> list:
    """`wanted` warehouses of the shop (existing ones first, so a body writes nothing)."""
    found = Warehouse.query.filter_by(shop_id=shop.id).order_by(Warehouse.id).limit(wanted).all()
    return found + [make_warehouse(shop) for _ in range(wanted - len(found))]


def _own_sku(shop: Shop) -> Sku:
    return Sku.query.filter_by(shop_id=shop.id).order_by(Sku.id).first() or _sku_row(shop)


def receipt_body(shop: Shop | None) -> dict:
    shop = _shop_of(shop)
    return {"warehouse_id": _own_warehouses(shop)[0].id, "source": "other", "shop_id": shop.id,
            "lines": [{"sku_id": _own_sku(shop).id, "expected": 5}]}


def make_receipt(shop: Shop):
    from services import wms

    body = receipt_body(shop)
    with acting_as(Actor.system("factory")):
        receipt = wms.create_receipt(**body)
        db.session.commit()
    return receipt


def _assigned_notice(shop: Shop) -> ShippingNotice:
    """An assigned notice of the shop on no pick list (a paid order made when none is left)."""
    found = ShippingNotice.query.filter_by(shop_id=shop.id, status="assigned",
                                           pick_list_id=None).order_by(ShippingNotice.id).first()
    return found or _notice_row(shop)


def pick_list_body(shop: Shop | None) -> dict:
    return {"notice_ids": [_assigned_notice(_shop_of(shop)).id]}


def make_pick_list(shop: Shop):
    """A pick list of a paid order's notice, and a spare assigned notice left for a body."""
    from services import wms

    notice = _notice_row(shop)
    _notice_row(shop)
    with acting_as(Actor.system("factory")):
        pick = wms.create_pick_list([notice.id])
        db.session.commit()
    return pick


def stock_count_body(shop: Shop | None) -> dict:
    shop = _shop_of(shop)
    stock = Stock.query.join(Warehouse, Warehouse.id == Stock.warehouse_id).filter(
        Warehouse.shop_id == shop.id).order_by(Stock.id).first() or _stock_row(shop)
    return {"warehouse_id": stock.warehouse_id, "blind": True}


def make_stock_count(shop: Shop):
    from services import wms

    body = stock_count_body(shop)
    with acting_as(Actor.system("factory")):
        count = wms.create_count(**body)
        db.session.commit()
    return count


def transfer_body(shop: Shop | None) -> dict:
    shop = _shop_of(shop)
    source, target = _own_warehouses(shop, 2)
    return {"from_warehouse_id": source.id, "to_warehouse_id": target.id, "shop_id": shop.id,
            "lines": [{"sku_id": _own_sku(shop).id, "quantity": 2}]}


def make_transfer(shop: Shop):
    from services import wms

    body = transfer_body(shop)
    with acting_as(Actor.system("factory")):
        transfer = wms.create_transfer(**body)
        db.session.commit()
    return transfer


# -- purchasing ----------------------------------------------------------------------------------

def make_supplier(shop: Shop, status: str = "prospect", code: str | None = None, **fields):
    """A supplier of `shop` made through the purchasing service, taken to `status` (qualified
    and later: with a verified business licence on file)."""
    from models.purchasing import Supplier
    from services import purchasing

    with acting_as(Actor.system("factory")):
        supplier = Supplier(shop_id=shop.id, code=code or f"SUP{next(_serial)}",
                            name=f"{marker_of(shop)} supplier", **fields)
        purchasing.check_supplier(supplier, creating=True)
        db.session.add(supplier)
        db.session.commit()
        if status != "prospect":
            document = make_supplier_document(supplier)
            purchasing.verify_document(document.id)
            purchasing.qualify(supplier.id)
            if status in ("active", "suspended"):
                purchasing.activate(supplier.id)
            if status == "suspended":
                purchasing.suspend(supplier.id, "Late twice")
            db.session.commit()
    return supplier


def make_supplier_document(supplier, kind: str = "business_licence", valid_until=None):
    """A document of the supplier with a file uploaded for its shop (not verified)."""
    from datetime import date

    from models.purchasing import SupplierDocument
    from services import purchasing
    from services.storage import store_image

    with acting_as(Actor(name="factory-merchant", shop_id=supplier.shop_id,
                         authenticated=True)):
        upload = store_image(png_bytes(), f"licence-{next(_serial)}.png")
        document = SupplierDocument(supplier_id=supplier.id, kind=kind,
                                    number=f"91310000{next(_serial):010d}", file_id=upload.id,
                                    valid_until=valid_until or date(2099, 12, 31))
        purchasing.check_document(document, creating=True)
        db.session.add(document)
        db.session.commit()
    return document


def make_supplier_price(supplier, sku, price="10.00", min_quantity=1, valid_from=None,
                        valid_until=None):
    from datetime import date

    from models.purchasing import SupplierPrice
    from services import purchasing

    with acting_as(Actor.system("factory")):
        row = SupplierPrice(supplier_id=supplier.id, sku_id=sku.id, price=Decimal(price),
                            min_quantity=min_quantity, valid_from=valid_from or date(2020, 1, 1),
                            valid_until=valid_until)
        purchasing.check_price(row)
        db.session.add(row)
        db.session.commit()
    return row


def _own_supplier(shop: Shop, status: str | None = "active"):
    """A supplier of the shop (in `status`; any when None), made when there is none."""
    query = Supplier.query.filter_by(shop_id=shop.id)
    if status is not None:
        query = query.filter_by(status=status)
    return query.order_by(Supplier.id).first() or make_supplier(shop, status or "prospect")


def _sku_without_rule(shop: Shop, warehouse) -> Sku:
    """A SKU of the shop with no replenishment rule in the warehouse (made when none)."""
    taken = select(ReplenishmentRule.sku_id).where(ReplenishmentRule.warehouse_id == warehouse.id)
    return Sku.query.filter(Sku.shop_id == shop.id, Sku.id.not_in(taken)).order_by(
        Sku.id).first() or _sku_row(shop)


def make_rule(shop: Shop, sku=None, warehouse=None, supplier=None, **numbers):
    from models.purchasing import ReplenishmentRule
    from services import purchasing

    with acting_as(Actor.system("factory")):
        rule = ReplenishmentRule(sku_id=(sku or _sku_row(shop)).id,
                                 warehouse_id=(warehouse or make_warehouse(shop)).id,
                                 supplier_id=supplier.id if supplier else None,
                                 **{"safety_stock": 0, "reorder_point": 5,
                                    "reorder_quantity": 20, **numbers})
        purchasing.check_rule(rule)
        db.session.add(rule)
        db.session.commit()
    return rule


def make_purchase_order(shop: Shop, status: str = "draft", quantity: int = 5,
                        unit_price: str = "10.00", supplier=None, sku=None, warehouse=None):
    """A purchase order of `shop` (one line), taken to draft, approved or sent."""
    from services import purchasing

    supplier = supplier or _own_supplier(shop)
    with acting_as(Actor.system("factory")):
        po = purchasing.create_purchase_order(
            supplier.id, (warehouse or _own_warehouses(shop)[0]).id,
            [{"sku_id": (sku or _own_sku(shop)).id, "quantity": quantity,
              "unit_price": unit_price}])
        if status in ("approved", "sent"):
            purchasing.approve_purchase_order(po.id)
        if status == "sent":
            purchasing.send_purchase_order(po.id)
        db.session.commit()
    return po


def receive_purchase_order(po, received=None, rejected=0):
    """A WMS receipt of the order's outstanding lines, recorded and confirmed (`received`
    of each line, all of it by default); the jobs it leaves run in-process."""
    from app.queue import run_inprocess_jobs
    from services import wms

    with acting_as(Actor.system("factory")):
        receipt = wms.create_receipt(source="purchase", purchase_order_id=po.id)
        wms.record_receipt_lines(receipt.id, [
            {"line_id": line.id,
             "received": line.expected - rejected if received is None else received,
             "rejected": rejected, **({"reject_reason": "Damaged"} if rejected else {})}
            for line in receipt.lines])
        wms.confirm_receipt(receipt.id)
        db.session.commit()
        run_inprocess_jobs(db.session)
    return receipt


def _statement_supplier(shop: Shop, fresh: bool = False):
    """An active supplier of the shop with goods received and on no statement yet (an
    existing one unless `fresh`, so that a body writes nothing)."""
    from models.purchasing import SupplierStatementItem
    from models.wms import ReceiptLine

    if not fresh:
        found = db.session.execute(
            select(PurchaseOrder.supplier_id)
            .join(PurchaseOrderLine, PurchaseOrderLine.purchase_order_id == PurchaseOrder.id)
            .join(ReceiptLine, ReceiptLine.purchase_order_line_id == PurchaseOrderLine.id)
            .where(PurchaseOrder.shop_id == shop.id, ReceiptLine.received > 0,
                   ReceiptLine.id.not_in(select(SupplierStatementItem.source_id).where(
                       SupplierStatementItem.source_kind == "receipt_line")))
            .order_by(PurchaseOrder.id).limit(1)).scalar()
        if found is not None:
            return db.session.get(Supplier, found)
    po = make_purchase_order(shop, "sent")
    receive_purchase_order(po)
    return po.supplier


def statement_body(shop: Shop | None) -> dict:
    from services.clock import business_date

    today = business_date().isoformat()
    return {"supplier_id": _statement_supplier(_shop_of(shop)).id, "period_start": today,
            "period_end": today}


def make_statement(shop: Shop):
    from services import purchasing
    from services.clock import business_date

    supplier = _statement_supplier(shop, fresh=True)
    with acting_as(Actor.system("factory")):
        statement = purchasing.draft_statement(supplier.id, business_date(), business_date())
        db.session.commit()
    _statement_supplier(shop, fresh=True)      # goods left to state, for a body
    return statement


def supplier_body(shop: Shop | None) -> dict:
    return {"code": f"SUP{next(_serial)}", "name": "Supplier", "contact_name": "张三",
            "phone": "13800000000", **({"shop_id": shop.id} if shop else {})}


def supplier_document_body(shop: Shop | None) -> dict:
    return {"supplier_id": _own_supplier(_shop_of(shop), None).id,
            "kind": "business_licence", "number": "91310000MA1FL0000X",
            "valid_until": "2099-12-31"}


def supplier_price_body(shop: Shop | None) -> dict:
    shop = _shop_of(shop)
    return {"supplier_id": _own_supplier(shop, None).id, "sku_id": _own_sku(shop).id,
            "price": "12.50", "min_quantity": next(_serial), "valid_from": "2024-01-01"}


def rule_body(shop: Shop | None) -> dict:
    shop = _shop_of(shop)
    warehouse = _own_warehouses(shop)[0]
    return {"sku_id": _sku_without_rule(shop, warehouse).id, "warehouse_id": warehouse.id,
            "safety_stock": 2, "reorder_point": 5, "reorder_quantity": 20,
            "supplier_id": _own_supplier(shop, None).id}


def purchase_order_body(shop: Shop | None) -> dict:
    shop = _shop_of(shop)
    return {"supplier_id": _own_supplier(shop).id, "warehouse_id": _own_warehouses(shop)[0].id,
            "lines": [{"sku_id": _own_sku(shop).id, "quantity": 5, "unit_price": "10.00"}]}


ROW_FACTORIES = {
    Supplier: make_supplier,
    SupplierTransition: lambda shop: make_supplier(shop).transitions[0],
    SupplierDocument: lambda shop: make_supplier_document(make_supplier(shop)),
    SupplierPrice: lambda shop: make_supplier_price(make_supplier(shop, "active"),
                                                    _sku_row(shop)),
    ReplenishmentRule: make_rule,
    PurchaseOrder: make_purchase_order,
    PurchaseOrderLine: lambda shop: make_purchase_order(shop).lines[0],
    SupplierStatement: make_statement,
    SupplierStatementItem: lambda shop: make_statement(shop).items[0],
    Receipt: make_receipt,
    PickList: make_pick_list,
    StockCount: make_stock_count,
    StockTransfer: make_transfer,
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
    Supplier: supplier_body,
    SupplierDocument: supplier_document_body,
    SupplierPrice: supplier_price_body,
    ReplenishmentRule: rule_body,
    PurchaseOrder: purchase_order_body,
    SupplierStatement: statement_body,
    Receipt: receipt_body,
    PickList: pick_list_body,
    StockCount: stock_count_body,
    StockTransfer: transfer_body,
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


# -- logistics: carriers (platform data) and freight templates (shop data) ----------------------

def make_carrier(code: str | None = None, rates=(("", "10.00", "2.00"),), **fields):
    """A carrier with a rate card: each rate is (regions "310000,320000" or "" for everywhere
    else, first fee for the first kg, fee per further kg)."""
    from models.logistics import Carrier, CarrierRate

    remote = fields.pop("remote", "0")
    carrier = Carrier(code=code or f"C{next(_serial)}", name=fields.pop("name", "Carrier"),
                      adapter="sandbox", **fields)
    for regions, first_fee, step_fee in rates:
        carrier.rates.append(CarrierRate(
            regions=[r for r in regions.split(",") if r], first_kg=Decimal("1"),
            first_fee=Decimal(first_fee), step_kg=Decimal("1"), step_fee=Decimal(step_fee),
            remote_surcharge=Decimal(remote)))
    db.session.add(carrier)
    db.session.commit()
    return carrier


def make_freight_template(shop: Shop, rules=(("", "1", "8.00", "1", "2.00"),),
                          **fields) -> "FreightTemplate":
    """A freight template of `shop` through the logistics checks; each rule is (regions
    "650000,540000" or "" for the default line, first units, first fee, step units, step fee)."""
    from models.logistics import FreightRule, FreightTemplate
    from services import logistics

    with acting_as(Actor.system("factory")):
        template = FreightTemplate(shop_id=shop.id,
                                   name=fields.pop("name", f"{marker_of(shop)} template "
                                                           f"{next(_serial)}"),
                                   basis=fields.pop("basis", "piece"),
                                   remote_regions=fields.pop("remote_regions", []),
                                   remote_surcharge=fields.pop("remote_surcharge",
                                                               Decimal("0.00")),
                                   is_default=fields.pop("is_default", False), enabled=True,
                                   **fields)
        logistics.check_template(template)
        db.session.add(template)
        db.session.flush()
        for regions, first_units, first_fee, step_units, step_fee in rules:
            rule = FreightRule(template_id=template.id,
                               regions=[r for r in regions.split(",") if r],
                               first_units=Decimal(first_units), first_fee=Decimal(first_fee),
                               step_units=Decimal(step_units), step_fee=Decimal(step_fee))
            logistics.check_freight_rule(rule)
            db.session.add(rule)
            db.session.flush()
        db.session.commit()
    return template


def _template_body(shop: Shop | None) -> dict:
    return {"name": f"Template {next(_serial)}", "basis": "piece", "free_over_amount": "99.00",
            "remote_regions": ["650000"], "remote_surcharge": "10.00",
            **({"shop_id": shop.id} if shop else {})}


def _freight_rule_body(shop: Shop | None) -> dict:
    """A line for a province none of the template's lines names (an existing template of the
    shop when there is one, so that building the body writes nothing)."""
    from models.logistics import FreightTemplate

    shop = shop or Shop.query.order_by(Shop.id).first()
    template = FreightTemplate.query.filter_by(shop_id=shop.id).order_by(
        FreightTemplate.id).first() or make_freight_template(shop, rules=())
    taken = {code for rule in template.rules for code in rule.regions or []}
    province = next(f"{n}0000" for n in range(11, 90) if f"{n}0000" not in taken)
    return {"template_id": template.id, "regions": [province], "first_units": "1",
            "first_fee": "8.00", "step_units": "1", "step_fee": "2.00"}


def _register_logistics() -> None:
    from models.logistics import Carrier, CarrierRate, CarrierRule, FreightRule, FreightTemplate

    ROW_FACTORIES.update({
        FreightTemplate: make_freight_template,
        FreightRule: lambda shop: make_freight_template(shop).rules[0],
    })
    API_BODIES.update({
        Carrier: lambda shop: {"code": f"C{next(_serial)}", "name": "Carrier",
                               "adapter": "sandbox", "supports_cod": False, "enabled": True},
        CarrierRate: lambda shop: {"carrier_id": make_carrier(rates=()).id, "regions": [],
                                   "first_kg": "1", "first_fee": "10.00", "step_kg": "1",
                                   "step_fee": "2.00", "remote_surcharge": "5.00"},
        CarrierRule: lambda shop: {"name": f"Rule {next(_serial)}", "priority": 10,
                                   "regions": ["310000"], "carrier_id": make_carrier().id,
                                   "enabled": True},
        FreightTemplate: _template_body,
        FreightRule: _freight_rule_body,
    })


_register_logistics()


# -- logistics: tracking events and customs declarations (shop data) ----------------------------

BUYER_ID_NUMBER = "11010519491231002X"   # a valid 18-digit number (check digit X)


def sandbox_carrier(code: str = "SBX"):
    """The platform's carrier tracked through the sandbox carrier (made once)."""
    from models.logistics import Carrier

    return Carrier.query.filter_by(code=code).one_or_none() or \
        make_carrier(code, rates=(), name="Sandbox carrier")


def shipped_notice(shop: Shop, carrier=None, quantity: int = 1) -> ShippingNotice:
    """A paid order's notice of `shop`, shipped with the sandbox carrier."""
    from services import order as orders

    carrier = carrier or sandbox_carrier()
    notice = _notice_row(shop) if quantity == 1 else \
        ShippingNotice.query.filter_by(order_id=paid_order(shop, quantity).id).first()
    with acting_as(Actor.system("factory")):
        orders.ship_notice(notice.id, carrier.code, f"{carrier.code}{notice.id:010d}")
        db.session.commit()
    from app.queue import run_inprocess_jobs

    run_inprocess_jobs(db.session)   # the carrier subscribes the shipment (in-process mode)
    return db.session.get(ShippingNotice, notice.id)


def _tracking_event_row(shop: Shop):
    """A scan of a shipped notice of `shop`, stored through the tracking service."""
    from datetime import timedelta

    from models.logistics import TrackingEvent
    from services import carriers, clock, tracking

    carrier = sandbox_carrier()
    notice = shipped_notice(shop, carrier)
    with acting_as(Actor.system("factory")):
        tracking.record_scans(carrier, [carriers.Scan(
            tracking_no=notice.tracking_no, external_id=f"{marker_of(shop)}-{next(_serial)}",
            status="collected", description=f"{marker_of(shop)} collected", location="上海",
            occurred_at=clock.now() - timedelta(minutes=5))])
        db.session.commit()
    return TrackingEvent.query.filter_by(notice_id=notice.id).first()


def cross_border_notice(shop: Shop, quantity: int = 1) -> ShippingNotice:
    """A paid order's notice of `shop` from a bonded (cross-border) warehouse."""
    placed = paid_order(shop, quantity)
    notice = ShippingNotice.query.filter_by(order_id=placed.id).first()
    warehouse = db.session.get(Warehouse, notice.warehouse_id)
    warehouse.cross_border = True
    db.session.commit()
    return notice


def declaration_body(shop: Shop | None, notice: ShippingNotice | None = None, **overrides):
    """A declaration of an undeclared cross-border notice of `shop` (an existing one when
    there is one, so that building the body writes nothing)."""
    from models.logistics import CustomsDeclaration

    shop = shop or Shop.query.order_by(Shop.id).first()
    if notice is None:
        notice = ShippingNotice.query.join(
            Warehouse, Warehouse.id == ShippingNotice.warehouse_id).filter(
            ShippingNotice.shop_id == shop.id, Warehouse.cross_border.is_(True),
            ShippingNotice.status == "assigned",
            ShippingNotice.id.not_in(db.session.query(CustomsDeclaration.notice_id))
        ).order_by(ShippingNotice.id).first() or cross_border_notice(shop)
    body = {"notice_id": notice.id, "buyer_name": "王小明", "buyer_id_number": BUYER_ID_NUMBER,
            "items": [{"sku_id": line["sku_id"], "hs_code": "6109100010", "origin": "JP"}
                      for line in notice.lines]}
    body.update(overrides)
    return body


def make_declaration(shop: Shop, notice: ShippingNotice | None = None, **overrides):
    """A draft declaration of `shop`, through the customs service."""
    from services import customs

    body = declaration_body(shop, notice, **overrides)
    with acting_as(Actor.system("factory")):
        made = customs.declare(body)
        db.session.commit()
    return made


def _declaration_row(shop: Shop):
    """A declaration of `shop`, and a spare undeclared cross-border notice (so that a later
    request body for the shop is made without writing)."""
    cross_border_notice(shop)
    return make_declaration(shop, cross_border_notice(shop))


def _register_tracking_and_customs() -> None:
    from models.logistics import CustomsDeclaration, TrackingEvent

    ROW_FACTORIES.update({TrackingEvent: _tracking_event_row,
                          CustomsDeclaration: _declaration_row})
    API_BODIES.update({CustomsDeclaration: declaration_body})


_register_tracking_and_customs()


def _register_storefront() -> None:
    from models.storefront import StorefrontSlot

    API_BODIES.update({StorefrontSlot: lambda shop: {
        "kind": "banner", "position": "home_top", "title": f"Banner {next(_serial)}",
        "image_url": "https://cdn.example.com/banner.jpg", "link_type": "url",
        "link_value": "https://shop.example.com/sale", "sort_order": 1,
        "platforms": ["app", "h5"], "enabled": True}})


_register_storefront()


def make_price_batch(shop: Shop, mode: str = "percent", value: str = "-10.00",
                     effective_at=None, **filters):
    """A price batch over a fresh SPU's SKUs of `shop` (scheduled a year ahead unless given)."""
    from datetime import timedelta

    from services import clock, prices

    spu = make_spu(shop, with_skus=True)
    with acting_as(Actor.system("factory")):
        batch = prices.submit({"shop_id": shop.id, "spu_ids": [spu.id], **filters}, mode,
                              Decimal(value), f"{marker_of(shop)} price batch",
                              effective_at or clock.now() + timedelta(days=365))
        db.session.commit()
    return batch


def _price_batch_body(shop: Shop | None) -> dict:
    shop = shop or Shop.query.order_by(Shop.id).first()
    # an SPU of the shop with SKUs (a new one only when it has none: reading changes nothing)
    spu = next((spu for spu in Spu.query.filter_by(shop_id=shop.id).order_by(Spu.id)
                if spu.skus), None) or make_spu(shop, with_skus=True)
    return {"filters": {"spu_ids": [spu.id]}, "mode": "percent", "value": "-5.00",
            "reason": "Weekend sale", "effective_at": "2099-01-01T00:00:00+08:00"}


def _register_prices() -> None:
    from models.prices import PriceBatch, PriceBatchLine

    ROW_FACTORIES.update({PriceBatch: make_price_batch,
                          PriceBatchLine: lambda shop: make_price_batch(shop).lines[0]})
    API_BODIES.update({PriceBatch: _price_batch_body})


_register_prices()


# -- exports (shop data when a merchant asks) ---------------------------------------------------

def make_export(shop: Shop | None, kind: str = "orders", fmt: str = "csv", filters=None):
    """An export requested by a merchant of `shop` (staff when None) and built in-process."""
    from app.queue import run_inprocess_jobs
    from services import export

    actor = Actor(name=f"{marker_of(shop)}-merchant", shop_id=shop.id, authenticated=True,
                  merchant=True) if shop else Actor(name="staff", authenticated=True)
    with acting_as(actor):
        job = export.request_export(kind, fmt, filters or {})
        db.session.commit()
    run_inprocess_jobs(db.session)
    export.build(job.id)   # with REDIS_URL the commit only queued it
    db.session.refresh(job)
    return job


def _register_exports() -> None:
    from models.export import ExportJob

    ROW_FACTORIES.update({ExportJob: make_export})
    API_BODIES.update({ExportJob: lambda shop: {"kind": "orders", "format": "csv",
                                                "filters": {}}})


_register_exports()


# -- integrations: webhooks and messages ----------------------------------------------------------

def make_subscription(shop: Shop | None, url: str = "http://127.0.0.1:9/hooks",
                      events=("order.*",), enabled: bool = True):
    """A webhook subscription of `shop` (None: the platform's) and its signing key."""
    from models.webhook import WebhookSubscription
    from services import webhook

    with acting_as(Actor.system("factory")):
        subscription = WebhookSubscription(shop_id=shop.id if shop else None,
                                           name=f"Hook {next(_serial)}", url=url,
                                           events=list(events), enabled=enabled)
        key = webhook.create_subscription(subscription)
        db.session.add(subscription)
        db.session.commit()
    return subscription, key


def _webhook_delivery_row(shop: Shop):
    """A failed delivery of an order event of `shop` to one of its subscriptions."""
    from models.events import OutboxEvent
    from models.webhook import WebhookDelivery
    from services.clock import now

    subscription, _ = make_subscription(shop, enabled=False)
    with acting_as(Actor.system("factory")):
        event = OutboxEvent(name="order.paid", payload={"order_id": 1}, shop_id=shop.id,
                            created_at=now())
        db.session.add(event)
        db.session.flush()
        delivery = WebhookDelivery(subscription_id=subscription.id, shop_id=shop.id,
                                   event_id=event.id, event_name=event.name,
                                   payload=event.payload, status="failed", attempts=8,
                                   next_attempt_at=now(), last_error="HTTP 500")
        db.session.add(delivery)
        db.session.commit()
    return delivery


def _message_row(shop: Shop):
    from models.message import Message
    from services.clock import now

    with acting_as(Actor.system("factory")):
        row = Message(shop_id=shop.id, channel="sms", recipient="13812345678",
                      body=f"{marker_of(shop)} 您的订单已发货", status="sent", attempts=1,
                      provider_ref="sbx-1", dedupe_key=f"factory:{next(_serial)}",
                      created_at=now(), sent_at=now())
        db.session.add(row)
        db.session.commit()
    return row


def _register_integrations() -> None:
    from models.message import Message, MessageTemplate
    from models.webhook import WebhookDelivery, WebhookSubscription

    ROW_FACTORIES.update({WebhookSubscription: lambda shop: make_subscription(shop)[0],
                          WebhookDelivery: _webhook_delivery_row,
                          Message: _message_row})
    API_BODIES.update({
        WebhookSubscription: lambda shop: {"name": f"Hook {next(_serial)}",
                                           "url": "http://127.0.0.1:9/hooks",
                                           "events": ["order.*"], "enabled": False,
                                           **({"shop_id": shop.id} if shop else {})},
        MessageTemplate: lambda shop: {"code": f"tpl{next(_serial)}", "channel": "sms",
                                       "locale": "zh", "event_name": "order.shipped",
                                       "body": "您的订单{order_no}已发货", "enabled": True},
    })


_register_integrations()
