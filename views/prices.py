"""运营中心 price management: price batches (调价单) in REST and on screens. The rules are in
services/prices; every price still changes only through services/product.change_prices."""
from datetime import datetime
from decimal import Decimal

from flask import flash, redirect, request, url_for
from flask_appbuilder.actions import action
from flask_appbuilder.baseviews import expose
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import has_access
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, validate

from app.extensions import db
from models.prices import PRICE_BATCH_MODES, PriceBatch, PriceBatchLine
from models.product import Brand, Category
from models.shop import Shop
from services import prices
from services.actor import ALL_SHOPS, shop_scope
from services.clock import business_zone
from services.errors import HoutaiError, ValidationFailed
from views.base import (HoutaiModelApi, ReadOnlyModelApi, ReadOnlyModelView, api_action,
                        api_errors)
from views.schema import (MAX_MONEY, MoneyField, ScaledDecimal, StrictInteger, json_body,
                          load_or_422, optional_body)

STATUS_LABELS = {"pending_approval": _l("Pending approval"), "scheduled": _l("Scheduled"),
                 "applied": _l("Applied"), "rejected": _l("Rejected"),
                 "cancelled": _l("Cancelled")}
MODE_LABELS = {"percent": _l("By percent (±%)"), "amount": _l("By amount (± CNY)"),
               "set": _l("Set price")}
LINE_STATUS_LABELS = {"pending": _l("Pending"), "applied": _l("Applied"),
                      "skipped": _l("Skipped")}


class SignedAmount(ScaledDecimal):
    """A change of a price: two decimals at most, negative for a cut."""

    default_error_messages = {"invalid": "Not a valid number.",
                              "places": "At most two decimal places.",
                              "too_large": "Too large."}

    def __init__(self, **kwargs):
        super().__init__(2, **kwargs)

    def _check_range(self, number: Decimal) -> None:
        if abs(number) > MAX_MONEY:
            raise self.make_error("too_large")


class FiltersBody(Schema):
    shop_id = StrictInteger(load_default=None, allow_none=True)
    category_id = StrictInteger(load_default=None, allow_none=True)
    brand_id = StrictInteger(load_default=None, allow_none=True)
    spu_ids = fields.List(StrictInteger(), load_default=None, allow_none=True,
                          validate=validate.Length(min=1, max=10000))
    sku_ids = fields.List(StrictInteger(), load_default=None, allow_none=True,
                          validate=validate.Length(min=1, max=10000))


class ChangeBody(Schema):
    filters = fields.Nested(FiltersBody, required=True)
    mode = fields.String(required=True, validate=validate.OneOf(PRICE_BATCH_MODES))
    value = SignedAmount(required=True)


class BatchBody(ChangeBody):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=255))
    effective_at = fields.AwareDateTime(load_default=None, allow_none=True)


class OptionalReasonBody(Schema):
    reason = fields.String(load_default=None, allow_none=True,
                           validate=validate.Length(max=255))


class ReasonBody(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=255))


class PreviewLineOut(Schema):
    sku_id = fields.Integer()
    sku_code = fields.String()
    shop_id = fields.Integer()
    old_price = MoneyField()
    new_price = MoneyField()
    cut_percent = fields.Decimal(as_string=True)
    requires_approval = fields.Boolean()


class PreviewOut(Schema):
    filters = fields.Dict()
    mode = fields.String()
    value = SignedAmount()
    lines = fields.List(fields.Nested(PreviewLineOut))
    max_cut_percent = fields.Decimal(as_string=True)
    requires_approval = fields.Boolean()
    threshold_percent = fields.Decimal(as_string=True)


def _filters(body: dict) -> dict:
    return {key: value for key, value in body["filters"].items() if value is not None}


BATCH_COLUMNS = ["id", "batch_no", "shop_id", "filters", "mode", "value", "reason",
                 "effective_at", "status", "max_cut_percent", "requires_approval",
                 "created_by", "created_at", "decided_by", "decided_at", "decision_reason",
                 "applied_at"]


class PriceBatchApi(HoutaiModelApi):
    """调价单: SKUs by filter, a change by percent, amount or set price, applied at a time;
    cuts beyond PRICE_CUT_APPROVAL_PERCENT wait for platform approval. Lines:
    /api/v1/price_batch_line/."""

    resource_name = "price_batch"
    datamodel = SQLAInterface(PriceBatch)
    center = "prices"
    include_route_methods = {"get", "get_list", "info", "post", "preview", "approve", "reject",
                             "cancel"}
    list_columns = BATCH_COLUMNS
    show_columns = BATCH_COLUMNS + ["line_items"]
    add_columns = ["filters", "mode", "value", "reason", "effective_at"]
    add_model_schema = BatchBody()
    search_columns = ["batch_no", "shop_id", "status", "mode", "effective_at", "created_at"]
    order_columns = ["id", "effective_at", "created_at"]
    base_order = ("id", "desc")

    @api_errors
    def post_headless(self):
        """Submit a price batch (the preview made binding); 201 with its lines"""
        body = load_or_422(self.add_model_schema, json_body())
        batch = prices.submit(_filters(body), body["mode"], body["value"], body["reason"],
                              body["effective_at"])
        db.session.commit()
        return self.response(201, id=batch.id, result=self.show_model_schema.dump(batch))

    @api_action("/preview", "post")
    def preview(self):
        """Work out a batch's lines without saving anything
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    filters:
                      type: object
                      properties:
                        shop_id: {type: integer}
                        category_id: {type: integer}
                        brand_id: {type: integer}
                        spu_ids: {type: array, items: {type: integer}}
                        sku_ids: {type: array, items: {type: integer}}
                    mode: {type: string, enum: [percent, amount, set]}
                    value: {type: string, example: "-10.00"}
                  required: [filters, mode, value]
          responses:
            200: {description: 'The lines (SKU, shop, old and new price, cut percent), the
              deepest cut and whether approval would be needed'}
            422: {description: 'Bad filters, ids of another shop, no SKU, too many SKUs, or a
              new price below 0 (errors.value names the SKUs)'}
        """
        body = load_or_422(ChangeBody(), json_body())
        try:
            result = prices.preview(_filters(body), body["mode"], body["value"])
        finally:
            db.session.rollback()
        return self.response(200, result=PreviewOut().dump(result))

    @api_action("/<int:pk>/approve", "review")
    def approve(self, pk):
        """Approve a batch waiting for approval (platform staff); applied at once when due
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}}}
          responses:
            200: {description: The batch, scheduled or applied}
            403: {description: Merchants cannot approve}
            404: {description: No such batch}
            409: {description: Not waiting for approval (errors.status)}
        """
        body = load_or_422(OptionalReasonBody(), optional_body())
        return self.answer_saved(prices.approve(pk, body["reason"]))

    @api_action("/<int:pk>/reject", "review")
    def reject(self, pk):
        """Reject a batch waiting for approval, saying why
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}},
                         required: [reason]}
          responses:
            200: {description: The batch, rejected}
            404: {description: No such batch}
            409: {description: Not waiting for approval (errors.status)}
        """
        body = load_or_422(ReasonBody(), json_body())
        return self.answer_saved(prices.reject(pk, body["reason"]))

    @api_action("/<int:pk>/cancel", "cancel")
    def cancel(self, pk):
        """Withdraw a batch before it is applied
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}}}
          responses:
            200: {description: The batch, cancelled}
            404: {description: No such batch}
            409: {description: Already applied, rejected or cancelled (errors.status)}
        """
        body = load_or_422(OptionalReasonBody(), optional_body())
        return self.answer_saved(prices.cancel(pk, body["reason"]))


LINE_COLUMNS = ["id", "batch_id", "sku_id", "shop_id", "old_price", "new_price", "status",
                "note"]


class PriceBatchLineApi(ReadOnlyModelApi):
    resource_name = "price_batch_line"
    datamodel = SQLAInterface(PriceBatchLine)
    center = "prices"
    list_columns = LINE_COLUMNS
    show_columns = LINE_COLUMNS
    search_columns = ["batch_id", "sku_id", "shop_id", "status"]
    order_columns = ["id", "sku_id"]
    base_order = ("id", "asc")


# -- screens -------------------------------------------------------------------------------------

BATCH_LABELS = {"batch_no": _l("Batch no."), "shop": _l("Shop"), "filters": _l("Filters"),
                "mode": _l("Mode"), "value": _l("Value"), "reason": _l("Reason"),
                "effective_at": _l("Effective at"), "status": _l("Status"),
                "max_cut_percent": _l("Deepest cut (percent)"),
                "requires_approval": _l("Needs approval"), "created_by": _l("Created by"),
                "created_at": _l("Created at"), "decided_by": _l("Decided by"),
                "decided_at": _l("Decided at"), "decision_reason": _l("Decision reason"),
                "applied_at": _l("Applied at"), "line_items": _l("Lines")}


def _lines_text(lines) -> str:
    return "\n".join(f"{line['sku_code']}: {line['old_price']} → {line['new_price']} "
                     f"({LINE_STATUS_LABELS.get(line['status'], line['status'])})"
                     + (f" {line['note']}" if line["note"] else "") for line in lines)


class PriceBatchLineView(ReadOnlyModelView):
    datamodel = SQLAInterface(PriceBatchLine)
    center = "prices"
    list_title = _l("Price batch lines")
    label_columns = {"batch": _l("Batch"), "sku": _l("SKU"), "old_price": _l("Old price"),
                     "new_price": _l("New price"), "status": _l("Status"), "note": _l("Note"),
                     "shop": _l("Shop")}
    list_columns = ["batch", "sku", "old_price", "new_price", "status", "note"]
    show_columns = list_columns
    search_columns = ["batch", "sku", "status"]
    formatters_columns = {"status": lambda s: LINE_STATUS_LABELS.get(s, s)}
    base_order = ("id", "asc")


class PriceBatchView(ReadOnlyModelView):
    datamodel = SQLAInterface(PriceBatch)
    center = "prices"
    list_title = _l("Price batches")
    show_title = _l("Price batch")
    label_columns = BATCH_LABELS
    list_columns = ["batch_no", "shop", "mode", "value", "status", "max_cut_percent",
                    "effective_at", "created_by", "created_at"]
    show_columns = ["batch_no", "shop", "status", "filters", "mode", "value", "reason",
                    "effective_at", "max_cut_percent", "requires_approval", "created_by",
                    "created_at", "decided_by", "decided_at", "decision_reason", "applied_at",
                    "line_items"]
    search_columns = ["batch_no", "shop", "status", "mode", "effective_at", "created_at"]
    formatters_columns = {"status": lambda s: STATUS_LABELS.get(s, s),
                          "mode": lambda m: MODE_LABELS.get(m, m),
                          "line_items": _lines_text}
    related_views = [PriceBatchLineView]
    base_order = ("id", "desc")
    base_permissions = ReadOnlyModelView.base_permissions + ["can_new_batch",
                                                             "can_reject_form"]
    include_route_methods = ReadOnlyModelView.include_route_methods | {"new_batch",
                                                                       "reject_form"}
    houtai_menu_name = "New price batch"

    @action("approve", _l("Approve"), None, "fa-check")
    def approve(self, items):
        return self.run_step(items, prices.approve)

    @action("reject", _l("Reject"), None, "fa-ban", multiple=False)
    def reject(self, item):
        item = item[0] if isinstance(item, list) else item
        return redirect(url_for(f"{self.endpoint}.reject_form", pk=item.id))

    @action("cancel", _l("Cancel"), _l("Cancel the selected price batches?"), "fa-times")
    def cancel(self, items):
        return self.run_step(items, prices.cancel)

    @expose("/reject/<int:pk>", methods=["GET", "POST"])
    @has_access
    def reject_form(self, pk):
        batch = self._visible_or_404(pk)
        return self.reason_step(batch, prices.reject, "reject", "houtai/price_batch_reject.html",
                                batch=batch)

    @expose("/new", methods=["GET", "POST"])
    @has_access
    def new_batch(self):
        """Filters, a change, a reason and a time; Preview shows the lines, Submit saves."""
        result, errors = None, None
        if request.method == "POST":
            try:
                parsed = _form_body(request.form)
                if request.form.get("step") == "submit":
                    batch = prices.submit(*parsed)
                    db.session.commit()
                    flash(str(_l("Price batch %(no)s: %(status)s", no=batch.batch_no,
                                 status=STATUS_LABELS[batch.status])), "success")
                    return redirect(url_for(f"{self.endpoint}.show", pk=batch.id))
                result = prices.preview(*parsed[:3])
            except HoutaiError as err:
                errors = err.errors or {"": [err.message]}
            finally:
                db.session.rollback()
        staff = shop_scope() is ALL_SHOPS
        return self.render_template(
            "houtai/price_batch_new.html", form=request.form, result=result, errors=errors,
            modes=MODE_LABELS, shops=Shop.query.order_by(Shop.name).all() if staff else [],
            categories=Category.query.order_by(Category.path).all(),
            brands=Brand.query.order_by(Brand.name).all(),
            title=_l("New price batch"), appbuilder=self.appbuilder)


def _form_ids(text: str, field: str) -> list[int] | None:
    parts = [p.strip() for p in (text or "").replace("，", ",").split(",") if p.strip()]
    if not parts:
        return None
    if not all(p.isdigit() and len(p) < 10 for p in parts):
        raise ValidationFailed.field(field, "Ids separated by commas.")
    return [int(p) for p in parts]


def _form_id(text: str, field: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    if not text.isdigit() or len(text) >= 10:
        raise ValidationFailed.field(field, "Not a valid id.")
    return int(text)


def _form_body(form) -> tuple:
    """The new-batch form → (filters, mode, value, reason, effective_at) for the service."""
    filters = {"shop_id": _form_id(form.get("shop_id"), "filters.shop_id"),
               "category_id": _form_id(form.get("category_id"), "filters.category_id"),
               "brand_id": _form_id(form.get("brand_id"), "filters.brand_id"),
               "spu_ids": _form_ids(form.get("spu_ids"), "filters.spu_ids"),
               "sku_ids": _form_ids(form.get("sku_ids"), "filters.sku_ids")}
    try:
        value = SignedAmount().deserialize((form.get("value") or "").strip())
    except ValidationError as exc:
        raise ValidationFailed.field("value", " ".join(exc.messages)) from exc
    when = (form.get("effective_at") or "").strip()
    effective_at = None
    if when:
        try:
            effective_at = datetime.fromisoformat(when).replace(tzinfo=business_zone())
        except ValueError as exc:
            raise ValidationFailed.field("effective_at", "A date and time.") from exc
    return ({k: v for k, v in filters.items() if v is not None}, form.get("mode", ""), value,
            form.get("reason", ""), effective_at)


def register(appbuilder) -> None:
    operations = dict(category="Operations", category_label=_l("Operations"),
                      category_icon="fa-bullseye")
    appbuilder.add_view(PriceBatchView, "Price batches", label=_l("Price batches"),
                        icon="fa-jpy", **operations)
    appbuilder.add_link("New price batch", href="/pricebatchview/new",
                        label=_l("New price batch"), icon="fa-plus", **operations)
    appbuilder.add_view_no_menu(PriceBatchLineView)
    for api in (PriceBatchApi, PriceBatchLineApi):
        appbuilder.add_api(api)
