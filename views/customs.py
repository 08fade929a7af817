"""物流中心 customs declarations (跨境报关) REST and screens: declared through the customs
service (never typed in: values come from the shipment, the buyer's identity is checked and
kept as a hint), submitted, revised after a hold, cancelled; the customs' signed decision
callback (public, no login)."""
from flask import request
from flask_appbuilder.actions import action
from flask_appbuilder.api import expose
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.extensions import db
from models.logistics import CustomsDeclaration
from services import customs
from views.base import HoutaiModelApi, ReadOnlyModelView, api_action, api_errors
from views.schema import StrictInteger, json_body, load_or_422

DECLARATION_COLUMNS = ["id", "declaration_no", "shop_id", "notice_id", "order_id", "items",
                       "total_value", "currency", "buyer_name", "buyer_id_hint", "status",
                       "customs_no", "message", "created_at", "submitted_at", "decided_at"]
STATUS_LABELS = {"draft": _l("Draft"), "submitted": _l("Submitted"), "cleared": _l("Cleared"),
                 "held": _l("Held"), "cancelled": _l("Cancelled")}


class ItemSchema(Schema):
    sku_id = StrictInteger(required=True)
    hs_code = fields.String(required=True, validate=validate.Length(max=10))
    origin = fields.String(required=True, validate=validate.Length(max=3))


class ReviseSchema(Schema):
    buyer_name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    buyer_id_number = fields.String(required=True, validate=validate.Length(min=1, max=18))
    items = fields.List(fields.Nested(ItemSchema), required=True,
                        validate=validate.Length(min=1, max=100))
    shop_id = StrictInteger(load_default=None, allow_none=True)


class DeclareSchema(ReviseSchema):
    notice_id = StrictInteger(required=True)


class CustomsDeclarationApi(HoutaiModelApi):
    """Customs declarations of cross-border shipments: declared (POST), submitted, revised,
    cancelled through the customs service; customs call back with their decision."""

    resource_name = "customs_declaration"
    datamodel = SQLAInterface(CustomsDeclaration)
    center = "customs"
    include_route_methods = {"get", "get_list", "info", "post", "submit", "cancel", "revise",
                             "callback"}
    list_columns = DECLARATION_COLUMNS
    show_columns = DECLARATION_COLUMNS
    add_model_schema = DeclareSchema()
    add_columns = ["notice_id", "buyer_name", "buyer_id_number", "items"]
    label_columns = {"buyer_id_number": _l("Buyer's identity number")}
    search_columns = ["declaration_no", "shop_id", "notice_id", "order_id", "status",
                      "customs_no", "created_at"]
    order_columns = ["id", "created_at", "submitted_at", "total_value"]
    base_order = ("id", "desc")

    @api_errors
    def post_headless(self):
        """Declare a shipment from a cross-border warehouse (a draft)"""
        body = load_or_422(self.add_model_schema, json_body())
        made = customs.declare(body)
        db.session.commit()
        return self.response(201, id=made.id, result=self.show_model_schema.dump(made))

    @api_action("/<int:pk>/submit", "submit")
    def submit(self, pk):
        """Submit a draft to customs; the decision (cleared or held) follows
        ---
        post:
          responses:
            200: {description: The declaration, submitted (with its customs number)}
            404: {description: No such declaration}
            409: {description: 'Not a draft (errors.status), or the customs service is off'}
        """
        return self.answer_saved(customs.submit(pk))

    @api_action("/<int:pk>/cancel", "cancel")
    def cancel(self, pk):
        """Cancel a draft or held declaration
        ---
        post:
          responses:
            200: {description: The declaration, cancelled}
            404: {description: No such declaration}
            409: {description: 'Submitted, cleared or cancelled already (errors.status)'}
        """
        return self.answer_saved(customs.cancel(pk))

    @api_action("/<int:pk>/revise", "revise")
    def revise(self, pk):
        """Correct a draft or held declaration (the whole buyer and items): a draft again
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    buyer_name: {type: string}
                    buyer_id_number: {type: string}
                    items:
                      type: array
                      items:
                        type: object
                        properties: {sku_id: {type: integer}, hs_code: {type: string},
                                     origin: {type: string}}
                  required: [buyer_name, buyer_id_number, items]
          responses:
            200: {description: The declaration, a draft}
            404: {description: No such declaration}
            409: {description: 'Submitted, cleared or cancelled (errors.status)'}
        """
        body = load_or_422(ReviseSchema(), json_body())
        return self.answer_saved(customs.revise(pk, body))

    @expose("/callback/<adapter>", methods=["POST"])
    @api_errors
    def callback(self, adapter):
        """Customs' decision on a submission (signed; no login)
        ---
        post:
          parameters:
          - {in: path, name: adapter, required: true, schema: {type: string}}
          - {in: header, name: X-Signature, required: true, schema: {type: string},
             description: hex HMAC-SHA256 of the raw body under the adapter's secret}
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    customs_no: {type: string}
                    declaration_no: {type: string}
                    status: {type: string, enum: [CLEARED, HELD]}
                    message: {type: string}
                    decided_at: {type: string, format: date-time}
          responses:
            200: {description: 'Handled (a repeat too, with no second effect): {"result": "ok"}'}
            401: {description: Bad or missing signature; nothing changes}
            404: {description: Unknown adapter or customs number}
        """
        customs.handle_callback(adapter, request.get_data(), request.headers)
        db.session.commit()
        return self.response(200, result="ok")


class CustomsDeclarationView(ReadOnlyModelView):
    datamodel = SQLAInterface(CustomsDeclaration)
    center = "customs"
    list_title = _l("Customs declarations")
    label_columns = {"declaration_no": _l("Declaration no."), "shop": _l("Shop"),
                     "notice_id": _l("Shipping notice"), "order_id": _l("Order"),
                     "items": _l("Declared items"), "total_value": _l("Declared value"),
                     "currency": _l("Currency"), "buyer_name": _l("Buyer"),
                     "buyer_id_hint": _l("Buyer's identity number"), "status": _l("Status"),
                     "customs_no": _l("Customs no."), "message": _l("Customs message"),
                     "created_at": _l("Created at"), "submitted_at": _l("Submitted at"),
                     "decided_at": _l("Decided at")}
    list_columns = ["declaration_no", "shop", "notice_id", "total_value", "buyer_name",
                    "status", "customs_no", "created_at", "decided_at"]
    show_columns = ["declaration_no", "shop", "notice_id", "order_id", "items", "total_value",
                    "currency", "buyer_name", "buyer_id_hint", "status", "customs_no",
                    "message", "created_at", "submitted_at", "decided_at"]
    search_columns = ["declaration_no", "shop", "notice_id", "status", "customs_no",
                      "created_at"]
    formatters_columns = {
        "status": lambda s: STATUS_LABELS.get(s, s),
        "items": lambda items: "; ".join(
            f"{i.get('name')} × {i.get('quantity')} HS {i.get('hs_code')} {i.get('origin')} "
            f"= {i.get('value')}" for i in items or [])}
    base_order = ("id", "desc")

    @action("submit", _l("Submit to customs"), None, "fa-paper-plane")
    def submit(self, items):
        return self.run_step(items, customs.submit)

    @action("cancel", _l("Cancel"), None, "fa-times")
    def cancel(self, items):
        return self.run_step(items, customs.cancel)
