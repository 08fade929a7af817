"""WMS 仓库管理 REST and screens: inbound receipts, pick lists with packing and shipping of
their notices, stocktaking count sheets and transfers. Every step runs a rule of
services/wms.py; stock itself changes only there (through services/inventory.py)."""
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.extensions import db
from models.order import NOTICE_STATUS_LABELS, ShippingNotice
from models.wms import PickList, Receipt, StockCount, StockTransfer
from services import wms
from services.actor import ALL_SHOPS, shop_scope
from services.errors import ValidationFailed
from views.base import (SHOP_MISMATCH, HoutaiModelApi, ReadOnlyModelView, api_action,
                        api_errors)
from views.schema import ScaledDecimal, StrictInteger, json_body, load_or_422, optional_body

NOTE = dict(load_default=None, allow_none=True, validate=validate.Length(max=255))
CODE = dict(load_default=None, allow_none=True, validate=validate.Length(max=64))
OPTIONAL_ID = dict(load_default=None, allow_none=True)


def own_shop_only(body: dict) -> None:
    """A merchant names no other shop (the isolation contract: 422 errors.shop_id)."""
    scope = shop_scope()
    if scope is not ALL_SHOPS and body.get("shop_id") is not None and body["shop_id"] != scope:
        raise ValidationFailed.field("shop_id", SHOP_MISMATCH)


# -- schemas -------------------------------------------------------------------------------------

class ReceiptLineIn(Schema):
    sku_id = StrictInteger(required=True)
    expected = StrictInteger(required=True)


class ReceiptIn(Schema):
    warehouse_id = StrictInteger(**OPTIONAL_ID)
    source = fields.String(load_default="other", validate=validate.OneOf(wms.RECEIPT_SOURCES))
    purchase_order_id = StrictInteger(**OPTIONAL_ID)
    shop_id = StrictInteger(**OPTIONAL_ID)
    note = fields.String(**NOTE)
    lines = fields.List(fields.Nested(ReceiptLineIn), load_default=None, allow_none=True)


class ReceivedLineIn(Schema):
    line_id = StrictInteger(required=True)
    received = StrictInteger()
    rejected = StrictInteger()
    reject_reason = fields.String(allow_none=True, validate=validate.Length(max=255))
    location = fields.String(allow_none=True, validate=validate.Length(max=32))


class ReceivedLinesIn(Schema):
    lines = fields.List(fields.Nested(ReceivedLineIn), required=True)


class PickListIn(Schema):
    notice_ids = fields.List(StrictInteger(), required=True)
    shop_id = StrictInteger(**OPTIONAL_ID)


class PackIn(Schema):
    weight_kg = ScaledDecimal(3, required=True)


class ShipIn(Schema):
    carrier = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(min=1, max=32))
    tracking_no = fields.String(required=True, validate=validate.Length(min=1, max=64))


class CountIn(Schema):
    warehouse_id = StrictInteger(required=True)
    zone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=32))
    blind = fields.Boolean(load_default=True)
    note = fields.String(**NOTE)
    shop_id = StrictInteger(**OPTIONAL_ID)


class CountedLineIn(Schema):
    line_id = StrictInteger(required=True)
    counted = StrictInteger(required=True)


class CountedLinesIn(Schema):
    lines = fields.List(fields.Nested(CountedLineIn), required=True)


class TransferLineIn(Schema):
    sku_id = StrictInteger(required=True)
    quantity = StrictInteger(required=True)


class TransferIn(Schema):
    from_warehouse_id = StrictInteger(required=True)
    to_warehouse_id = StrictInteger(required=True)
    lines = fields.List(fields.Nested(TransferLineIn), required=True)
    shop_id = StrictInteger(**OPTIONAL_ID)
    note = fields.String(**NOTE)
    carrier = fields.String(**CODE)
    tracking_no = fields.String(**CODE)


class TransferShipIn(Schema):
    carrier = fields.String(**CODE)
    tracking_no = fields.String(**CODE)


class TransferReceivedLineIn(Schema):
    line_id = StrictInteger(required=True)
    received = StrictInteger(required=True)


class TransferReceiveIn(Schema):
    lines = fields.List(fields.Nested(TransferReceivedLineIn), load_default=None,
                        allow_none=True)


# -- what a document's lines look like in answers ------------------------------------------------

def receipt_lines(receipt: Receipt) -> list[dict]:
    return [{"id": l.id, "sku_id": l.sku_id, "purchase_order_line_id": l.purchase_order_line_id,
             "expected": l.expected, "received": l.received, "rejected": l.rejected,
             "reject_reason": l.reject_reason, "location": l.location} for l in receipt.lines]


def transfer_lines(transfer: StockTransfer) -> list[dict]:
    return [{"id": l.id, "sku_id": l.sku_id, "quantity": l.quantity, "received": l.received}
            for l in transfer.lines]


def pick_notices(pick: PickList) -> list[int]:
    return [n.id for n in ShippingNotice.query.filter_by(pick_list_id=pick.id)
            .order_by(ShippingNotice.id)]


STEP_ANSWERS = """
          responses:
            200: {description: 'The document, with its lines'}
            404: {description: No such document (or another shop's)}
            409: {description: 'Not in a status this step starts from (errors.status)'}
"""


class WmsDocumentApi(HoutaiModelApi):
    """A WMS document: read with its lines; created and moved only through services/wms.py."""

    center = "wms"
    order_columns = ["id", "created_at"]
    base_order = ("id", "desc")
    add_columns: list = []

    def extra(self, item) -> dict:
        """What the answer adds to the record's columns (its lines)."""
        return {}

    def answer(self, item, status: int = 200):
        db.session.commit()
        result = {**self.show_model_schema.dump(item), **self.extra(item)}
        return self.response(status, id=item.id, result=result)

    def pre_get(self, data):
        item = self.datamodel.get(data["id"], self._base_filters)
        if item is not None:
            data["result"].update(self.extra(item))


# -- receipts ----------------------------------------------------------------------------------

RECEIPT_COLUMNS = ["id", "receipt_no", "shop_id", "warehouse_id", "source", "purchase_order_id",
                   "status", "note", "created_at", "confirmed_at", "confirmed_by"]


class ReceiptApi(WmsDocumentApi):
    """入库单: created (from a purchase order or by lines), received line by line, confirmed."""

    resource_name = "receipt"
    datamodel = SQLAInterface(Receipt)
    include_route_methods = {"get", "get_list", "info", "post", "lines", "confirm", "cancel"}
    list_columns = RECEIPT_COLUMNS
    show_columns = RECEIPT_COLUMNS
    add_model_schema = ReceiptIn()
    add_columns = ["warehouse_id", "source", "purchase_order_id", "shop_id", "note", "lines"]
    search_columns = ["receipt_no", "shop_id", "warehouse_id", "source", "purchase_order_id",
                      "status", "created_at"]

    def extra(self, item):
        return {"lines": receipt_lines(item)}

    @api_errors
    def post_headless(self):
        """A draft receipt: `source` purchase takes the purchase order's outstanding lines;
        `return`/`other` name lines of SKUs and what is expected"""
        body = load_or_422(self.add_model_schema, json_body())
        own_shop_only(body)
        return self.answer(wms.create_receipt(**body), 201)

    @api_action("/<int:pk>/lines", "lines")
    def lines(self, pk):
        """Record what arrived on lines of a draft receipt
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    lines:
                      type: array
                      items:
                        type: object
                        properties: {line_id: {type: integer}, received: {type: integer},
                                     rejected: {type: integer}, reject_reason: {type: string},
                                     location: {type: string, example: A-01-02}}
                        required: [line_id]
                  required: [lines]
          responses:
            200: {description: 'The receipt with its lines'}
            404: {description: No such receipt}
            409: {description: 'Not a draft (errors.status)'}
            422: {description: 'A bad line (errors["lines.<n>.<field>"]); on a purchase
              receipt received + rejected above expected (errors["lines.<n>.received"])'}
        """
        body = load_or_422(ReceivedLinesIn(), json_body())
        return self.answer(wms.record_receipt_lines(pk, body["lines"]))

    @api_action("/<int:pk>/confirm", "confirm")
    def confirm(self, pk):
        return self.answer(wms.confirm_receipt(pk))

    @api_action("/<int:pk>/cancel", "cancel")
    def cancel(self, pk):
        return self.answer(wms.cancel_receipt(pk))

    confirm.__doc__ = ("Confirm the receipt, once: what was received goes on hand (ledger "
                       "`receipt`); publishes receipt.confirmed\n        ---\n        post:"
                       + STEP_ANSWERS)
    cancel.__doc__ = "Cancel a draft receipt\n        ---\n        post:" + STEP_ANSWERS


# -- pick lists and their notices --------------------------------------------------------------

PICK_COLUMNS = ["id", "pick_no", "warehouse_id", "shop_id", "status", "lines", "created_at",
                "picked_at"]


class PickListApi(WmsDocumentApi):
    """拣货单: several assigned notices of one warehouse picked in one walk."""

    resource_name = "pick_list"
    datamodel = SQLAInterface(PickList)
    include_route_methods = {"get", "get_list", "info", "post", "picked", "cancel"}
    list_columns = PICK_COLUMNS
    show_columns = PICK_COLUMNS
    add_model_schema = PickListIn()
    add_columns = ["notice_ids"]
    search_columns = ["pick_no", "warehouse_id", "shop_id", "status", "created_at"]

    def extra(self, item):
        return {"notice_ids": pick_notices(item)}

    @api_errors
    def post_headless(self):
        """A pick list of `notice_ids` (assigned notices of one warehouse); they move to
        picking"""
        body = load_or_422(self.add_model_schema, json_body())
        own_shop_only(body)
        return self.answer(wms.create_pick_list(body["notice_ids"]), 201)

    @api_action("/<int:pk>/picked", "picked")
    def picked(self, pk):
        return self.answer(wms.mark_picked(pk))

    @api_action("/<int:pk>/cancel", "cancel")
    def cancel(self, pk):
        return self.answer(wms.cancel_pick_list(pk))

    picked.__doc__ = "Everything on the list was picked\n        ---\n        post:" + STEP_ANSWERS
    cancel.__doc__ = ("Cancel an open list: its notices go back to assigned\n        ---\n"
                      "        post:" + STEP_ANSWERS)


NOTICE_COLUMNS = ["id", "notice_no", "shop_id", "order_id", "warehouse_id", "status",
                  "pick_list_id", "lines", "carrier_id", "carrier", "tracking_no", "weight_kg",
                  "created_at", "shipped_at"]


class WmsNoticeApi(HoutaiModelApi):
    """The warehouse's side of shipping notices: pack (with the parcel's weight) and ship
    (with a carrier and a tracking number)."""

    resource_name = "wms_notice"
    datamodel = SQLAInterface(ShippingNotice)
    center = "wms"
    include_route_methods = {"get", "get_list", "info", "pack", "ship"}
    base_filters = [["route", FilterEqual, "warehouse"]]
    list_columns = NOTICE_COLUMNS
    show_columns = NOTICE_COLUMNS
    search_columns = ["notice_no", "shop_id", "warehouse_id", "status", "pick_list_id"]
    order_columns = ["id", "created_at"]
    base_order = ("id", "desc")

    @api_action("/<int:pk>/pack", "pack")
    def pack(self, pk):
        """Pack a notice of a picked list, with its parcel's weight
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {weight_kg: {type: string, example: "1.250"}},
                         required: [weight_kg]}
          responses:
            200: {description: The notice, packed}
            404: {description: No such notice in a warehouse of yours}
            409: {description: 'Not picking, or its pick list is not picked (errors.pick_list_id)'}
            422: {description: 'errors.weight_kg'}
        """
        body = load_or_422(PackIn(), json_body())
        return self.answer_saved(wms.pack_notice(pk, body["weight_kg"]))

    @api_action("/<int:pk>/ship", "ship")
    def ship(self, pk):
        """Ship a packed notice: a carrier code (default: the carrier stamped on it) and the
        tracking number; stock is deducted and the order moves on
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties: {carrier: {type: string}, tracking_no: {type: string}}
                  required: [tracking_no]
          responses:
            200: {description: The notice, shipped}
            404: {description: No such notice in a warehouse of yours}
            409: {description: 'Not packed (errors.status)'}
            422: {description: 'Unknown or disabled carrier (errors.carrier)'}
        """
        body = load_or_422(ShipIn(), json_body())
        return self.answer_saved(wms.ship_packed_notice(pk, body["tracking_no"],
                                                        body["carrier"]))


# -- stocktaking -------------------------------------------------------------------------------

COUNT_COLUMNS = ["id", "count_no", "warehouse_id", "shop_id", "zone", "blind", "status", "note",
                 "created_at", "submitted_at", "decided_at", "decided_by"]


class StockCountApi(WmsDocumentApi):
    """盘点单: counted line by line, submitted, approved (variances posted) or rejected."""

    resource_name = "stock_count"
    datamodel = SQLAInterface(StockCount)
    include_route_methods = {"get", "get_list", "info", "post", "count", "submit", "approve",
                             "reject"}
    list_columns = COUNT_COLUMNS
    show_columns = COUNT_COLUMNS
    add_model_schema = CountIn()
    add_columns = ["warehouse_id", "zone", "blind", "note"]
    search_columns = ["count_no", "warehouse_id", "shop_id", "zone", "status", "created_at"]

    def extra(self, item):
        return {"lines": wms.count_lines(item)}

    @api_errors
    def post_headless(self):
        """A count sheet of a warehouse (or a zone of it); blind by default"""
        body = load_or_422(self.add_model_schema, json_body())
        own_shop_only(body)
        body.pop("shop_id", None)
        return self.answer(wms.create_count(**body), 201)

    @api_action("/<int:pk>/count", "count")
    def count(self, pk):
        """Record counted quantities
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    lines:
                      type: array
                      items:
                        type: object
                        properties: {line_id: {type: integer}, counted: {type: integer}}
                        required: [line_id, counted]
                  required: [lines]
          responses:
            200: {description: 'The count sheet (a blind one without expected figures)'}
            404: {description: No such count sheet}
            409: {description: 'Not counting any more (errors.status)'}
            422: {description: 'errors["lines.<n>.line_id"] or errors["lines.<n>.counted"]'}
        """
        body = load_or_422(CountedLinesIn(), json_body())
        return self.answer(wms.record_counts(pk, body["lines"]))

    @api_action("/<int:pk>/submit", "submit")
    def submit(self, pk):
        return self.answer(wms.submit_count(pk))

    @api_action("/<int:pk>/approve", "approve")
    def approve(self, pk):
        return self.answer(wms.approve_count(pk))

    @api_action("/<int:pk>/reject", "reject")
    def reject(self, pk):
        return self.answer(wms.reject_count(pk))

    submit.__doc__ = ("Submit a counted sheet (422 errors.lines while a line is not "
                      "counted)\n        ---\n        post:" + STEP_ANSWERS)
    approve.__doc__ = ("Approve: each variance is posted to the ledger (`stocktake`); 409 "
                       "errors.lines when on hand would fall below reserved\n        ---\n"
                       "        post:" + STEP_ANSWERS)
    reject.__doc__ = "Reject a submitted count\n        ---\n        post:" + STEP_ANSWERS


# -- transfers ---------------------------------------------------------------------------------

TRANSFER_COLUMNS = ["id", "transfer_no", "shop_id", "from_warehouse_id", "to_warehouse_id",
                    "status", "carrier", "tracking_no", "note", "created_at", "shipped_at",
                    "received_at"]


class StockTransferApi(WmsDocumentApi):
    """调拨单: drafted, shipped (stock leaves the source), received (arrives at the
    destination)."""

    resource_name = "stock_transfer"
    datamodel = SQLAInterface(StockTransfer)
    include_route_methods = {"get", "get_list", "info", "post", "ship", "receive", "cancel"}
    list_columns = TRANSFER_COLUMNS
    show_columns = TRANSFER_COLUMNS
    add_model_schema = TransferIn()
    add_columns = ["from_warehouse_id", "to_warehouse_id", "lines", "shop_id", "note",
                   "carrier", "tracking_no"]
    search_columns = ["transfer_no", "shop_id", "from_warehouse_id", "to_warehouse_id",
                      "status", "created_at"]

    def extra(self, item):
        return {"lines": transfer_lines(item)}

    @api_errors
    def post_headless(self):
        """A draft transfer of one shop's goods between two warehouses"""
        body = load_or_422(self.add_model_schema, json_body())
        own_shop_only(body)
        return self.answer(wms.create_transfer(**body), 201)

    @api_action("/<int:pk>/ship", "ship")
    def ship(self, pk):
        """Ship: the goods leave the source warehouse (only what is available)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties: {carrier: {type: string}, tracking_no: {type: string}}
          responses:
            200: {description: The transfer, in transit}
            404: {description: No such transfer}
            409: {description: 'Not a draft (errors.status), or not enough available stock
              (errors.lines)'}
        """
        body = load_or_422(TransferShipIn(), optional_body())
        return self.answer(wms.ship_transfer(pk, body["carrier"], body["tracking_no"]))

    @api_action("/<int:pk>/receive", "receive")
    def receive(self, pk):
        """Receive at the destination: each line's received quantity (default: all sent)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    lines:
                      type: array
                      items:
                        type: object
                        properties: {line_id: {type: integer}, received: {type: integer}}
                        required: [line_id, received]
          responses:
            200: {description: The transfer, received}
            404: {description: No such transfer}
            409: {description: 'Not in transit (errors.status)'}
            422: {description: 'errors["lines.<n>.received"]: more than was sent'}
        """
        body = load_or_422(TransferReceiveIn(), optional_body())
        return self.answer(wms.receive_transfer(pk, body["lines"]))

    @api_action("/<int:pk>/cancel", "cancel")
    def cancel(self, pk):
        return self.answer(wms.cancel_transfer(pk))

    cancel.__doc__ = "Cancel a draft transfer\n        ---\n        post:" + STEP_ANSWERS


# -- screens -----------------------------------------------------------------------------------

DRAFT, CANCELLED = _l("Draft"), _l("Cancelled")
RECEIPT_STATUS_LABELS = {"draft": DRAFT, "confirmed": _l("Confirmed"), "cancelled": CANCELLED}
PICK_STATUS_LABELS = {"open": _l("Open"), "picked": _l("Picked"), "cancelled": CANCELLED}
COUNT_STATUS_LABELS = {"counting": _l("Counting"), "submitted": _l("Submitted"),
                       "approved": _l("Approved"), "rejected": _l("Rejected"),
                       "cancelled": CANCELLED}
TRANSFER_STATUS_LABELS = {"draft": DRAFT, "in_transit": _l("In transit"),
                          "received": _l("Received"), "cancelled": CANCELLED}


def _receipt_lines_text(lines) -> str:
    return "; ".join(f"SKU {l.sku_id}: expected {l.expected}, received {l.received}, rejected "
                     f"{l.rejected}" + (f" ({l.reject_reason})" if l.reject_reason else "")
                     + (f" @ {l.location}" if l.location else "") for l in lines or [])


def _pick_lines_text(lines) -> str:
    return "; ".join(f"{l.get('location') or '-'} {l.get('sku_code')} ×{l.get('quantity')}"
                     for l in lines or [])


def _count_lines_text(lines) -> str:
    lines = list(lines or [])
    hidden = bool(lines) and lines[0].count.blind and lines[0].count.status == "counting"
    return "; ".join(f"{l.location or '-'} SKU {l.sku_id}: "
                     + ("" if hidden else f"expected {l.expected}, ")
                     + f"counted {'—' if l.counted is None else l.counted}" for l in lines)


def _transfer_lines_text(lines) -> str:
    return "; ".join(f"SKU {l.sku_id} ×{l.quantity}" +
                     (f", received {l.received}" if l.received is not None else "")
                     for l in lines or [])


COMMON_LABELS = {"warehouse": _l("Warehouse"), "shop": _l("Shop"), "status": _l("Status"),
                 "note": _l("Note"), "created_at": _l("Created at"), "lines": _l("Lines")}


class ReceiptView(ReadOnlyModelView):
    datamodel = SQLAInterface(Receipt)
    center = "wms"
    list_title = _l("Receipts")
    label_columns = {**COMMON_LABELS, "receipt_no": _l("Receipt no."), "source": _l("Source"),
                     "purchase_order": _l("Purchase order"), "confirmed_at": _l("Confirmed at"),
                     "confirmed_by": _l("Confirmed by")}
    list_columns = ["receipt_no", "shop", "warehouse", "source", "purchase_order", "status",
                    "created_at"]
    show_columns = list_columns + ["note", "lines", "confirmed_at", "confirmed_by"]
    search_columns = ["receipt_no", "shop", "warehouse", "source", "status", "created_at"]
    formatters_columns = {"status": lambda s: RECEIPT_STATUS_LABELS.get(s, s),
                          "lines": _receipt_lines_text}
    base_order = ("id", "desc")

    @action("confirm", _l("Confirm"), _l("Put the received goods on hand?"), "fa-check")
    def confirm(self, items):
        return self.run_step(items, wms.confirm_receipt)

    @action("cancel_receipt", _l("Cancel"), _l("Cancel the receipt?"), "fa-times")
    def cancel_receipt(self, items):
        return self.run_step(items, wms.cancel_receipt)


class PickListView(ReadOnlyModelView):
    datamodel = SQLAInterface(PickList)
    center = "wms"
    list_title = _l("Pick lists")
    label_columns = {**COMMON_LABELS, "pick_no": _l("Pick list no."),
                     "picked_at": _l("Picked at"), "notices": _l("Shipping notices")}
    list_columns = ["pick_no", "warehouse", "status", "created_at", "picked_at"]
    show_columns = list_columns + ["lines", "notices"]
    search_columns = ["pick_no", "warehouse", "status", "created_at"]
    formatters_columns = {"status": lambda s: PICK_STATUS_LABELS.get(s, s),
                          "lines": _pick_lines_text,
                          "notices": lambda notices: ", ".join(
                              f"{n.notice_no} ({NOTICE_STATUS_LABELS.get(n.status, n.status)})"
                              for n in notices or [])}
    base_order = ("id", "desc")

    @action("picked", _l("Picked"), None, "fa-check")
    def picked(self, items):
        return self.run_step(items, wms.mark_picked)

    @action("cancel_pick_list", _l("Cancel"), _l("Give the notices back?"), "fa-times")
    def cancel_pick_list(self, items):
        return self.run_step(items, wms.cancel_pick_list)


class StockCountView(ReadOnlyModelView):
    datamodel = SQLAInterface(StockCount)
    center = "wms"
    list_title = _l("Stock counts")
    label_columns = {**COMMON_LABELS, "count_no": _l("Count no."), "zone": _l("Zone"),
                     "blind": _l("Blind"), "submitted_at": _l("Submitted at"),
                     "decided_at": _l("Decided at"), "decided_by": _l("Decided by")}
    list_columns = ["count_no", "warehouse", "zone", "blind", "status", "created_at"]
    show_columns = list_columns + ["note", "lines", "submitted_at", "decided_at", "decided_by"]
    search_columns = ["count_no", "warehouse", "zone", "status", "created_at"]
    formatters_columns = {"status": lambda s: COUNT_STATUS_LABELS.get(s, s),
                          "lines": _count_lines_text}
    base_order = ("id", "desc")

    @action("submit_count", _l("Submit"), None, "fa-paper-plane")
    def submit_count(self, items):
        return self.run_step(items, wms.submit_count)

    @action("approve_count", _l("Approve"), _l("Post the variances to the stock ledger?"),
            "fa-check")
    def approve_count(self, items):
        return self.run_step(items, wms.approve_count)

    @action("reject_count", _l("Reject"), None, "fa-times")
    def reject_count(self, items):
        return self.run_step(items, wms.reject_count)


class StockTransferView(ReadOnlyModelView):
    datamodel = SQLAInterface(StockTransfer)
    center = "wms"
    list_title = _l("Transfers")
    label_columns = {**COMMON_LABELS, "transfer_no": _l("Transfer no."),
                     "from_warehouse": _l("From"), "to_warehouse": _l("To"),
                     "carrier": _l("Carrier"), "tracking_no": _l("Tracking no."),
                     "shipped_at": _l("Shipped at"), "received_at": _l("Received at")}
    list_columns = ["transfer_no", "shop", "from_warehouse", "to_warehouse", "status",
                    "created_at"]
    show_columns = list_columns + ["note", "lines", "carrier", "tracking_no", "shipped_at",
                                   "received_at"]
    search_columns = ["transfer_no", "shop", "from_warehouse", "to_warehouse", "status"]
    formatters_columns = {"status": lambda s: TRANSFER_STATUS_LABELS.get(s, s),
                          "lines": _transfer_lines_text}
    base_order = ("id", "desc")

    @action("ship_transfer", _l("Ship"), _l("Take the goods out of the source warehouse?"),
            "fa-truck")
    def ship_transfer(self, items):
        return self.run_step(items, wms.ship_transfer)

    @action("receive_transfer", _l("Received in full"), None, "fa-download")
    def receive_transfer(self, items):
        return self.run_step(items, wms.receive_transfer)

    @action("cancel_transfer", _l("Cancel"), None, "fa-times")
    def cancel_transfer(self, items):
        return self.run_step(items, wms.cancel_transfer)
