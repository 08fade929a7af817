"""发票 REST and screen: the storefront asks for an order's invoice; the shop or Finance issues
it; refunds void or reverse it by themselves."""
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.extensions import db
from models.invoice import INVOICE_KINDS, Invoice
from services import invoice as invoices
from views.base import HoutaiModelApi, ReadOnlyModelView, api_action, api_errors
from views.schema import StrictInteger, json_body, load_or_422

INVOICE_COLUMNS = ["id", "invoice_no", "shop_id", "order_id", "member_id", "kind", "title",
                   "tax_id", "amount", "status", "reverses_id", "e_invoice_code", "pdf_url",
                   "requested_at", "issued_at", "voided_at"]


class InvoiceRequestSchema(Schema):
    order_id = StrictInteger(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(INVOICE_KINDS))
    title = fields.String(required=True, validate=validate.Length(min=1, max=128))
    tax_id = fields.String(load_default=None, validate=validate.Length(max=32))


class InvoiceApi(HoutaiModelApi):
    resource_name = "invoice"
    datamodel = SQLAInterface(Invoice)
    center = "invoice"
    include_route_methods = {"get", "get_list", "info", "post", "issue"}
    list_columns = INVOICE_COLUMNS
    show_columns = INVOICE_COLUMNS
    add_columns = ["order_id", "kind", "title", "tax_id"]
    search_columns = ["invoice_no", "shop_id", "order_id", "member_id", "status",
                      "requested_at"]
    base_order = ("id", "desc")

    @api_errors
    def post_headless(self):
        """Ask for an order's invoice (one per order)"""
        body = load_or_422(InvoiceRequestSchema(), json_body())
        made = invoices.request(body["order_id"], body["kind"], body["title"], body["tax_id"])
        db.session.commit()
        return self.response(201, id=made.id, result=self.show_model_schema.dump(made))

    @api_action("/<int:pk>/issue", "issue")
    def issue(self, pk):
        """Issue a requested invoice through the e-invoice adapter
        ---
        post:
          responses:
            200: {description: The invoice, issued (or cancelled when nothing is left)}
            409: {description: Not requested}
        """
        made = invoices.issue(pk)
        db.session.commit()
        return self.response(200, result=self.show_model_schema.dump(made))


class InvoiceView(ReadOnlyModelView):
    datamodel = SQLAInterface(Invoice)
    center = "invoice"
    list_title = _l("Invoices")
    label_columns = {"invoice_no": _l("Invoice no."), "order": _l("Order"), "kind": _l("Kind"),
                     "title": _l("Invoice title"), "tax_id": _l("Tax id"),
                     "amount": _l("Amount"), "status": _l("Status"),
                     "e_invoice_code": _l("E-invoice code"), "issued_at": _l("Issued at"),
                     "voided_at": _l("Voided at"), "requested_at": _l("Requested at")}
    list_columns = ["invoice_no", "order", "title", "amount", "status", "issued_at"]
    show_columns = ["invoice_no", "order", "kind", "title", "tax_id", "amount", "status",
                    "e_invoice_code", "requested_at", "issued_at", "voided_at"]
    search_columns = ["invoice_no", "status", "requested_at"]
    base_order = ("id", "desc")
