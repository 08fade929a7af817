"""客服中心 after-sales: REST (the storefront requests and ships back; the merchant or customer
service decides, receives and refunds) and the console screens."""
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.extensions import db
from models.after_sale import (AFTER_SALE_KIND_LABELS, AFTER_SALE_STATUS_LABELS, AfterSale,
                               AfterSaleEvent)
from services import after_sale
from views.base import (HoutaiModelApi, ReadOnlyModelApi, ReadOnlyModelView, api_action,
                        api_errors)
from views.schema import MoneyField, ReasonSchema, StrictInteger, json_body, load_or_422

AFTER_SALE_COLUMNS = ["id", "after_sale_no", "shop_id", "order_id", "order_line_id",
                      "member_id", "kind", "quantity", "amount", "reason", "no_reason",
                      "evidence", "status", "reject_reason", "return_carrier",
                      "return_tracking_no", "payment_refund_id", "replacement_order_id",
                      "created_at", "finished_at"]


class AfterSaleRequestSchema(Schema):
    order_line_id = StrictInteger(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(
        ["refund_only", "return_refund", "exchange"]))
    quantity = StrictInteger(required=True)
    amount = MoneyField(required=True)
    reason = fields.String(load_default=None, validate=validate.Length(max=255))
    no_reason = fields.Boolean(load_default=False)
    evidence = fields.List(StrictInteger(), load_default=list)


class ReturnShippedSchema(Schema):
    carrier = fields.String(required=True, validate=validate.Length(min=1, max=64))
    tracking_no = fields.String(required=True, validate=validate.Length(min=1, max=64))


class AfterSaleApi(HoutaiModelApi):
    """`POST /api/v1/after_sale/` makes a request; the steps are actions. Merchants see and
    handle their shop's requests only."""

    resource_name = "after_sale"
    datamodel = SQLAInterface(AfterSale)
    center = "after_sale"
    include_route_methods = {"get", "get_list", "info", "post", "approve", "reject",
                             "return_shipped", "receive", "refund", "close"}
    list_columns = AFTER_SALE_COLUMNS
    show_columns = AFTER_SALE_COLUMNS   # and "history", the timeline
    add_columns = ["order_line_id", "kind", "quantity", "amount", "reason"]
    search_columns = ["after_sale_no", "shop_id", "order_id", "order_line_id", "member_id",
                      "kind", "status", "created_at"]
    order_columns = ["id", "created_at", "amount"]
    base_order = ("id", "desc")

    @api_errors
    def post_headless(self):
        """Make a request (the buyer's, through the storefront; or customer service's)."""
        body = load_or_422(AfterSaleRequestSchema(), json_body())
        try:
            item = after_sale.request(body["order_line_id"], body["kind"], body["quantity"],
                                      body["amount"], body["reason"], body["no_reason"],
                                      body["evidence"])
        except after_sale.OverRefund as over:
            db.session.rollback()
            return self.response(409, message=over.message, errors=over.errors,
                                 refundable=f"{over.refundable:.2f}")
        db.session.commit()
        return self.response(201, id=item.id, result=self._answer(item))

    def _answer(self, item) -> dict:
        result = self.show_model_schema.dump(item)
        result["history"] = history(item)
        return result

    def _step(self, pk, step, *args):
        after_sale.visible(pk)
        item = step(pk, *args)
        db.session.commit()
        return self.response(200, result=self._answer(item))

    def pre_get(self, data):
        data["result"]["history"] = history(after_sale.visible(data["id"]))

    @api_action("/<int:pk>/approve", "approve")
    def approve(self, pk):
        """Approve a request (the merchant or customer service)
        ---
        post:
          responses:
            200: {description: The request, approved}
            409: {description: Not in a status that allows it}
        """
        return self._step(pk, after_sale.approve)

    @api_action("/<int:pk>/reject", "reject")
    def reject(self, pk):
        """Reject a request, with a reason
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}}, required: [reason]}
          responses:
            200: {description: The request, rejected}
        """
        body = load_or_422(ReasonSchema(), json_body())
        return self._step(pk, after_sale.reject, body["reason"])

    @api_action("/<int:pk>/return-shipped", "return_shipped")
    def return_shipped(self, pk):
        """The buyer sent the goods back
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
            200: {description: The request, return shipped}
        """
        body = load_or_422(ReturnShippedSchema(), json_body())
        return self._step(pk, after_sale.return_shipped, body["carrier"], body["tracking_no"])

    @api_action("/<int:pk>/receive", "receive")
    def receive(self, pk):
        """The returned goods arrived (they go back into stock)
        ---
        post:
          responses:
            200: {description: The request, received}
        """
        return self._step(pk, after_sale.receive)

    @api_action("/<int:pk>/refund", "refund")
    def refund(self, pk):
        """Refund the request's amount through the payment center (asynchronous)
        ---
        post:
          responses:
            200: {description: 'The request, refunding (refunded once the gateway confirms)'}
        """
        return self._step(pk, after_sale.refund)

    @api_action("/<int:pk>/close", "close")
    def close(self, pk):
        """Withdraw a request that is not finished
        ---
        post:
          responses:
            200: {description: The request, closed}
        """
        return self._step(pk, after_sale.close)


def history(item) -> list[dict]:
    return [{"from": e.from_status, "to": e.to_status, "actor": e.actor, "note": e.note,
             "at": e.created_at.isoformat()} for e in item.timeline]


class AfterSaleEventApi(ReadOnlyModelApi):
    resource_name = "after_sale_event"
    datamodel = SQLAInterface(AfterSaleEvent)
    center = "after_sale"
    list_columns = ["id", "after_sale_id", "shop_id", "from_status", "to_status", "actor",
                    "note", "created_at"]
    show_columns = list_columns
    search_columns = ["after_sale_id", "to_status", "created_at"]
    base_order = ("id", "desc")


class AfterSaleView(ReadOnlyModelView):
    datamodel = SQLAInterface(AfterSale)
    center = "after_sale"
    list_title = _l("After-sales")
    label_columns = {"after_sale_no": _l("After-sale no."), "order": _l("Order"),
                     "order_line": _l("Order line"), "kind": _l("Kind"),
                     "quantity": _l("Quantity"), "amount": _l("Amount"), "reason": _l("Reason"),
                     "no_reason": _l("7-day return without reason"), "status": _l("Status"),
                     "reject_reason": _l("Reject reason"), "return_carrier": _l("Return carrier"),
                     "return_tracking_no": _l("Return tracking no."),
                     "created_at": _l("Created at"), "finished_at": _l("Finished at")}
    list_columns = ["after_sale_no", "order", "kind", "quantity", "amount", "status",
                    "created_at"]
    show_columns = ["after_sale_no", "order", "order_line", "kind", "quantity", "amount",
                    "reason", "no_reason", "status", "reject_reason", "return_carrier",
                    "return_tracking_no", "created_at", "finished_at"]
    search_columns = ["after_sale_no", "kind", "status", "created_at"]
    formatters_columns = {"status": lambda s: AFTER_SALE_STATUS_LABELS.get(s, s),
                          "kind": lambda k: AFTER_SALE_KIND_LABELS.get(k, k)}
    base_order = ("id", "desc")
    # The same permissions as the REST steps (`can_approve`...): the shop or customer
    # service decides, not only the platform.
    method_permission_name = {"approve": "approve", "receive": "receive", "refund": "refund"}

    @action("approve", _l("Approve"), None, "fa-check", multiple=False)
    def approve(self, item):
        return self.run_step(item, after_sale.approve)

    @action("receive", _l("Goods received"), None, "fa-inbox", multiple=False)
    def receive(self, item):
        return self.run_step(item, after_sale.receive)

    @action("refund", _l("Refund"), None, "fa-undo", multiple=False)
    def refund(self, item):
        return self.run_step(item, after_sale.refund)
