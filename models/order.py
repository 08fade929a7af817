"""订单中心: trades (paid once by the buyer) holding one order per shop, their lines
(snapshots), stock reservations, timeline, and checkout idempotency keys."""
import enum

from flask_babel import lazy_gettext as _l
from sqlalchemy import (JSON, Boolean, CheckConstraint, Column, Date, Enum, ForeignKey, Index,
                        Integer, Numeric, String, UniqueConstraint)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import Money, ShopOwnedMixin, UTCDateTime, utcnow


class OrderStatus(str, enum.Enum):
    pending_payment = "pending_payment"
    paid = "paid"
    fulfilling = "fulfilling"
    shipped = "shipped"
    delivered = "delivered"
    completed = "completed"
    cancelled = "cancelled"
    closed = "closed"


ORDER_STATUS_LABELS = {
    OrderStatus.pending_payment: _l("Pending payment"), OrderStatus.paid: _l("Paid"),
    OrderStatus.fulfilling: _l("Fulfilling"), OrderStatus.shipped: _l("Shipped"),
    OrderStatus.delivered: _l("Delivered"), OrderStatus.completed: _l("Completed"),
    OrderStatus.cancelled: _l("Cancelled"), OrderStatus.closed: _l("Closed"),
}
STATUS_TYPE = Enum(OrderStatus, native_enum=False, length=16, validate_strings=True)


class Trade(db.Model):
    """What the buyer pays once: one order per shop of the cart."""

    __tablename__ = "trade"
    __table_args__ = (Index("ix_trade_status_created", "status", "created_at"),)

    id = Column(Integer, primary_key=True)
    trade_no = Column(String(32), nullable=False, unique=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, index=True)
    # the shipping address as it was at checkout
    address = Column(JSON, nullable=False, default=dict)
    status = Column(STATUS_TYPE, nullable=False, default=OrderStatus.pending_payment)
    goods_amount = Column(Money, nullable=False)
    discount_amount = Column(Money, nullable=False)
    freight = Column(Money, nullable=False)
    payable = Column(Money, nullable=False)
    # how the price came about: the pricing engine's explanation, coupons and points spent
    pricing = Column(JSON, nullable=True)
    # risk control's word at checkout: none | held (shipping waits for a person)
    risk_status = Column(String(8), nullable=False, default="none", server_default="none")
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    paid_at = Column(UTCDateTime, nullable=True)
    orders = relationship("Order", back_populates="trade", order_by="Order.id")
    member = relationship("Member")

    def __repr__(self) -> str:
        return self.trade_no


class Order(ShopOwnedMixin, db.Model):
    """One shop's part of a trade: what the merchant fulfils."""

    __tablename__ = "order"
    __table_args__ = (Index("ix_order_shop_status_created", "shop_id", "status", "created_at"),
                      Index("ix_order_shop_status_id", "shop_id", "status", "id"),
                      Index("ix_order_shop_newest", "shop_id", "id"))

    id = Column(Integer, primary_key=True)
    order_no = Column(String(32), nullable=False, unique=True)
    trade_id = Column(Integer, ForeignKey("trade.id"), nullable=False, index=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, index=True)
    status = Column(STATUS_TYPE, nullable=False, default=OrderStatus.pending_payment)
    # normal | flash_sale | pre_sale | virtual
    order_type = Column(String(16), nullable=False, default="normal")
    goods_amount = Column(Money, nullable=False)
    discount_amount = Column(Money, nullable=False)
    freight = Column(Money, nullable=False)
    payable = Column(Money, nullable=False)
    # the part of discount_amount the platform funds (owed to the shop at settlement)
    platform_discount = Column(Money, nullable=False, default=0, server_default="0")
    seller_remark = Column(String(255), nullable=True)
    # the merchant's flag (旗帜): none | red | yellow | green | blue | purple
    seller_flag = Column(String(8), nullable=False, default="none")
    # where this order ships: the trade's address at checkout, changed only before shipping
    address = Column(JSON, nullable=False, default=dict)
    # pre-sale: the deposit part of payable (balance = payable − deposit) and the first day
    # it may ship; its shipping notices are made on that day
    deposit = Column(Money, nullable=True)
    ships_after = Column(Date, nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    paid_at = Column(UTCDateTime, nullable=True)
    delivered_at = Column(UTCDateTime, nullable=True)
    trade = relationship("Trade", back_populates="orders")
    member = relationship("Member")
    notices = relationship("ShippingNotice", order_by="ShippingNotice.id")
    lines = relationship("OrderLine", back_populates="order", order_by="OrderLine.id")
    timeline = relationship("OrderEvent", order_by="OrderEvent.id")
    reservations = relationship("OrderReservation", order_by="OrderReservation.stock_id")
    codes = relationship("ServiceCode", order_by="ServiceCode.id", viewonly=True)

    def __repr__(self) -> str:
        return self.order_no

    @property
    def history(self) -> list[dict]:
        return [{"from": e.from_status, "to": e.to_status, "actor": e.actor, "note": e.note,
                 "at": e.created_at.isoformat()} for e in self.timeline]

    @property
    def balance(self):
        """Pre-sale: what is due after the deposit (尾款); None for other orders."""
        return None if self.deposit is None else self.payable - self.deposit

    @property
    def shipments(self) -> list[dict]:
        return [{"id": n.id, "notice_no": n.notice_no, "route": n.route,
                 "warehouse_id": n.warehouse_id, "status": NoticeStatus(n.status).value,
                 "payable": f"{n.payable:.2f}", "carrier": n.carrier,
                 "tracking_no": n.tracking_no} for n in self.notices]

    @property
    def service_codes(self) -> list[dict]:
        return [{"id": c.id, "code": c.code, "order_line_id": c.order_line_id,
                 "uses_total": c.uses_total, "uses_left": c.uses_left, "status": c.status}
                for c in self.codes]

    @property
    def line_items(self) -> list[dict]:
        return [{"id": line.id, "sku_id": line.sku_id, "sku_code": line.sku_code,
                 "title": line.title, "sales_values": line.sales_values,
                 "quantity": line.quantity, "unit_price": f"{line.unit_price:.2f}",
                 "amount": f"{line.amount:.2f}", "discount": f"{line.discount:.2f}",
                 "payable": f"{line.payable:.2f}", "discounts": line.discounts or [],
                 "goods_kind": line.goods_kind, "fulfilment": line.fulfilment}
                for line in self.lines]


class OrderLine(ShopOwnedMixin, db.Model):
    """A line as it was bought: later product edits never change it."""

    __tablename__ = "order_line"

    id = Column(Integer, primary_key=True)
    order_id = Column(Integer, ForeignKey("order.id"), nullable=False, index=True)
    sku_id = Column(Integer, ForeignKey("sku.id"), nullable=False, index=True)
    spu_id = Column(Integer, nullable=False)
    sku_code = Column(String(64), nullable=False)
    title = Column(String(128), nullable=False)
    sales_values = Column(JSON, nullable=False, default=dict)
    unit_price = Column(Money, nullable=False)
    quantity = Column(Integer, nullable=False)
    amount = Column(Money, nullable=False)
    discount = Column(Money, nullable=False)
    payable = Column(Money, nullable=False)
    # each discount's share of this line: [{"rule", "amount", "funded_by"}], summing to discount
    discounts = Column(JSON, nullable=False, default=list, server_default="[]")
    # physical | service | service_physical
    goods_kind = Column(String(20), nullable=False, default="physical")
    # what after-sales requests have claimed of `payable` (open or refunded), never more
    after_sale_amount = Column(Money, nullable=False, default=0, server_default="0")
    # own | consignment | dropship
    fulfilment = Column(String(16), nullable=False, default="own")
    order = relationship("Order", back_populates="lines")

    def __repr__(self) -> str:
        return f"{self.sku_code} × {self.quantity}"


class OrderReservation(ShopOwnedMixin, db.Model):
    """Stock an order holds; released at most once (cancel), or shipped."""

    __tablename__ = "order_reservation"

    id = Column(Integer, primary_key=True)
    order_id = Column(Integer, ForeignKey("order.id"), nullable=False, index=True)
    stock_id = Column(Integer, ForeignKey("stock.id"), nullable=False)
    sku_id = Column(Integer, nullable=False)
    warehouse_id = Column(Integer, nullable=False)
    quantity = Column(Integer, nullable=False)
    released = Column(Boolean, nullable=False, default=False)


class OrderEvent(ShopOwnedMixin, db.Model):
    """The order timeline: who or what moved it, when, from, to, with a note."""

    __tablename__ = "order_event"

    id = Column(Integer, primary_key=True)
    order_id = Column(Integer, ForeignKey("order.id"), nullable=False, index=True)
    from_status = Column(String(16), nullable=True)
    to_status = Column(String(16), nullable=False)
    actor = Column(String(128), nullable=False)
    note = Column(String(255), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return f"{self.from_status or '-'} → {self.to_status}"


class IdempotencyKey(db.Model):
    """A checkout request already handled: a replay answers the same trade."""

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("caller", "key", name="uq_idempotency_caller_key"),)

    id = Column(Integer, primary_key=True)
    caller = Column(String(128), nullable=False)
    key = Column(String(128), nullable=False)
    request_hash = Column(String(64), nullable=False)
    trade_id = Column(Integer, ForeignKey("trade.id"), nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    trade = relationship("Trade")


class NoticeStatus(str, enum.Enum):
    pending = "pending"
    assigned = "assigned"
    picking = "picking"
    packed = "packed"
    shipped = "shipped"
    held = "held"
    cancelled = "cancelled"


NOTICE_STATUS_LABELS = {
    NoticeStatus.pending: _l("Pending"), NoticeStatus.assigned: _l("Assigned"),
    NoticeStatus.picking: _l("Picking"), NoticeStatus.packed: _l("Packed"),
    NoticeStatus.shipped: _l("Shipped"), NoticeStatus.held: _l("Held"),
    NoticeStatus.cancelled: _l("Cancelled"),
}


class ShippingNotice(ShopOwnedMixin, db.Model):
    """发货通知单: one shipment of a paid order, from one warehouse (route `warehouse`) or
    shipped by the supplier (route `dropship`, no warehouse until purchasing assigns one)."""

    __tablename__ = "shipping_notice"
    __table_args__ = (UniqueConstraint("order_id", "warehouse_id",
                                       name="uq_shipping_notice_order_warehouse"),)

    id = Column(Integer, primary_key=True)
    notice_no = Column(String(32), nullable=False, unique=True)
    order_id = Column(Integer, ForeignKey("order.id"), nullable=False, index=True)
    warehouse_id = Column(Integer, ForeignKey("warehouse.id"), nullable=True, index=True)
    # warehouse | dropship
    route = Column(String(16), nullable=False, default="warehouse")
    status = Column(Enum(NoticeStatus, native_enum=False, length=16, validate_strings=True),
                    nullable=False, default=NoticeStatus.assigned)
    # why a person held it (and what it returns to when released)
    hold_reason = Column(String(255), nullable=True)
    held_from = Column(String(16), nullable=True)
    # [{"sku_id", "quantity", "payable"}]: this shipment's part of the order, to the cent
    lines = Column(JSON, nullable=False, default=list)
    payable = Column(Money, nullable=False)
    carrier = Column(String(64), nullable=True)
    tracking_no = Column(String(64), nullable=True)
    # logistics: the carrier the selection rules stamped (or the one it shipped with), the
    # parcel's weight, the freight the buyer paid for this shipment (its share of the order's)
    # and what the carrier charges for it (its rate card), the buyer's province (reports)
    carrier_id = Column(Integer, ForeignKey("carrier.id"), nullable=True, index=True)
    weight_kg = Column(Numeric(10, 3), nullable=True)
    freight = Column(Money, nullable=False, default=0, server_default="0")
    cost = Column(Money, nullable=True)
    province_code = Column(String(16), nullable=True)
    # WMS: the pick list it was picked on; purchasing: the supplier that ships it (代发)
    pick_list_id = Column(Integer, ForeignKey("pick_list.id"), nullable=True, index=True)
    supplier_id = Column(Integer, ForeignKey("supplier.id"), nullable=True, index=True)
    # tracking: the latest carrier status and when the carrier reported it signed
    tracking_status = Column(String(20), nullable=True)
    delivered_at = Column(UTCDateTime, nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    shipped_at = Column(UTCDateTime, nullable=True)
    warehouse = relationship("Warehouse")
    order = relationship("Order", viewonly=True)

    def __repr__(self) -> str:
        return self.notice_no


def code_hint(code: str) -> str:
    """Enough of a service code to talk about it, not enough to redeem it."""
    return "*" * (len(code) - 4) + code[-4:]


class ServiceCode(ShopOwnedMixin, db.Model):
    """What a buyer of service goods receives instead of (or besides) a shipment: a code the
    merchant redeems, once per unit bought."""

    __tablename__ = "service_code"

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False, unique=True)
    order_id = Column(Integer, ForeignKey("order.id"), nullable=False, index=True)
    order_line_id = Column(Integer, ForeignKey("order_line.id"), nullable=False, index=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, index=True)
    uses_total = Column(Integer, nullable=False)
    uses_left = Column(Integer, nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    last_redeemed_at = Column(UTCDateTime, nullable=True)
    __table_args__ = (CheckConstraint("uses_left >= 0 AND uses_left <= uses_total",
                                      name="ck_service_code_uses"),)

    @property
    def status(self) -> str:
        return "redeemed" if self.uses_left == 0 else "issued"

    @property
    def code_hint(self) -> str:
        return code_hint(self.code)

    def __repr__(self) -> str:
        return self.code
