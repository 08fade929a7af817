"""订单中心 screens and REST resources: checkout (Storefront), trades, orders."""
from datetime import datetime

import csv
import io

from flask import flash, redirect, request, url_for
from flask_appbuilder.actions import action
from flask_appbuilder.api import BaseApi
from flask_appbuilder.baseviews import expose
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import has_access
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate
from sqlalchemy import false, select

from app.extensions import db
from models.order import (NOTICE_STATUS_LABELS, ORDER_STATUS_LABELS, Order, OrderLine,
                          ServiceCode, ShippingNotice, Trade, code_hint)
from services import inventory, order, payment
from services.clock import business_time_text
from services.errors import BadRequestError, HoutaiError
from services.member import mask_name, mask_phone, mask_text, masks_personal_data
from views.base import KeysetInterface, ReadOnlyModelApi, ReadOnlyModelView, api_action
from views.openapi import OpenApiErrorsMixin
from views.schema import (MoneyField, ReasonSchema, StrictInteger, json_body, load_or_422)


class FilterOrderHasSku(BaseFilter):
    """Orders with a line of this SKU (`col: lines, opr: has_sku, value: <sku id>`)."""

    name = _l("Has SKU (id)")
    arg_name = "has_sku"

    def apply(self, query, value):
        if not str(value).isdigit() or int(value) >= 2**31:
            return query.filter(false())
        return query.filter(Order.id.in_(select(OrderLine.order_id)
                                         .where(OrderLine.sku_id == int(value))))


class FilterOrderHasSkuCode(BaseFilter):
    """Orders with a line of the SKU with this code (the screen's search by SKU)."""

    name = _l("Has SKU (code)")
    arg_name = "has_sku_code"

    def apply(self, query, value):
        code = str(value or "").strip()
        return query.filter(Order.id.in_(select(OrderLine.order_id)
                                         .where(OrderLine.sku_code == code)))

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
                    client:
                      type: object
                      description: Where the buyer checks out from, for risk control
                      properties: {device_id: {type: string, maxLength: 64},
                                   ip: {type: string, maxLength: 45}}
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
            placed = order.place(body, key)
        except inventory.ShortStockError as short:
            db.session.rollback()
            return self.response(409, message=short.message, errors=short.errors,
                                 short=short.short)
        db.session.commit()
        trade = db.session.get(Trade, placed.trade_id)
        return self.response(201, result=order.trade_result(trade))

    quote.__doc__ = ("What a cart costs now (nothing is reserved)" + CHECKOUT_DOC +
                     "          responses:\n            200: {description: Lines and amounts}\n")
    place.__doc__ = ("Place the order: one trade, one order per shop, stock reserved for every "
                     "line; needs an Idempotency-Key header" + CHECKOUT_DOC +
                     "          responses:\n            201: {description: 'The trade; "
                     "risk_status held: it ships once risk control releases it'}\n"
                     "            403: {description: 'risk_blocked: risk control refused; "
                     "nothing is placed'}\n")


TRADE_COLUMNS = ["id", "trade_no", "member_id", "status", "goods_amount", "discount_amount",
                 "freight", "payable", "created_at", "paid_at"]


class TradeApi(ReadOnlyModelApi):
    """Trades span shops: staff and the storefront only (merchants see their orders)."""

    resource_name = "trade"
    datamodel = SQLAInterface(Trade)
    center = "trade"
    include_route_methods = {"get", "get_list", "info", "cancel", "mark_paid", "pay"}
    list_columns = TRADE_COLUMNS
    show_columns = TRADE_COLUMNS + ["address", "pricing", "risk_status"]
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

    @api_action("/<int:pk>/pay", "pay")
    def pay(self, pk):
        """Start paying the trade through a gateway channel (each call is a new attempt), or
        pay it at once with a member's card (channel card, card_no)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties: {channel: {type: string, example: sandbox},
                               card_no: {type: string, description: with channel card}}
                  required: [channel]
          responses:
            201:
              description: 'The attempt: {"result": {"payment_id", "out_trade_no", "amount",
                "pay_url"}} (pay_url null for a card: already paid)'
            409: {description: 'The trade is not awaiting payment; errors.card_no: not the
              buyer''s card, or its balance does not cover the payable'}
        """
        raw = json_body()
        body = load_or_422(PaySchema(), {k: v for k, v in raw.items() if k != "card_no"})
        attempt, pay_url = payment.start_payment(order.visible_trade(pk), body["channel"],
                                                 card_no=raw.get("card_no"))
        db.session.commit()
        return self.response(201, result={
            "payment_id": attempt.id, "out_trade_no": attempt.out_trade_no,
            "amount": f"{attempt.amount:.2f}", "pay_url": pay_url})


ORDER_COLUMNS = ["id", "order_no", "trade_id", "shop_id", "member_id", "status", "order_type",
                 "seller_flag", "goods_amount", "discount_amount", "freight", "payable",
                 "created_at", "paid_at"]
ORDER_DETAIL = ["platform_discount", "seller_remark", "address", "deposit", "balance",
                "ships_after", "delivered_at", "line_items", "shipments", "service_codes",
                "history"]


class PaySchema(Schema):
    channel = fields.String(required=True, validate=validate.Length(min=1, max=32))


class ChangePriceSchema(Schema):
    payable = MoneyField(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=255))


class RemarkSchema(Schema):
    remark = fields.String(load_default=None, validate=validate.Length(max=255))
    flag = fields.String(load_default=None, validate=validate.OneOf(order.SELLER_FLAGS))


class AddressSchema(Schema):
    recipient = fields.String(required=True, validate=validate.Length(min=1, max=64))
    phone = fields.String(required=True, validate=validate.Length(min=1, max=32))
    province_code = fields.String(required=True)
    city_code = fields.String(required=True)
    district_code = fields.String(required=True)
    detail = fields.String(required=True, validate=validate.Length(min=1, max=255))


class ChangeAddressSchema(Schema):
    address = fields.Nested(AddressSchema, required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=255))


def masked_order(result: dict) -> dict:
    """Merchants and customer service see the buyer's address masked, and service codes by
    their last four characters (the buyer shows the whole code to redeem it)."""
    if not masks_personal_data():
        return result
    address = result.get("address")
    if isinstance(address, dict) and address:
        result["address"] = {**address, "recipient": mask_name(address.get("recipient")),
                             "phone": mask_phone(address.get("phone")),
                             "detail": mask_text(address.get("detail"))}
    for code in result.get("service_codes") or []:
        code["code"] = code_hint(code["code"])
    return result


class OrderApi(ReadOnlyModelApi):
    resource_name = "order"
    datamodel = KeysetInterface(Order)
    center = "order"
    include_route_methods = {"get", "get_list", "info", "change_price", "deliver",
                             "confirm_receipt", "remark", "change_address"}
    keyset_pagination = True
    list_columns = ORDER_COLUMNS
    show_columns = ORDER_COLUMNS + ORDER_DETAIL
    search_columns = ["order_no", "trade_id", "shop_id", "member_id", "status", "order_type",
                      "seller_flag", "created_at", "lines"]
    search_filters = {"lines": [FilterOrderHasSku]}
    order_columns = ["id", "created_at", "payable"]
    base_order = ("id", "desc")

    def pre_get(self, data):
        masked_order(data["result"])

    def answer_order(self, item):
        db.session.commit()
        return self.response(200, result=masked_order(self.show_model_schema.dump(item)))

    @api_action("/<int:pk>/change-price", "change_price")
    def change_price(self, pk):
        """改价: set an unpaid order's payable, with a reason (audited)
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
            200: {description: The order with its new price}
        """
        body = load_or_422(ChangePriceSchema(), json_body())
        return self.answer_order(order.change_order_price(pk, body["payable"], body["reason"]))

    @api_action("/<int:pk>/remark", "remark")
    def remark(self, pk):
        """The merchant's remark and flag (旗帜: none, red, yellow, green, blue, purple)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties: {remark: {type: string}, flag: {type: string}}
          responses:
            200: {description: The order}
        """
        body = load_or_422(RemarkSchema(), json_body())
        return self.answer_order(order.set_seller_remark(pk, body["remark"], body["flag"]))

    @api_action("/<int:pk>/change-address", "change_address")
    def change_address(self, pk):
        """Change where the order ships, before anything of it has shipped
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    address:
                      type: object
                      properties:
                        recipient: {type: string}
                        phone: {type: string}
                        province_code: {type: string}
                        city_code: {type: string}
                        district_code: {type: string}
                        detail: {type: string}
                    reason: {type: string}
                  required: [address, reason]
          responses:
            200: {description: The order with its new address}
        """
        body = load_or_422(ChangeAddressSchema(), json_body())
        return self.answer_order(order.change_address(pk, body["address"], body["reason"]))

    @api_action("/<int:pk>/deliver", "deliver")
    def deliver(self, pk):
        """Record delivery (staff, until carrier tracking exists)
        ---
        post:
          responses:
            200: {description: The order, delivered}
        """
        return self.answer_order(order.deliver_order(pk))

    @api_action("/<int:pk>/confirm-receipt", "confirm_receipt")
    def confirm_receipt(self, pk):
        """The buyer confirms receipt: the order completes
        ---
        post:
          responses:
            200: {description: The order, completed}
        """
        return self.answer_order(order.confirm_receipt(pk))


class ShipSchema(Schema):
    carrier = fields.String(required=True, validate=validate.Length(min=1, max=64))
    tracking_no = fields.String(required=True, validate=validate.Length(min=1, max=64))


class ImportTrackingSchema(Schema):
    rows = fields.List(fields.Raw(), required=True)


NOTICE_COLUMNS = ["id", "notice_no", "shop_id", "order_id", "route", "warehouse_id", "status",
                  "hold_reason", "lines", "payable", "carrier", "tracking_no", "created_at",
                  "shipped_at",
                  # logistics, WMS and purchasing: who carries it, what it weighs, the freight
                  # the buyer paid for it and what the carrier charges, where it is
                  "carrier_id", "weight_kg", "freight", "cost", "province_code", "pick_list_id",
                  "supplier_id", "tracking_status", "delivered_at"]
STEP_DOC = """
        ---
        post:
          responses:
            200: {description: The notice}
"""


class ShippingNoticeApi(ReadOnlyModelApi):
    resource_name = "shipping_notice"
    datamodel = SQLAInterface(ShippingNotice)
    center = "dispatch"
    include_route_methods = {"get", "get_list", "info", "ship", "pick", "pack", "hold",
                             "release", "import_tracking"}
    list_columns = NOTICE_COLUMNS
    show_columns = NOTICE_COLUMNS
    search_columns = ["notice_no", "shop_id", "order_id", "route", "warehouse_id", "status"]
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

    @api_action("/<int:pk>/pick", "pick")
    def pick(self, pk):
        return self.answer_saved(order.move_notice(pk, "pick"))

    @api_action("/<int:pk>/pack", "pack")
    def pack(self, pk):
        return self.answer_saved(order.move_notice(pk, "pack"))

    @api_action("/<int:pk>/hold", "hold")
    def hold(self, pk):
        """Hold the notice (a person must look at it first), with a reason
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}}, required: [reason]}
          responses:
            200: {description: The notice, held}
        """
        body = load_or_422(ReasonSchema(), json_body())
        return self.answer_saved(order.move_notice(pk, "hold", body["reason"]))

    @api_action("/<int:pk>/release", "release")
    def release(self, pk):
        return self.answer_saved(order.release_notice(pk))

    @api_action("/import-tracking", "import_tracking")
    def import_tracking(self):
        """Ship many notices at once from tracking numbers (JSON rows or a CSV body)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    rows:
                      type: array
                      items:
                        type: object
                        properties:
                          notice_no: {type: string}
                          order_no: {type: string}
                          carrier: {type: string}
                          tracking_no: {type: string}
                  required: [rows]
              text/csv:
                schema: {type: string}
          responses:
            200: {description: The notices shipped}
        """
        if request.mimetype == "text/csv":
            rows = tracking_rows_from_csv(request.get_data(cache=True))
        else:
            rows = load_or_422(ImportTrackingSchema(), json_body())["rows"]
        shipped = order.import_tracking(rows)
        db.session.commit()
        return self.response(200, result={"shipped": len(shipped),
                                          "notices": [n.id for n in shipped]})

    pick.__doc__ = "Picking has started" + STEP_DOC
    pack.__doc__ = "Packed, ready to ship" + STEP_DOC
    release.__doc__ = "Release a held notice to where it was" + STEP_DOC


def tracking_rows_from_csv(raw: bytes) -> list[dict]:
    """A CSV with a header naming notice_no or order_no, carrier, tracking_no (UTF-8, a BOM
    from spreadsheet programs allowed)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequestError("The CSV must be UTF-8", {"rows": [str(exc)]}) from exc
    if "\x00" in text:
        raise BadRequestError("NUL characters are not accepted")
    reader = csv.DictReader(io.StringIO(text))
    known = {"notice_no", "order_no", "carrier", "tracking_no"}
    if not reader.fieldnames or not {"carrier", "tracking_no"} <= set(reader.fieldnames):
        raise BadRequestError("The CSV needs a header: notice_no (or order_no), carrier, "
                              "tracking_no", {"rows": ["Missing header."]})
    return [{k: (v or "").strip() for k, v in row.items() if k in known}
            for row in reader]


class ServiceCodeApi(ReadOnlyModelApi):
    """Service codes (核销码) of service goods; merchants redeem them."""

    resource_name = "service_code"
    datamodel = SQLAInterface(ServiceCode)
    center = "order"
    include_route_methods = {"get", "get_list", "info", "redeem"}
    list_columns = ["id", "shop_id", "order_id", "order_line_id", "member_id", "code_hint",
                    "uses_total", "uses_left", "status", "created_at", "last_redeemed_at"]
    show_columns = list_columns
    search_columns = ["shop_id", "order_id", "member_id", "uses_left"]
    order_columns = ["id", "created_at"]
    base_order = ("id", "desc")

    @api_action("/redeem", "redeem")
    def redeem(self):
        """核销: redeem uses of a code the buyer shows
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties: {code: {type: string}, uses: {type: integer}}
                  required: [code]
          responses:
            200: {description: The code with what is left}
        """
        body = load_or_422(RedeemSchema(), json_body())
        return self.answer_saved(order.redeem_service_code(body["code"], body["uses"]))


class RedeemSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    uses = StrictInteger(load_default=1, validate=validate.Range(min=1, max=9999))


def _address_text(address: dict | None) -> str:
    if not address:
        return ""
    shown = masked_order({"address": address})["address"]
    return (f"{shown.get('recipient', '')} {shown.get('phone', '')} "
            f"{shown.get('province_code', '')}/{shown.get('city_code', '')}/"
            f"{shown.get('district_code', '')} {shown.get('detail', '')}")


class ShippingNoticeView(ReadOnlyModelView):
    datamodel = SQLAInterface(ShippingNotice)
    center = "dispatch"
    list_title = _l("Shipping notices")
    label_columns = {"notice_no": _l("Notice no."), "order": _l("Order"), "shop": _l("Shop"),
                     "status": _l("Status"), "payable": _l("Payable"), "carrier": _l("Carrier"),
                     "tracking_no": _l("Tracking no."), "created_at": _l("Created at"),
                     "shipped_at": _l("Shipped at"), "lines": _l("Lines"),
                     "warehouse": _l("Warehouse"), "route": _l("Route"),
                     "hold_reason": _l("Hold reason"), "weight_kg": _l("Weight (kg)"),
                     "freight": _l("Freight paid"), "cost": _l("Carrier cost"),
                     "tracking_status": _l("Tracking status"),
                     "delivered_at": _l("Signed for at")}
    list_columns = ["notice_no", "shop", "warehouse", "route", "status", "payable", "carrier",
                    "tracking_no", "tracking_status", "created_at"]
    show_columns = list_columns + ["order", "hold_reason", "lines", "weight_kg", "freight",
                                   "cost", "shipped_at", "delivered_at"]
    search_columns = ["notice_no", "shop", "warehouse", "route", "status"]
    formatters_columns = {"status": lambda status: NOTICE_STATUS_LABELS.get(status, status)}
    base_order = ("id", "desc")

    houtai_menu_name = "Import tracking numbers"
    include_route_methods = ReadOnlyModelView.include_route_methods | {"import_form"}
    base_permissions = ReadOnlyModelView.base_permissions + ["can_import_form"]

    @expose("/import", methods=["GET", "POST"])
    @has_access
    def import_form(self):
        """Bulk import of tracking numbers (CSV upload or pasted rows), all or nothing."""
        problems, text = [], ""
        if request.method == "POST":
            upload = request.files.get("file")
            raw = upload.read() if upload and upload.filename else \
                (request.form.get("text") or "").encode()
            text = request.form.get("text") or ""
            try:
                shipped = order.import_tracking(tracking_rows_from_csv(raw))
                db.session.commit()
                flash(str(_l("Shipped: %(count)s", count=len(shipped))), "success")
                return redirect(url_for(f"{self.endpoint}.list"))
            except HoutaiError as err:
                db.session.rollback()
                problems = [(where, "; ".join(map(str, why)))
                            for where, why in (err.errors or {"": [err.message]}).items()]
                flash(err.message, "danger")
        return self.render_template("houtai/tracking_import.html", problems=problems,
                                    text=text, title=_l("Import tracking numbers"),
                                    appbuilder=self.appbuilder)

    @action("pick", _l("Start picking"), None, "fa-hand-paper-o")
    def pick(self, items):
        return self.run_step(items, lambda pk: order.move_notice(pk, "pick"))

    @action("pack", _l("Packed"), None, "fa-archive")
    def pack(self, items):
        return self.run_step(items, lambda pk: order.move_notice(pk, "pack"))

    @action("release", _l("Release hold"), None, "fa-play")
    def release(self, items):
        return self.run_step(items, order.release_notice)


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


def _steps_text(steps) -> str:
    return "\n".join(
        f"{business_time_text(datetime.fromisoformat(s['at']))} {s['from'] or '-'} → "
        f"{s['to']} ({s['actor']})" + (f": {s['note']}" if s["note"] else "") for s in steps)


class OrderView(ReadOnlyModelView):
    datamodel = SQLAInterface(Order)
    center = "order"
    list_title = _l("Orders")
    label_columns = {"order_no": _l("Order no."), "shop": _l("Shop"), "status": _l("Status"),
                     "payable": _l("Payable"), "created_at": _l("Created at"),
                     "line_items": _l("Lines"), "history": _l("Timeline"),
                     "paid_at": _l("Paid at"), "member": _l("Member"),
                     "order_type": _l("Order type"), "seller_flag": _l("Flag"),
                     "seller_remark": _l("Seller remark"), "address": _l("Ship to"),
                     "shipments": _l("Shipments"), "service_codes": _l("Service codes"),
                     "deposit": _l("Deposit"), "ships_after": _l("Ships after")}
    list_columns = ["order_no", "shop", "member", "order_type", "status", "seller_flag",
                    "payable", "created_at"]
    show_columns = ["order_no", "shop", "member", "order_type", "status", "payable", "deposit",
                    "ships_after", "seller_flag", "seller_remark", "address", "line_items",
                    "shipments", "service_codes", "history", "created_at", "paid_at"]
    search_columns = ["order_no", "shop", "member", "order_type", "status", "seller_flag",
                      "created_at"]
    # FAB appends these to the column's own filters: search "Order no. — Has SKU (code)"
    search_filters = {"order_no": [FilterOrderHasSkuCode]}
    formatters_columns = {
        **STATUS_FORMAT,
        "address": _address_text,
        "line_items": lambda lines: "\n".join(
            f"{x['sku_code']} {x['title']} × {x['quantity']} = {x['payable']}" for x in lines),
        "shipments": lambda notices: "\n".join(
            f"{n['notice_no']} {n['route']} {n['status']} {n['carrier'] or ''} "
            f"{n['tracking_no'] or ''}" for n in notices),
        "service_codes": lambda codes: "\n".join(
            f"{code_hint(c['code']) if masks_personal_data() else c['code']} "
            f"{c['uses_left']}/{c['uses_total']}" for c in codes),
        "history": _steps_text,
    }
    base_order = ("id", "desc")
