"""采购中心 REST and screens: suppliers (lifecycle, documents, price lists, rating, signing
keys), replenishment rules, purchase orders, supplier statements, and the endpoint where a
drop-shipping supplier reports its shipment (signed, no login). Every rule is in
services/purchasing.py."""
from flask import request
from flask_appbuilder.actions import action
from flask_appbuilder.api import BaseApi, expose
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.extensions import db
from models.purchasing import (DOCUMENT_KINDS, PurchaseOrder, PurchaseOrderLine,
                               ReplenishmentRule, Supplier, SupplierDocument, SupplierPrice,
                               SupplierStatement, SupplierStatementItem, SupplierTransition)
from services import purchasing
from services.errors import HoutaiError
from views.base import (HoutaiModelApi, HoutaiModelView, ReadOnlyModelApi, ReadOnlyModelView,
                        api_action, api_errors, form_rule)
from views.openapi import OpenApiErrorsMixin
from views.schema import MoneyField, StrictInteger, json_body, load_or_422, optional_body

SUPPLIER_STATUS_LABELS = {"prospect": _l("Prospect"), "qualified": _l("Qualified"),
                          "active": _l("Active"), "suspended": _l("Suspended")}
PO_STATUS_LABELS = {"draft": _l("Draft"), "approved": _l("Approved"), "sent": _l("Sent"),
                    "partially_received": _l("Partially received"),
                    "received": _l("Received"), "closed": _l("Closed"),
                    "cancelled": _l("Cancelled")}
STATEMENT_STATUS_LABELS = {"draft": _l("Draft"), "confirmed": _l("Confirmed"),
                           "paid": _l("Paid"), "cancelled": _l("Cancelled")}
DOCUMENT_KIND_LABELS = {"business_licence": _l("Business licence"),
                        "tax_registration": _l("Tax registration"),
                        "quality_certificate": _l("Quality certificate"),
                        "production_licence": _l("Production licence"),
                        "bank_account": _l("Bank account"), "other": _l("Other")}


def _label(labels):
    return lambda value: labels.get(value, value)


class ReasonBody(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=255))


class OptionalReasonBody(Schema):
    reason = fields.String(load_default=None, allow_none=True,
                           validate=validate.Length(max=255))


# -- suppliers ---------------------------------------------------------------------------------

SUPPLIER_COLUMNS = ["id", "shop_id", "code", "name", "contact_name", "phone", "email", "status",
                    "status_reason", "rating", "rated_at", "payment_terms_days",
                    "lead_time_days"]
SUPPLIER_SHOW = SUPPLIER_COLUMNS + ["address", "notify_url", "rating_factors", "created_at",
                                    "updated_at"]
SUPPLIER_EDIT = ["code", "name", "contact_name", "phone", "email", "address",
                 "payment_terms_days", "lead_time_days", "notify_url"]


class SupplierApi(HoutaiModelApi):
    """Suppliers: created as prospects, then qualified, activated, suspended through their
    actions; rated; given a signing key for drop-shipping reports."""

    resource_name = "supplier"
    datamodel = SQLAInterface(Supplier)
    center = "purchasing"
    include_route_methods = {"get", "get_list", "info", "post", "put", "delete", "qualify",
                             "activate", "suspend", "key", "rate"}
    list_columns = SUPPLIER_COLUMNS
    show_columns = SUPPLIER_SHOW
    add_columns = ["shop_id"] + SUPPLIER_EDIT
    edit_columns = SUPPLIER_EDIT
    search_columns = ["shop_id", "code", "name", "status", "rating", "contact_name"]
    order_columns = ["id", "code", "name", "rating", "status"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        purchasing.check_supplier(item, creating=True)

    def pre_update(self, item):
        purchasing.check_supplier(item)

    def pre_delete(self, item):
        purchasing.check_supplier_deletable(item)

    def _moved(self, pk, step, schema):
        body = load_or_422(schema, optional_body())
        return self.answer_saved(purchasing.move_supplier(pk, step, body.get("reason")))

    @api_action("/<int:pk>/qualify", "qualify")
    def qualify(self, pk):
        """A prospect becomes qualified (needs a verified, unexpired business licence)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}}}
          responses:
            200: {description: The supplier, qualified}
            404: {description: No such supplier}
            409: {description: 'Not a prospect (errors.status), or no valid licence
              (errors.documents)'}
        """
        return self._moved(pk, "qualify", OptionalReasonBody())

    @api_action("/<int:pk>/activate", "activate")
    def activate(self, pk):
        """A qualified or suspended supplier becomes active (its licence still valid)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}}}
          responses:
            200: {description: The supplier, active}
            404: {description: No such supplier}
            409: {description: 'Not qualified or suspended (errors.status), or no valid
              licence (errors.documents)'}
        """
        return self._moved(pk, "activate", OptionalReasonBody())

    @api_action("/<int:pk>/suspend", "suspend")
    def suspend(self, pk):
        """An active supplier is suspended, saying why (it gets no orders meanwhile)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}},
                         required: [reason]}
          responses:
            200: {description: The supplier, suspended}
            404: {description: No such supplier}
            409: {description: Not active (errors.status)}
        """
        return self._moved(pk, "suspend", ReasonBody())

    @api_action("/<int:pk>/key", "key")
    def key(self, pk):
        """A new signing key for the supplier's shipment reports, answered once (an earlier
        key stops working)
        ---
        post:
          responses:
            201: {description: '{"result": {"supplier_id", "code", "key"}}: keep the key; it
              is never shown again'}
            404: {description: No such supplier}
        """
        supplier, key = purchasing.issue_key(pk)
        db.session.commit()
        return self.response(201, result={"supplier_id": supplier.id, "code": supplier.code,
                                          "key": key})

    @api_action("/<int:pk>/rate", "rate")
    def rate(self, pk):
        """Recompute the supplier's rating (scorecard) now
        ---
        post:
          responses:
            200: {description: 'The supplier with rating, rating_factors, rated_at'}
            404: {description: No such supplier}
        """
        return self.answer_saved(purchasing.rate(pk))


SUPPLIER_LABELS = {"code": _l("Code"), "name": _l("Name"), "contact_name": _l("Contact"),
                   "phone": _l("Phone"), "email": _l("E-mail"), "address": _l("Address"),
                   "status": _l("Status"), "status_reason": _l("Why"),
                   "rating": _l("Rating"), "rating_factors": _l("Rating factors"),
                   "rated_at": _l("Rated at"), "payment_terms_days": _l("Payment terms (days)"),
                   "lead_time_days": _l("Lead time (days)"), "notify_url": _l("Notify URL"),
                   "shop": _l("Shop"), "created_at": _l("Created at")}


class SupplierView(HoutaiModelView):
    datamodel = SQLAInterface(Supplier)
    center = "purchasing"
    list_title = _l("Suppliers")
    label_columns = SUPPLIER_LABELS
    list_columns = ["code", "name", "contact_name", "phone", "status", "rating", "shop"]
    show_columns = ["code", "name", "contact_name", "phone", "email", "address", "status",
                    "status_reason", "rating", "rating_factors", "rated_at",
                    "payment_terms_days", "lead_time_days", "notify_url", "shop", "created_at"]
    add_columns = ["shop"] + SUPPLIER_EDIT
    edit_columns = SUPPLIER_EDIT
    search_columns = ["code", "name", "status", "shop"]
    formatters_columns = {"status": _label(SUPPLIER_STATUS_LABELS)}
    base_order = ("id", "desc")

    def pre_add(self, item):
        super().pre_add(item)
        form_rule(lambda row: purchasing.check_supplier(row, creating=True), item)

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(purchasing.check_supplier, item)

    def pre_delete(self, item):
        form_rule(purchasing.check_supplier_deletable, item)

    @action("qualify", _l("Qualify"), None, "fa-check")
    def qualify(self, items):
        return self.run_step(items, purchasing.qualify)

    @action("activate", _l("Activate"), None, "fa-play")
    def activate(self, items):
        return self.run_step(items, purchasing.activate)

    @action("rate", _l("Rate now"), None, "fa-star")
    def rate(self, items):
        return self.run_step(items, purchasing.rate)


TRANSITION_COLUMNS = ["id", "shop_id", "supplier_id", "from_status", "to_status", "actor",
                      "reason", "created_at"]


class SupplierTransitionApi(ReadOnlyModelApi):
    resource_name = "supplier_transition"
    datamodel = SQLAInterface(SupplierTransition)
    center = "purchasing"
    list_columns = TRANSITION_COLUMNS
    show_columns = TRANSITION_COLUMNS
    search_columns = ["supplier_id", "to_status", "actor", "created_at"]
    base_order = ("id", "desc")


class SupplierTransitionView(ReadOnlyModelView):
    datamodel = SQLAInterface(SupplierTransition)
    center = "purchasing"
    list_title = _l("Supplier history")
    label_columns = {"supplier_id": _l("Supplier"), "from_status": _l("From"),
                     "to_status": _l("To"), "actor": _l("Who"), "reason": _l("Why"),
                     "created_at": _l("When")}
    list_columns = ["created_at", "supplier_id", "from_status", "to_status", "actor", "reason"]
    show_columns = list_columns
    search_columns = ["supplier_id", "to_status", "actor"]
    base_order = ("id", "desc")


# -- documents and prices ----------------------------------------------------------------------

DOCUMENT_COLUMNS = ["id", "shop_id", "supplier_id", "kind", "number", "file_id", "valid_until",
                    "verified", "verified_by", "verified_at", "created_at"]


class SupplierDocumentApi(HoutaiModelApi):
    """Qualification documents (资质): a file of the shop, a validity, verified by a person."""

    resource_name = "supplier_document"
    datamodel = SQLAInterface(SupplierDocument)
    center = "purchasing"
    include_route_methods = {"get", "get_list", "info", "post", "put", "delete", "verify"}
    list_columns = DOCUMENT_COLUMNS
    show_columns = DOCUMENT_COLUMNS
    add_columns = ["supplier_id", "kind", "number", "file_id", "valid_until"]
    edit_columns = ["kind", "number", "file_id", "valid_until"]
    search_columns = ["supplier_id", "kind", "number", "verified", "valid_until"]
    validators_columns = {"kind": validate.OneOf(DOCUMENT_KINDS)}
    base_order = ("id", "desc")

    def pre_add(self, item):
        purchasing.check_document(item, creating=True)

    def pre_update(self, item):
        purchasing.check_document(item)

    @api_action("/<int:pk>/verify", "verify")
    def verify(self, pk):
        """Mark the document verified against its file (once, while it is valid)
        ---
        post:
          responses:
            200: {description: The document, verified}
            404: {description: No such document}
            409: {description: 'Verified already (errors.verified), expired
              (errors.valid_until) or without a file (errors.file_id)'}
        """
        return self.answer_saved(purchasing.verify_document(pk))


class SupplierDocumentView(HoutaiModelView):
    datamodel = SQLAInterface(SupplierDocument)
    center = "purchasing"
    list_title = _l("Supplier documents")
    label_columns = {"supplier": _l("Supplier"), "kind": _l("Kind"), "number": _l("Number"),
                     "file": _l("File"), "valid_until": _l("Valid until"),
                     "verified": _l("Verified"), "verified_by": _l("Verified by"),
                     "verified_at": _l("Verified at")}
    list_columns = ["supplier", "kind", "number", "valid_until", "verified", "verified_by"]
    show_columns = ["supplier", "kind", "number", "file_id", "valid_until", "verified",
                    "verified_by", "verified_at", "created_at"]
    add_columns = ["supplier", "kind", "number", "file_id", "valid_until"]
    edit_columns = ["kind", "number", "file_id", "valid_until"]
    search_columns = ["supplier", "kind", "number", "verified", "valid_until"]
    formatters_columns = {"kind": _label(DOCUMENT_KIND_LABELS)}
    base_order = ("id", "desc")

    def pre_add(self, item):
        super().pre_add(item)
        form_rule(lambda row: purchasing.check_document(row, creating=True), item)

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(purchasing.check_document, item)

    @action("verify", _l("Verify"), None, "fa-check-square-o")
    def verify(self, items):
        return self.run_step(items, purchasing.verify_document)


PRICE_COLUMNS = ["id", "shop_id", "supplier_id", "sku_id", "price", "min_quantity",
                 "valid_from", "valid_until"]


class SupplierPriceApi(HoutaiModelApi):
    """Price lists: a supplier's price of a SKU from a quantity, within a validity window."""

    resource_name = "supplier_price"
    datamodel = SQLAInterface(SupplierPrice)
    center = "purchasing"
    list_columns = PRICE_COLUMNS
    show_columns = PRICE_COLUMNS
    add_columns = ["supplier_id", "sku_id", "price", "min_quantity", "valid_from",
                   "valid_until"]
    edit_columns = ["price", "min_quantity", "valid_from", "valid_until"]
    search_columns = ["supplier_id", "sku_id", "valid_from", "valid_until"]
    order_columns = ["id", "price", "min_quantity", "valid_from"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        purchasing.check_price(item)

    def pre_update(self, item):
        purchasing.check_price(item)


class SupplierPriceView(HoutaiModelView):
    datamodel = SQLAInterface(SupplierPrice)
    center = "purchasing"
    list_title = _l("Supplier prices")
    label_columns = {"supplier": _l("Supplier"), "sku": _l("SKU"), "price": _l("Price"),
                     "min_quantity": _l("From quantity"), "valid_from": _l("Valid from"),
                     "valid_until": _l("Valid until")}
    list_columns = ["supplier", "sku", "price", "min_quantity", "valid_from", "valid_until"]
    show_columns = list_columns
    add_columns = list_columns
    edit_columns = ["price", "min_quantity", "valid_from", "valid_until"]
    search_columns = ["supplier", "sku", "valid_from", "valid_until"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        super().pre_add(item)
        form_rule(purchasing.check_price, item)

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(purchasing.check_price, item)


# -- replenishment -----------------------------------------------------------------------------

RULE_COLUMNS = ["id", "shop_id", "sku_id", "warehouse_id", "safety_stock", "reorder_point",
                "reorder_quantity", "supplier_id", "enabled", "open_po_id", "last_alert_at"]
RULE_EDIT = ["safety_stock", "reorder_point", "reorder_quantity", "supplier_id", "enabled"]


class ReplenishmentRuleApi(HoutaiModelApi):
    """补货规则 per SKU and warehouse; POST /run runs them now."""

    resource_name = "replenishment_rule"
    datamodel = SQLAInterface(ReplenishmentRule)
    center = "purchasing"
    include_route_methods = {"get", "get_list", "info", "post", "put", "delete", "run"}
    list_columns = RULE_COLUMNS
    show_columns = RULE_COLUMNS + ["created_at", "updated_at"]
    add_columns = ["sku_id", "warehouse_id"] + RULE_EDIT
    edit_columns = RULE_EDIT
    search_columns = ["sku_id", "warehouse_id", "supplier_id", "enabled", "open_po_id"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        purchasing.check_rule(item)

    def pre_update(self, item):
        purchasing.check_rule(item)

    @api_action("/run", "run")
    def run(self):
        """Run the replenishment rules the caller may see now (as the scheduled job does)
        ---
        post:
          responses:
            200: {description: '{"result": {"drafted": [purchase order ids], "lines": n,
              "alerts": n}}'}
        """
        result = purchasing.replenish()
        db.session.commit()
        return self.response(200, result=result)


class ReplenishmentRuleView(HoutaiModelView):
    datamodel = SQLAInterface(ReplenishmentRule)
    center = "purchasing"
    list_title = _l("Replenishment rules")
    label_columns = {"sku": _l("SKU"), "warehouse": _l("Warehouse"),
                     "safety_stock": _l("Safety stock"), "reorder_point": _l("Reorder point"),
                     "reorder_quantity": _l("Reorder quantity"), "supplier": _l("Supplier"),
                     "enabled": _l("Enabled"), "open_po_id": _l("Open purchase order"),
                     "last_alert_at": _l("Last alert")}
    list_columns = ["sku", "warehouse", "safety_stock", "reorder_point", "reorder_quantity",
                    "supplier", "enabled", "open_po_id"]
    show_columns = list_columns + ["last_alert_at"]
    add_columns = ["sku", "warehouse", "safety_stock", "reorder_point", "reorder_quantity",
                   "supplier", "enabled"]
    edit_columns = ["safety_stock", "reorder_point", "reorder_quantity", "supplier", "enabled"]
    search_columns = ["sku", "warehouse", "supplier", "enabled"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        super().pre_add(item)
        form_rule(purchasing.check_rule, item)

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(purchasing.check_rule, item)


# -- purchase orders ---------------------------------------------------------------------------

PO_COLUMNS = ["id", "shop_id", "po_no", "supplier_id", "warehouse_id", "status", "source",
              "total", "expected_on", "note", "created_at", "approved_by", "approved_at",
              "sent_at", "received_at", "closed_at"]
PO_LINE_COLUMNS = ["id", "shop_id", "purchase_order_id", "sku_id", "quantity", "unit_price",
                   "amount", "received", "rejected", "rule_id"]


class PoLineBody(Schema):
    sku_id = StrictInteger(required=True)
    quantity = StrictInteger(required=True, validate=validate.Range(min=1,
                                                                    max=purchasing.MAX_QUANTITY))
    unit_price = MoneyField(load_default=None, allow_none=True)


class PurchaseOrderBody(Schema):
    supplier_id = StrictInteger(required=True)
    warehouse_id = StrictInteger(required=True)
    expected_on = fields.Date(load_default=None, allow_none=True)
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))
    lines = fields.List(fields.Nested(PoLineBody), required=True,
                        validate=validate.Length(min=1, max=purchasing.MAX_PO_LINES))


class PurchaseOrderApi(HoutaiModelApi):
    """采购单: drafted by hand or by replenishment; approved, sent, received through WMS,
    closed or cancelled. Lines: /api/v1/purchase_order_line/."""

    resource_name = "purchase_order"
    datamodel = SQLAInterface(PurchaseOrder)
    center = "purchasing"
    include_route_methods = {"get", "get_list", "info", "post", "approve", "send", "close",
                             "cancel"}
    list_columns = PO_COLUMNS
    show_columns = PO_COLUMNS
    add_columns = ["supplier_id", "warehouse_id", "expected_on", "note", "lines"]
    add_model_schema = PurchaseOrderBody()
    search_columns = ["po_no", "supplier_id", "warehouse_id", "status", "source",
                      "expected_on", "created_at"]
    order_columns = ["id", "total", "expected_on", "created_at"]
    base_order = ("id", "desc")

    @api_errors
    def post_headless(self):
        """A draft purchase order to an active supplier (prices from its list unless given)"""
        body = load_or_422(self.add_model_schema, json_body())
        po = purchasing.create_purchase_order(body["supplier_id"], body["warehouse_id"],
                                              body["lines"], body["expected_on"], body["note"])
        db.session.commit()
        return self.response(201, id=po.id, result=self.show_model_schema.dump(po))

    @api_action("/<int:pk>/approve", "approve")
    def approve(self, pk):
        """Approve a draft order (its supplier still active)
        ---
        post:
          responses:
            200: {description: The order, approved}
            404: {description: No such order}
            409: {description: 'Not a draft (errors.status), or the supplier is not active
              (errors.supplier_id)'}
        """
        return self.answer_saved(purchasing.approve_purchase_order(pk))

    @api_action("/<int:pk>/send", "send")
    def send(self, pk):
        """Send an approved order to the supplier (`purchase_order.sent`)
        ---
        post:
          responses:
            200: {description: The order, sent}
            404: {description: No such order}
            409: {description: Not approved (errors.status)}
        """
        return self.answer_saved(purchasing.send_purchase_order(pk))

    @api_action("/<int:pk>/close", "close")
    def close(self, pk):
        """Close an order: what has not arrived is no longer expected
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}}}
          responses:
            200: {description: The order, closed}
            404: {description: No such order}
            409: {description: 'Not sent, partially received or received (errors.status)'}
        """
        body = load_or_422(OptionalReasonBody(), optional_body())
        return self.answer_saved(purchasing.close_purchase_order(pk, body["reason"]))

    @api_action("/<int:pk>/cancel", "cancel")
    def cancel(self, pk):
        """Cancel an order before anything arrived, saying why
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}},
                         required: [reason]}
          responses:
            200: {description: The order, cancelled}
            404: {description: No such order}
            409: {description: 'Received or closed, or goods arrived (errors.status)'}
        """
        body = load_or_422(ReasonBody(), json_body())
        return self.answer_saved(purchasing.cancel_purchase_order(pk, body["reason"]))


class PurchaseOrderLineApi(ReadOnlyModelApi):
    resource_name = "purchase_order_line"
    datamodel = SQLAInterface(PurchaseOrderLine)
    center = "purchasing"
    list_columns = PO_LINE_COLUMNS
    show_columns = PO_LINE_COLUMNS
    search_columns = ["purchase_order_id", "sku_id", "rule_id"]
    base_order = ("id", "desc")


PO_LABELS = {"po_no": _l("PO no."), "supplier": _l("Supplier"), "warehouse": _l("Warehouse"),
             "status": _l("Status"), "source": _l("Source"), "total": _l("Total"),
             "expected_on": _l("Expected on"), "note": _l("Note"), "created_at": _l("Created at"),
             "approved_by": _l("Approved by"), "approved_at": _l("Approved at"),
             "sent_at": _l("Sent at"), "received_at": _l("Received at"),
             "closed_at": _l("Closed at"), "shop": _l("Shop")}


class PurchaseOrderView(ReadOnlyModelView):
    datamodel = SQLAInterface(PurchaseOrder)
    center = "purchasing"
    list_title = _l("Purchase orders")
    label_columns = PO_LABELS
    list_columns = ["po_no", "supplier", "warehouse", "status", "source", "total",
                    "expected_on", "created_at"]
    show_columns = ["po_no", "supplier", "warehouse", "status", "source", "total",
                    "expected_on", "note", "created_at", "approved_by", "approved_at",
                    "sent_at", "received_at", "closed_at", "shop"]
    search_columns = ["po_no", "supplier", "warehouse", "status", "source", "expected_on"]
    formatters_columns = {"status": _label(PO_STATUS_LABELS)}
    base_order = ("id", "desc")

    # screen action names are permission names: "approve" is reserved to platform review
    @action("approve_order", _l("Approve"), None, "fa-check")
    def approve_order(self, items):
        return self.run_step(items, purchasing.approve_purchase_order)

    @action("send_order", _l("Send to supplier"), None, "fa-paper-plane")
    def send_order(self, items):
        return self.run_step(items, purchasing.send_purchase_order)

    @action("close_order", _l("Close"), _l("Close the selected orders? What has not arrived "
                                           "is no longer expected."), "fa-lock")
    def close_order(self, items):
        return self.run_step(items, purchasing.close_purchase_order)


class PurchaseOrderLineView(ReadOnlyModelView):
    datamodel = SQLAInterface(PurchaseOrderLine)
    center = "purchasing"
    list_title = _l("Purchase order lines")
    label_columns = {"purchase_order": _l("Purchase order"), "sku": _l("SKU"),
                     "quantity": _l("Quantity"), "unit_price": _l("Unit price"),
                     "amount": _l("Amount"), "received": _l("Received"),
                     "rejected": _l("Rejected"), "rule_id": _l("Rule")}
    list_columns = ["purchase_order", "sku", "quantity", "unit_price", "amount", "received",
                    "rejected"]
    show_columns = list_columns + ["rule_id"]
    search_columns = ["purchase_order", "sku"]
    base_order = ("id", "desc")


# -- supplier statements -----------------------------------------------------------------------

STATEMENT_COLUMNS = ["id", "shop_id", "statement_no", "supplier_id", "period_start",
                     "period_end", "amount", "status", "reference", "created_at",
                     "confirmed_at", "paid_at"]
ITEM_COLUMNS = ["id", "shop_id", "statement_id", "source_kind", "source_id", "sku_id",
                "quantity", "unit_price", "amount"]


class StatementBody(Schema):
    supplier_id = StrictInteger(required=True)
    period_start = fields.Date(required=True)
    period_end = fields.Date(required=True)


class PayBody(Schema):
    reference = fields.String(required=True, validate=validate.Length(min=1, max=64))


class SupplierStatementApi(HoutaiModelApi):
    """对账单: drafted from unsettled receipts and consigned sales, confirmed, then paid by
    Finance (posted to the journal)."""

    resource_name = "supplier_statement"
    datamodel = SQLAInterface(SupplierStatement)
    center = "supplier_statement"
    include_route_methods = {"get", "get_list", "info", "post", "confirm", "pay", "cancel"}
    list_columns = STATEMENT_COLUMNS
    show_columns = STATEMENT_COLUMNS
    add_columns = ["supplier_id", "period_start", "period_end"]
    add_model_schema = StatementBody()
    search_columns = ["statement_no", "supplier_id", "status", "period_end"]
    order_columns = ["id", "amount", "period_end"]
    base_order = ("id", "desc")

    @api_errors
    def post_headless(self):
        """Draft the statement of a supplier for a period"""
        body = load_or_422(self.add_model_schema, json_body())
        statement = purchasing.draft_statement(body["supplier_id"], body["period_start"],
                                               body["period_end"])
        db.session.commit()
        return self.response(201, id=statement.id,
                             result=self.show_model_schema.dump(statement))

    @api_action("/<int:pk>/confirm", "confirm")
    def confirm(self, pk):
        """The supplier agreed the statement
        ---
        post:
          responses:
            200: {description: The statement, confirmed}
            404: {description: No such statement}
            409: {description: Not a draft (errors.status)}
        """
        return self.answer_saved(purchasing.confirm_statement(pk))

    @api_action("/<int:pk>/cancel", "cancel")
    def cancel(self, pk):
        """Withdraw an unpaid statement (its receipts and sales may go on another)
        ---
        post:
          responses:
            200: {description: The statement, cancelled}
            404: {description: No such statement}
            409: {description: Paid or cancelled (errors.status)}
        """
        return self.answer_saved(purchasing.cancel_statement(pk))

    # `mark_paid` is a decision reserved to Finance (app/security.py REVIEW_PERMISSIONS)
    @api_action("/<int:pk>/pay", "mark_paid")
    def pay(self, pk):
        """Record the transfer to the supplier, once (posted Dr 2204 / Cr 1003)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reference: {type: string}},
                         required: [reference]}
          responses:
            200: {description: The statement, paid}
            404: {description: No such statement}
            409: {description: Not confirmed (errors.status)}
        """
        body = load_or_422(PayBody(), json_body())
        return self.answer_saved(purchasing.pay_statement(pk, body["reference"]))


class SupplierStatementItemApi(ReadOnlyModelApi):
    resource_name = "supplier_statement_item"
    datamodel = SQLAInterface(SupplierStatementItem)
    center = "supplier_statement"
    list_columns = ITEM_COLUMNS
    show_columns = ITEM_COLUMNS
    search_columns = ["statement_id", "source_kind", "sku_id"]
    base_order = ("id", "desc")


class SupplierStatementView(ReadOnlyModelView):
    datamodel = SQLAInterface(SupplierStatement)
    center = "supplier_statement"
    list_title = _l("Supplier statements")
    label_columns = {"statement_no": _l("Statement no."), "supplier": _l("Supplier"),
                     "period_start": _l("From"), "period_end": _l("To"),
                     "amount": _l("Amount"), "status": _l("Status"),
                     "reference": _l("Transfer reference"), "created_at": _l("Created at"),
                     "confirmed_at": _l("Confirmed at"), "paid_at": _l("Paid at"),
                     "shop": _l("Shop")}
    list_columns = ["statement_no", "supplier", "period_start", "period_end", "amount",
                    "status", "paid_at"]
    show_columns = ["statement_no", "supplier", "period_start", "period_end", "amount",
                    "status", "reference", "created_at", "confirmed_at", "paid_at", "shop"]
    search_columns = ["statement_no", "supplier", "status", "period_end"]
    formatters_columns = {"status": _label(STATEMENT_STATUS_LABELS)}
    base_order = ("id", "desc")

    @action("confirm_statement", _l("Confirm"), None, "fa-check")
    def confirm_statement(self, items):
        return self.run_step(items, purchasing.confirm_statement)


class SupplierStatementItemView(ReadOnlyModelView):
    datamodel = SQLAInterface(SupplierStatementItem)
    center = "supplier_statement"
    list_title = _l("Statement items")
    label_columns = {"statement": _l("Statement"), "source_kind": _l("Source"),
                     "source_id": _l("Source id"), "sku_id": _l("SKU"),
                     "quantity": _l("Quantity"), "unit_price": _l("Unit price"),
                     "amount": _l("Amount")}
    list_columns = ["statement", "source_kind", "source_id", "sku_id", "quantity", "unit_price",
                    "amount"]
    show_columns = list_columns
    search_columns = ["statement", "source_kind", "sku_id"]
    base_order = ("id", "desc")


# -- the supplier's shipment report (代发) -------------------------------------------------------

class SupplierShipmentApi(OpenApiErrorsMixin, BaseApi):
    """Where a drop-shipping supplier reports that it shipped one of its notices: no login,
    signed with the supplier's key."""

    resource_name = "supplier_shipment"
    center = "purchasing"
    openapi_spec_tag = "Supplier shipment"

    @expose("/", methods=["POST"])
    def report(self):
        """A supplier shipped a drop-shipped notice (signed; no login)
        ---
        post:
          parameters:
          - {in: header, name: X-Supplier-Code, required: true, schema: {type: string}}
          - {in: header, name: X-Timestamp, required: true, schema: {type: string},
             description: Unix seconds; within SUPPLIER_SIGNATURE_WINDOW_SECONDS of now}
          - {in: header, name: X-Signature, required: true, schema: {type: string},
             description: 'hex HMAC-SHA256 of "<X-Timestamp>.<raw body>" under the supplier
               key'}
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    notice_no: {type: string}
                    carrier: {type: string}
                    tracking_no: {type: string}
                  required: [notice_no, carrier, tracking_no]
          responses:
            200: {description: 'Shipped (a repeat answers the same): {"result": {"notice_no",
              "status", "carrier", "tracking_no", "shipped_at"}}'}
            401: {description: 'Bad, missing or stale signature (X-Timestamp: 1 to 12 ASCII
              digits, X-Signature: 64 hex digits); nothing changes'}
            403: {description: 'Signed by a supplier that is not active (suspended); nothing
              changes'}
            404: {description: Not a notice of this supplier}
            409: {description: Shipped already with another tracking number, or not shippable}
            422: {description: A field is missing or too long}
        """
        try:
            raw = request.get_data(cache=True)
            supplier = purchasing.signed_supplier(
                request.headers.get("X-Supplier-Code"), request.headers.get("X-Timestamp"),
                request.headers.get("X-Signature"), raw)
            notice = purchasing.report_shipment(supplier, json_body())
            result = purchasing.shipment_result(notice)
            db.session.commit()
        except HoutaiError as refusal:
            db.session.rollback()
            return self.response(refusal.status, message=refusal.message,
                                 errors=refusal.errors)
        except Exception as exc:  # noqa: BLE001 - e.g. 413 while reading the body
            from werkzeug.exceptions import HTTPException

            db.session.rollback()
            if isinstance(exc, HTTPException):
                return self.response(exc.code or 400, message=exc.description or exc.name,
                                     errors={})
            raise
        return self.response(200, result=result)


def register(appbuilder) -> None:
    """The purchasing menu (采购中心) and its REST resources."""
    menu = dict(category="Purchasing", category_label=_l("Purchasing"),
                category_icon="fa-shopping-basket")
    for view, name, label, icon in (
            (SupplierView, "Suppliers", _l("Suppliers"), "fa-industry"),
            (SupplierDocumentView, "Supplier documents", _l("Supplier documents"),
             "fa-file-text-o"),
            (SupplierPriceView, "Supplier prices", _l("Supplier prices"), "fa-jpy"),
            (SupplierTransitionView, "Supplier history", _l("Supplier history"), "fa-history"),
            (ReplenishmentRuleView, "Replenishment rules", _l("Replenishment rules"),
             "fa-refresh"),
            (PurchaseOrderView, "Purchase orders", _l("Purchase orders"), "fa-shopping-cart"),
            (PurchaseOrderLineView, "Purchase order lines", _l("Purchase order lines"),
             "fa-list"),
            (SupplierStatementView, "Supplier statements", _l("Supplier statements"),
             "fa-file-text"),
            (SupplierStatementItemView, "Statement items", _l("Statement items"), "fa-list-ul")):
        appbuilder.add_view(view, name, label=label, icon=icon, **menu)
    for api in (SupplierApi, SupplierTransitionApi, SupplierDocumentApi, SupplierPriceApi,
                ReplenishmentRuleApi, PurchaseOrderApi, PurchaseOrderLineApi,
                SupplierStatementApi, SupplierStatementItemApi, SupplierShipmentApi):
        appbuilder.add_api(api)
