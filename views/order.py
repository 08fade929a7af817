"""订单中心 screens and REST resources: checkout (Storefront), trades, orders."""
from datetime import datetime

from flask import request
from flask_appbuilder.api import BaseApi
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.extensions import db
from models.order import ORDER_STATUS_LABELS, Order, ShippingNotice, Trade
from services import inventory, order
from services.clock import business_time_text
from services.errors import BadRequestError
from views.base import ReadOnlyModelApi, ReadOnlyModelView, api_action
from views.openapi import OpenApiErrorsMixin
from views.schema import MoneyField, ReasonSchema, json_body, load_or_422

CHECKOUT_DOC = """
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    member_id: {type: integer}
                    address_id: {type: integer}
                    lines:
                      type: array
                      items:
                        type: object
                        properties: {sku_id: {type: integer}, quantity: {type: integer}}
                    coupon_codes: {type: array, items: {type: string}}
                    points: {type: integer}
                    client: {type: object}
                  required: [member_id, address_id, lines]
"""


class CheckoutSchema(Schema):
    member_id = fields.Raw(required=True)
    address_id = fields.Raw(required=True)
    lines = fields.List(fields.Dict(), required=True)
    coupon_codes = fields.List(fields.String(), load_default=list)
    points = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0))
    client = fields.Dict(load_default=dict)


class CheckoutApi(OpenApiErrorsMixin, BaseApi):
    resource_name = "checkout"
    center = "checkout"
    openapi_spec_tag = "Checkout"

    @api_action("/quote", "post")
    def quote(self):
        body = load_or_422(CheckoutSchema(), json_body())
        return self.response(200, result=order.quote(body))

    @api_action("/place", "post")
    def place(self):
        key = request.headers.get("Idempotency-Key")
        if not key:
            raise BadRequestError("Send an Idempotency-Key header",
                                  {"idempotency_key": ["Missing."]})
        body = load_or_422(CheckoutSchema(), json_body())
        try:
            trade, _created = order.place(body, key)
        except inventory.ShortStockError as short:
            db.session.rollback()
            return self.response(409, message=short.message, errors=short.errors,
                                 short=short.short)
        db.session.commit()
        return self.response(201, result=order.trade_result(trade))

    quote.__doc__ = ("What a cart costs now (nothing is reserved)" + CHECKOUT_DOC +
                     "          responses:\n            200: {description: Lines and amounts}\n")
    place.__doc__ = ("Place the order: one trade, one order per shop, stock reserved for every "
                     "line; needs an Idempotency-Key header" + CHECKOUT_DOC +
                     "          responses:\n            201: {description: The trade}\n")


TRADE_COLUMNS = ["id", "trade_no", "member_id", "status", "goods_amount", "discount_amount",
                 "freight", "payable", "created_at", "paid_at"]


class TradeApi(ReadOnlyModelApi):
    """Trades span shops: staff and the storefront only (merchants see their orders)."""

    resource_name = "trade"
    datamodel = SQLAInterface(Trade)
    center = "trade"
    include_route_methods = {"get", "get_list", "info", "cancel", "mark_paid"}
    list_columns = TRADE_COLUMNS
    show_columns = TRADE_COLUMNS + ["address"]
    search_columns = ["trade_no", "member_id", "status", "created_at"]
    order_columns = ["id", "created_at", "payable"]
    base_order = ("id", "desc")

    def _step(self, pk, step):
        body = load_or_422(ReasonSchema(), json_body())
        order.visible_trade(pk)
        trade = step(pk, body["reason"])
        db.session.commit()
        return self.response(200, result=order.trade_result(trade))

    @api_action("/<int:pk>/cancel", "cancel")
    def cancel(self, pk):
        """Cancel an unpaid trade; its stock is released
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}}, required: [reason]}
          responses:
            200: {description: The trade, cancelled}
        """
        return self._step(pk, order.cancel_trade)

    @api_action("/<int:pk>/mark-paid", "mark_paid")
    def mark_paid(self, pk):
        """Record an offline payment (staff)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}}, required: [reason]}
          responses:
            200: {description: The trade, paid}
        """
        return self._step(pk, order.mark_paid)


ORDER_COLUMNS = ["id", "order_no", "trade_id", "shop_id", "member_id", "status", "order_type",
                 "goods_amount", "discount_amount", "freight", "payable", "created_at", "paid_at"]


class ChangePriceSchema(Schema):
    payable = MoneyField(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=255))


class OrderApi(ReadOnlyModelApi):
    resource_name = "order"
    datamodel = SQLAInterface(Order)
    center = "order"
    include_route_methods = {"get", "get_list", "info", "change_price", "deliver",
                             "confirm_receipt"}
    keyset_pagination = True
    list_columns = ORDER_COLUMNS
    show_columns = ORDER_COLUMNS + ["seller_remark", "line_items", "history"]
    search_columns = ["order_no", "trade_id", "shop_id", "member_id", "status", "created_at"]
    order_columns = ["id", "created_at", "payable"]
    base_order = ("id", "desc")

    @api_action("/<int:pk>/change-price", "change_price")
    def change_price(self, pk):
        """改价: set an unpaid order's payable, apportioned over its lines
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties: {payable: {type: string}, reason: {type: string}}
                  required: [payable, reason]
          responses:
            200: {description: The order with its new amounts}
        """
        body = load_or_422(ChangePriceSchema(), json_body())
        changed = order.change_order_price(pk, body["payable"], body["reason"])
        return self.answer_saved(changed)

    @api_action("/<int:pk>/deliver", "deliver")
    def deliver(self, pk):
        """Record that a shipped order was delivered (staff, until carrier tracking exists)
        ---
        post:
          responses:
            200: {description: The order, delivered}
        """
        delivered = order.deliver_order(pk)
        return self.answer_saved(delivered)

    @api_action("/<int:pk>/confirm-receipt", "confirm_receipt")
    def confirm_receipt(self, pk):
        """The buyer confirms receipt of a delivered order: it completes
        ---
        post:
          responses:
            200: {description: The order, completed}
        """
        completed = order.confirm_receipt(pk)
        return self.answer_saved(completed)


class ShipSchema(Schema):
    carrier = fields.String(required=True, validate=validate.Length(min=1, max=64))
    tracking_no = fields.String(required=True, validate=validate.Length(min=1, max=64))


NOTICE_COLUMNS = ["id", "notice_no", "shop_id", "order_id", "warehouse_id", "status", "lines",
                  "payable", "carrier", "tracking_no", "created_at", "shipped_at"]


class ShippingNoticeApi(ReadOnlyModelApi):
    resource_name = "shipping_notice"
    datamodel = SQLAInterface(ShippingNotice)
    center = "dispatch"
    include_route_methods = {"get", "get_list", "info", "ship"}
    list_columns = NOTICE_COLUMNS
    show_columns = NOTICE_COLUMNS
    search_columns = ["notice_no", "shop_id", "order_id", "warehouse_id", "status"]
    order_columns = ["id", "created_at"]
    base_order = ("id", "desc")

    @api_action("/<int:pk>/ship", "ship")
    def ship(self, pk):
        """The warehouse shipped this notice: carrier and tracking number
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties: {carrier: {type: string}, tracking_no: {type: string}}
                  required: [carrier, tracking_no]
          responses:
            200: {description: The notice, shipped}
        """
        body = load_or_422(ShipSchema(), json_body())
        notice = order.ship_notice(pk, body["carrier"], body["tracking_no"])
        return self.answer_saved(notice)


class ShippingNoticeView(ReadOnlyModelView):
    datamodel = SQLAInterface(ShippingNotice)
    center = "dispatch"
    list_title = _l("Shipping notices")
    label_columns = {"notice_no": _l("Notice no."), "order": _l("Order"), "shop": _l("Shop"),
                     "status": _l("Status"), "payable": _l("Payable"), "carrier": _l("Carrier"),
                     "tracking_no": _l("Tracking no."), "created_at": _l("Created at"),
                     "shipped_at": _l("Shipped at"), "lines": _l("Lines")}
    list_columns = ["notice_no", "shop", "status", "payable", "carrier", "tracking_no",
                    "created_at"]
    show_columns = list_columns + ["lines", "shipped_at"]
    search_columns = ["notice_no", "shop", "status"]
    base_order = ("id", "desc")


STATUS_FORMAT = {"status": lambda status: ORDER_STATUS_LABELS.get(status, status)}


class TradeView(ReadOnlyModelView):
    datamodel = SQLAInterface(Trade)
    center = "trade"
    list_title = _l("Trades")
    label_columns = {"trade_no": _l("Trade no."), "member": _l("Member"), "status": _l("Status"),
                     "payable": _l("Payable"), "created_at": _l("Created at"),
                     "paid_at": _l("Paid at"), "goods_amount": _l("Goods amount")}
    list_columns = ["trade_no", "member", "status", "payable", "created_at", "paid_at"]
    show_columns = ["trade_no", "member", "status", "goods_amount", "payable", "created_at",
                    "paid_at"]
    search_columns = ["trade_no", "member", "status", "created_at"]
    formatters_columns = STATUS_FORMAT
    base_order = ("id", "desc")


class OrderView(ReadOnlyModelView):
    datamodel = SQLAInterface(Order)
    center = "order"
    list_title = _l("Orders")
    label_columns = {"order_no": _l("Order no."), "shop": _l("Shop"), "status": _l("Status"),
                     "payable": _l("Payable"), "created_at": _l("Created at"),
                     "line_items": _l("Lines"), "history": _l("Timeline"),
                     "paid_at": _l("Paid at")}
    list_columns = ["order_no", "shop", "status", "payable", "created_at"]
    show_columns = ["order_no", "shop", "status", "payable", "line_items", "history",
                    "created_at", "paid_at"]
    search_columns = ["order_no", "shop", "status", "created_at"]
    formatters_columns = {
        **STATUS_FORMAT,
        "line_items": lambda lines: "\n".join(
            f"{x['sku_code']} {x['title']} × {x['quantity']} = {x['payable']}" for x in lines),
        "history": lambda steps: "\n".join(
            f"{business_time_text(datetime.fromisoformat(s['at']))} {s['from'] or '-'} → "
            f"{s['to']} ({s['actor']})" + (f": {s['note']}" if s["note"] else "")
            for s in steps),
    }
    base_order = ("id", "desc")
