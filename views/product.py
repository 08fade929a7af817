"""商品中心 screens and REST resources: thin, every rule is in services/product.py."""
from datetime import datetime

from flask import flash, redirect, request, url_for
from flask_appbuilder.actions import action
from flask_appbuilder.baseviews import expose
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import has_access
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, validate
from wtforms import SelectField
from wtforms.validators import Optional
from sqlalchemy import exists, false
from sqlalchemy.orm import aliased

from app.extensions import db
from models.product import (ATTRIBUTE_KIND_LABELS, FULFILMENT_LABELS, GOODS_KIND_LABELS,
                            SPU_STATUS_LABELS, Attribute, Brand, Category, Fulfilment, GoodsKind,
                            PriceChange, Sku, Spu, SpuTransition)
from services import product
from services.clock import business_time_text
from services.errors import HoutaiError, ValidationFailed
from views.base import (HoutaiModelApi, HoutaiModelView, ReadOnlyModelApi, ReadOnlyModelView,
                        api_action, form_rule)
from views.forms import IdListField, JSONTextAreaField, LinesField
from views.schema import MoneyField, ReasonSchema, StrictInteger, json_body, load_or_422

# -- category tree, brands, attributes (platform data: "catalog") -------------------------------

class FilterSelectableCategory(BaseFilter):
    """Only enabled leaf categories: what a product may be placed in (form dropdowns)."""

    name = _l("Selectable")
    arg_name = "selectable"

    def apply(self, query, value):
        child = aliased(Category)
        return query.filter(Category.enabled.is_(True),
                            ~exists().where(child.parent_id == Category.id))


class FilterEnabled(BaseFilter):
    name = _l("Enabled")
    arg_name = "enabled_only"

    def apply(self, query, value):
        return query.filter(self.datamodel.obj.enabled.is_(True))


class FilterInCategoryTree(BaseFilter):
    """Products of a category and of every category below it (`opr: in_tree`)."""

    name = _l("In category (with subcategories)")
    arg_name = "in_tree"

    def apply(self, query, value):
        key = getattr(value, "id", value)
        category = db.session.get(Category, int(key)) if str(key).isdigit() else None
        if category is None:
            return query.filter(false())
        return query.filter(Spu.category_id.in_(product.descendant_ids(category)))


CATEGORY_LABELS = {"name": _l("Name"), "parent": _l("Parent"), "parent_id": _l("Parent"),
                   "sort_order": _l("Sort order"), "enabled": _l("Enabled"), "path": _l("Path")}


class CategoryView(HoutaiModelView):
    datamodel = SQLAInterface(Category)
    center = "catalog"
    list_title = _l("Categories")
    label_columns = CATEGORY_LABELS
    list_columns = ["name", "parent", "sort_order", "enabled", "path"]
    show_columns = ["name", "parent", "sort_order", "enabled", "path", "created_at"]
    add_columns = ["name", "parent", "sort_order", "enabled"]
    edit_columns = add_columns
    search_columns = ["name", "parent", "enabled"]
    base_order = ("path", "asc")

    def pre_add(self, item):
        super().pre_add(item)
        form_rule(product.place_category, item)

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(product.place_category, item)

    def pre_delete(self, item):
        form_rule(product.check_category_deletable, item)


class CategoryApi(HoutaiModelApi):
    resource_name = "category"
    datamodel = SQLAInterface(Category)
    center = "catalog"
    list_columns = ["id", "name", "parent_id", "sort_order", "enabled", "path"]
    show_columns = list_columns + ["created_at", "updated_at"]
    add_columns = ["name", "parent_id", "sort_order", "enabled"]
    edit_columns = add_columns
    search_columns = ["name", "parent_id", "enabled", "path"]
    order_columns = ["id", "name", "sort_order", "path"]
    base_order = ("path", "asc")

    def pre_add(self, item):
        product.place_category(item)

    def pre_update(self, item):
        product.place_category(item)

    def pre_delete(self, item):
        product.check_category_deletable(item)


class BrandView(HoutaiModelView):
    datamodel = SQLAInterface(Brand)
    center = "catalog"
    list_title = _l("Brands")
    label_columns = {"name": _l("Name"), "logo": _l("Logo"), "enabled": _l("Enabled"),
                     "categories": _l("Limited to categories")}
    list_columns = ["name", "enabled", "categories"]
    show_columns = ["name", "logo", "enabled", "categories", "created_at"]
    add_columns = ["name", "logo", "enabled", "categories"]
    edit_columns = add_columns
    search_columns = ["name", "enabled"]


class BrandApi(HoutaiModelApi):
    resource_name = "brand"
    datamodel = SQLAInterface(Brand)
    center = "catalog"
    list_columns = ["id", "name", "logo_id", "enabled"]
    show_columns = ["id", "name", "logo_id", "enabled", "categories.id", "categories.name",
                    "created_at"]
    add_columns = ["name", "logo_id", "enabled", "categories"]
    edit_columns = add_columns
    search_columns = ["name", "enabled"]
    order_columns = ["id", "name"]


ATTRIBUTE_LABELS = {"category": _l("Category"), "name": _l("Name"), "kind": _l("Kind"),
                    "input_type": _l("Input type"), "options": _l("Options (one per line)"),
                    "required": _l("Required"), "sort_order": _l("Sort order")}


class AttributeView(HoutaiModelView):
    datamodel = SQLAInterface(Attribute)
    center = "catalog"
    list_title = _l("Attributes")
    label_columns = ATTRIBUTE_LABELS
    list_columns = ["category", "name", "kind", "input_type", "required", "sort_order"]
    show_columns = ["category", "name", "kind", "input_type", "options", "required", "sort_order"]
    add_columns = show_columns
    edit_columns = show_columns
    search_columns = ["category", "name", "kind", "input_type"]
    formatters_columns = {"kind": lambda kind: ATTRIBUTE_KIND_LABELS.get(kind, kind),
                          "options": lambda options: "、".join(options or [])}
    add_form_extra_fields = {"options": LinesField(_l("Options (one per line)"))}
    edit_form_extra_fields = add_form_extra_fields

    def pre_add(self, item):
        form_rule(product.check_attribute_definition, item)

    def pre_update(self, item):
        form_rule(product.check_attribute_definition, item)


class AttributeApi(HoutaiModelApi):
    resource_name = "attribute"
    datamodel = SQLAInterface(Attribute)
    center = "catalog"
    list_columns = ["id", "category_id", "name", "kind", "input_type", "options", "required",
                    "sort_order"]
    show_columns = list_columns
    add_columns = ["category_id", "name", "kind", "input_type", "options", "required",
                   "sort_order"]
    edit_columns = add_columns
    search_columns = ["category_id", "name", "kind", "input_type"]
    order_columns = ["id", "sort_order", "name"]

    def pre_add(self, item):
        product.check_attribute_definition(item)

    def pre_update(self, item):
        product.check_attribute_definition(item)


# -- SPUs ---------------------------------------------------------------------------------------

SPU_LABELS = {"title": _l("Title"), "subtitle": _l("Subtitle"), "description": _l("Description"),
              "category": _l("Category"), "brand": _l("Brand"), "status": _l("Status"),
              "attribute_values": _l("Attribute values (JSON)"), "image_ids": _l("Images"),
              "outer_id": _l("Outer id (ERP)"), "shop": _l("Shop"),
              "reject_reason": _l("Reject reason"), "history": _l("History"),
              "created_at": _l("Created at"), "changed_since_review": _l("Changed since review"),
              "goods_kind": _l("Goods kind"), "fulfilment": _l("Fulfilment"),
              "presale_ships_on": _l("Pre-sale: ships on"),
              "presale_deposit": _l("Pre-sale: deposit per unit"),
              "supplier": _l("Supplier (consignment, drop-shipping)"),
              "freight_template": _l("Freight template")}
SELLING_COLUMNS = ["goods_kind", "fulfilment", "presale_ships_on", "presale_deposit"]


class SpuTransitionView(ReadOnlyModelView):
    datamodel = SQLAInterface(SpuTransition)
    center = "product"
    list_title = _l("Listing history")
    label_columns = {"from_status": _l("From"), "to_status": _l("To"), "actor": _l("Who"),
                     "reason": _l("Reason"), "created_at": _l("When"), "spu": _l("SPU")}
    list_columns = ["spu", "from_status", "to_status", "actor", "reason", "created_at"]
    show_columns = list_columns
    search_columns = ["spu", "to_status", "actor"]
    base_order = ("id", "desc")


class PriceChangeView(ReadOnlyModelView):
    """The price history of SKUs (every change through the price service); a SKU's page
    lists its own."""

    datamodel = SQLAInterface(PriceChange)
    center = "product"
    list_title = _l("Price history")
    label_columns = {"sku": _l("SKU"), "old_price": _l("Old price"), "new_price": _l("New price"),
                     "reason": _l("Reason"), "actor": _l("Who"), "created_at": _l("When")}
    list_columns = ["sku", "old_price", "new_price", "reason", "actor", "created_at"]
    show_columns = list_columns
    search_columns = ["sku", "actor", "created_at"]
    base_order = ("id", "desc")


class SkuView(HoutaiModelView):
    datamodel = SQLAInterface(Sku)
    center = "product"
    list_title = _l("SKUs")
    label_columns = {"spu": _l("SPU"), "code": _l("Code"), "barcode": _l("Barcode"),
                     "sales_values": _l("Sales attributes"), "price": _l("Price"),
                     "market_price": _l("Market price"), "cost_price": _l("Cost price"),
                     "weight_kg": _l("Weight (kg)"), "stock_alert_qty": _l("Stock alert"),
                     "enabled": _l("Enabled"), "outer_id": _l("Outer id (ERP)"),
                     "shop": _l("Shop")}
    list_columns = ["spu", "code", "sales_values", "price", "stock_alert_qty", "enabled"]
    formatters_columns = {"sales_values": product.describe_values}
    base_order = ("id", "desc")
    show_columns = ["spu", "shop", "code", "barcode", "sales_values", "price", "market_price",
                    "cost_price", "weight_kg", "stock_alert_qty", "enabled", "outer_id"]
    edit_columns = ["code", "barcode", "market_price", "cost_price", "weight_kg",
                    "stock_alert_qty", "enabled", "outer_id"]
    include_route_methods = {"list", "show", "edit", "delete", "action", "action_post",
                             "bulk_form"}
    search_columns = ["spu", "shop", "code", "barcode", "outer_id", "enabled"]
    base_permissions = ["can_list", "can_show", "can_edit", "can_delete", "can_bulk_form"]
    related_views = [PriceChangeView]

    @action("change_price", _l("Change price"), None, "fa-jpy", multiple=True)
    def change_price(self, items):
        items = items if isinstance(items, list) else [items]
        ids = ",".join(str(item.id) for item in items)
        return redirect(url_for(f"{self.endpoint}.bulk_form", ids=ids))

    @expose("/bulk", methods=["GET", "POST"])
    @has_access
    def bulk_form(self):
        """Edit price and stock alert of many SKUs (a whole grid) at once, with a reason."""
        ids = [int(i) for i in request.values.get("ids", "").split(",") if i.isdigit()]
        skus = [self._visible_or_404(pk) for pk in ids]
        if request.method == "POST":
            try:
                _bulk_update(ids, request.form)
                db.session.commit()
                flash(str(_l("Saved")), "success")
                return redirect(url_for(f"{self.endpoint}.list"))
            except HoutaiError as err:
                db.session.rollback()
                flash("; ".join(f"{f}: {', '.join(map(str, r))}" for f, r in err.errors.items())
                      or err.message, "danger")
        return self.render_template("houtai/sku_bulk.html", skus=skus, ids=ids,
                                    title=_l("Edit prices"), appbuilder=self.appbuilder)


def _form_money(text: str):
    try:
        return MoneyField().deserialize(text)
    except ValidationError as exc:
        raise ValidationFailed.field("price", " ".join(exc.messages)) from exc


def _bulk_update(ids, form):
    """The bulk screen's fields → the price service (and the stock-alert rule)."""
    price_text = (form.get("price") or "").strip()
    alert_text = (form.get("stock_alert_qty") or "").strip()
    if price_text:
        product.change_prices(ids, _form_money(price_text), form.get("reason", ""))
    if alert_text:
        if not alert_text.isdigit():
            raise ValidationFailed.field("stock_alert_qty", "A whole number, not negative.")
        product.set_stock_alert(ids, int(alert_text))


class SpuView(HoutaiModelView):
    datamodel = SQLAInterface(Spu)
    center = "product"
    list_title = _l("Products (SPU)")
    show_title = _l("Product")
    label_columns = SPU_LABELS
    list_columns = ["title", "shop", "category", "brand", "status", "outer_id", "created_at"]
    show_columns = ["title", "subtitle", "shop", "category", "brand", "status", "reject_reason",
                    "attribute_values", "image_ids", "description", "outer_id",
                    *SELLING_COLUMNS, "supplier", "freight_template", "history", "created_at"]
    add_columns = ["shop", "title", "subtitle", "category", "brand", "attribute_values",
                   "image_ids", "description", "outer_id", *SELLING_COLUMNS, "supplier",
                   "freight_template"]
    edit_columns = ["title", "subtitle", "category", "brand", "attribute_values", "image_ids",
                    "description", "outer_id", *SELLING_COLUMNS, "supplier", "freight_template"]
    search_columns = ["title", "shop", "category", "brand", "status", "outer_id"]
    search_filters = {"category": [FilterInCategoryTree]}
    related_views = [SkuView, SpuTransitionView]
    formatters_columns = {
        "status": lambda status: SPU_STATUS_LABELS.get(status, status),
        "goods_kind": lambda kind: GOODS_KIND_LABELS.get(kind, kind),
        "fulfilment": lambda kind: FULFILMENT_LABELS.get(kind, kind),
        "attribute_values": product.describe_values,
        "history": lambda steps: "\n".join(
            f"{business_time_text(datetime.fromisoformat(s['at']))} {s['from'] or '-'} → "
            f"{s['to']} ({s['actor']})" + (f": {s['reason']}" if s["reason"] else "")
            for s in steps),
    }
    base_order = ("id", "desc")
    add_form_extra_fields = {
        "attribute_values": JSONTextAreaField(
            _l("Attribute values (JSON)"), default={},
            description=_l('{"attribute id": value}, e.g. {"3": "cotton"}')),
        "image_ids": IdListField(_l("Images"), description=_l(
            "Ids of uploaded images (System → Uploaded files), separated by commas")),
        "goods_kind": SelectField(_l("Goods kind"), default=GoodsKind.physical.value,
                                  choices=[(k.value, v) for k, v in GOODS_KIND_LABELS.items()],
                                  validators=[Optional()]),
        "fulfilment": SelectField(_l("Fulfilment"), default=Fulfilment.own.value,
                                  choices=[(k.value, v) for k, v in FULFILMENT_LABELS.items()],
                                  validators=[Optional()]),
    }
    edit_form_extra_fields = add_form_extra_fields
    add_form_query_rel_fields = {"category": [["id", FilterSelectableCategory, None]],
                                 "brand": [["id", FilterEnabled, None]]}
    edit_form_query_rel_fields = add_form_query_rel_fields

    def pre_add(self, item):
        super().pre_add(item)
        form_rule(lambda spu: product.prepare_spu(spu, creating=True), item)
        db.session.add(item)
        db.session.flush()
        product.record_creation(item)

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(lambda spu: product.prepare_spu(spu, creating=False), item)

    @action("submit", _l("Submit for review"), None, "fa-paper-plane")
    def submit(self, items):
        return self.run_step(items, product.submit_spu)

    @action("approve", _l("Approve"), None, "fa-check")
    def approve(self, items):
        return self.run_step(items, product.approve_spu)

    @action("reject", _l("Reject"), None, "fa-ban", multiple=False)
    def reject(self, item):
        item = item[0] if isinstance(item, list) else item
        return redirect(url_for(f"{self.endpoint}.reject_form", pk=item.id))

    @action("off_sale", _l("Take off sale"), None, "fa-arrow-down")
    def off_sale(self, items):
        return self.run_step(items, product.take_off_sale)

    @action("on_sale", _l("Put on sale"), None, "fa-arrow-up")
    def on_sale(self, items):
        return self.run_step(items, product.put_on_sale)

    @action("generate", _l("Generate SKU grid"), None, "fa-th", multiple=False)
    def generate(self, item):
        item = item[0] if isinstance(item, list) else item
        return redirect(url_for(f"{self.endpoint}.grid_form", pk=item.id))

    @expose("/reject/<int:pk>", methods=["GET", "POST"])
    @has_access
    def reject_form(self, pk):
        spu = self._visible_or_404(pk)
        return self.reason_step(spu, product.reject_spu, "reject", "houtai/spu_reject.html",
                                spu=spu)

    @expose("/grid/<int:pk>", methods=["GET", "POST"])
    @has_access
    def grid_form(self, pk):
        """Choose values of the category's sales attributes; one SKU per combination."""
        spu = self._visible_or_404(pk)
        sales = product.attributes_of(spu.category, kinds=("sales",))
        if request.method == "POST":
            choices = {str(a.id): request.form.getlist(f"attr-{a.id}") for a in sales}
            try:
                price = _form_money(request.form.get("price") or "0")
                added = product.generate_skus(spu.id, choices, price)
                db.session.commit()
                flash(str(_l("%(count)s SKUs added", count=len(added))), "success")
                return redirect(url_for(f"{self.endpoint}.show", pk=pk))
            except HoutaiError as err:
                db.session.rollback()
                flash("; ".join(f"{f}: {', '.join(map(str, r))}" for f, r in err.errors.items())
                      or err.message, "danger")
        existing = {}
        for sku in spu.skus:
            for attribute_id, value in sku.sales_values.items():
                existing.setdefault(attribute_id, set()).add(value)
        return self.render_template("houtai/spu_grid.html", spu=spu, sales=sales,
                                    existing=existing, title=_l("Generate SKU grid"),
                                    appbuilder=self.appbuilder)


# -- REST ----------------------------------------------------------------------------------------

class OptionalReasonSchema(Schema):
    reason = fields.String(load_default=None, validate=validate.Length(max=255))


class GenerateSchema(Schema):
    choices = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), required=True)
    price = MoneyField(load_default=None)


class PriceSchema(Schema):
    price = MoneyField(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=255))


class BulkSchema(Schema):
    ids = fields.List(StrictInteger(), required=True, validate=validate.Length(min=1, max=500))
    price = MoneyField(load_default=None)
    stock_alert_qty = StrictInteger(load_default=None, validate=validate.Range(min=0))
    reason = fields.String(load_default="", validate=validate.Length(max=255))


SPU_LIST = ["id", "shop_id", "title", "status", "category_id", "brand_id", "outer_id",
            "created_at"]
# who supplies consigned or drop-shipped goods, and the freight template pricing its shipping
SUPPLY_COLUMNS = ["supplier_id", "freight_template_id"]
SPU_SHOW = ["id", "shop_id", "title", "subtitle", "description", "category_id", "brand_id",
            "status", "attribute_values", "image_ids", "outer_id", "reject_reason",
            "changed_since_review", *SELLING_COLUMNS, *SUPPLY_COLUMNS, "history", "created_at",
            "updated_at"]


class SpuApi(HoutaiModelApi):
    resource_name = "spu"
    datamodel = SQLAInterface(Spu)
    center = "product"
    list_columns = SPU_LIST
    show_columns = SPU_SHOW
    add_columns = ["shop_id", "title", "subtitle", "description", "category_id", "brand_id",
                   "attribute_values", "image_ids", "outer_id", *SELLING_COLUMNS,
                   *SUPPLY_COLUMNS]
    edit_columns = ["title", "subtitle", "description", "category_id", "brand_id",
                    "attribute_values", "image_ids", "outer_id", *SELLING_COLUMNS,
                    *SUPPLY_COLUMNS]
    search_columns = ["shop_id", "title", "status", "category_id", "brand_id", "outer_id",
                      "supplier_id", "freight_template_id"]
    search_filters = {"category_id": [FilterInCategoryTree]}
    order_columns = ["id", "title", "status", "created_at"]
    base_order = ("id", "desc")
    include_route_methods = {"get", "get_list", "info", "post", "put", "delete", "submit",
                             "approve", "reject", "off_sale", "on_sale", "generate_skus"}

    def pre_add(self, item):
        product.prepare_spu(item, creating=True)
        db.session.add(item)
        db.session.flush()
        product.record_creation(item)

    def pre_update(self, item):
        product.prepare_spu(item, creating=False)

    def pre_delete(self, item):
        product.discard_draft(item)

    def _step(self, pk, step, schema=None):
        body = load_or_422(schema(), json_body()) if schema else {}
        return self.answer_saved(step(pk, **body))

    @api_action("/<int:pk>/submit", "submit")
    def submit(self, pk):
        """Send a draft or rejected SPU to review
        ---
        post:
          responses:
            200: {description: The SPU, now pending review}
        """
        return self._step(pk, product.submit_spu)

    @api_action("/<int:pk>/approve", "review")
    def approve(self, pk):
        """Approve an SPU pending review: it goes on sale
        ---
        post:
          responses:
            200: {description: The SPU, now on sale}
        """
        return self._step(pk, product.approve_spu)

    @api_action("/<int:pk>/reject", "review")
    def reject(self, pk):
        """Reject an SPU pending review, with a reason
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}}, required: [reason]}
          responses:
            200: {description: The SPU, now rejected}
        """
        return self._step(pk, product.reject_spu, ReasonSchema)

    @api_action("/<int:pk>/off-sale", "submit")
    def off_sale(self, pk):
        """Take an SPU off sale
        ---
        post:
          responses:
            200: {description: The SPU, now off sale}
        """
        return self._step(pk, product.take_off_sale, OptionalReasonSchema) \
            if request.get_data() else self._step(pk, product.take_off_sale)

    @api_action("/<int:pk>/on-sale", "submit")
    def on_sale(self, pk):
        """Put an SPU back on sale (to review again if its content changed)
        ---
        post:
          responses:
            200: {description: The SPU, on sale or pending review}
        """
        return self._step(pk, product.put_on_sale)

    @api_action("/<int:pk>/generate-skus", "put")
    def generate_skus(self, pk):
        """Generate one SKU per combination of the chosen sales-attribute values
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    choices: {type: object, additionalProperties: {type: array, items: {type: string}}}
                    price: {type: string, example: "99.00"}
                  required: [choices]
          responses:
            201: {description: The SKUs added (existing combinations are kept)}
        """
        body = load_or_422(GenerateSchema(), json_body())
        added = product.generate_skus(pk, body["choices"], body["price"])
        db.session.commit()
        return self.response(201, result=SkuOutSchema(many=True).dump(added),
                             ids=[sku.id for sku in added])


SKU_COLUMNS = ["id", "shop_id", "spu_id", "code", "barcode", "sales_values", "price",
               "market_price", "cost_price", "weight_kg", "stock_alert_qty", "enabled",
               "outer_id"]


class SkuOutSchema(Schema):
    """A SKU as the API answers it (the generated grid)."""

    id = fields.Integer()
    shop_id = fields.Integer()
    spu_id = fields.Integer()
    code = fields.String()
    barcode = fields.String(allow_none=True)
    sales_values = fields.Dict()
    price = MoneyField()
    market_price = MoneyField(allow_none=True)
    cost_price = MoneyField(allow_none=True)
    weight_kg = fields.Decimal(as_string=True, allow_none=True)
    stock_alert_qty = fields.Integer()
    enabled = fields.Boolean()
    outer_id = fields.String(allow_none=True)


class SkuApi(HoutaiModelApi):
    resource_name = "sku"
    datamodel = SQLAInterface(Sku)
    center = "product"
    list_columns = SKU_COLUMNS
    show_columns = SKU_COLUMNS + ["created_at", "updated_at"]
    # price is read-only here: it changes only through the price service
    edit_columns = ["code", "barcode", "market_price", "cost_price", "weight_kg",
                    "stock_alert_qty", "enabled", "outer_id"]
    add_columns = edit_columns
    search_columns = ["shop_id", "spu_id", "code", "barcode", "outer_id", "enabled"]
    order_columns = ["id", "code", "price"]
    include_route_methods = {"get", "get_list", "info", "put", "delete", "price", "bulk"}
    validators_columns = {"stock_alert_qty": validate.Range(min=0),
                          "weight_kg": validate.Range(min=0)}

    def pre_delete(self, item):
        product.discard_sku(item)

    @api_action("/<int:pk>/price", "put")
    def price(self, pk):
        """Change one SKU's price, with a reason (kept in the price history)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    price: {type: string, example: "99.00"}
                    reason: {type: string}
                  required: [price, reason]
          responses:
            200: {description: The SKU with its new price}
        """
        body = load_or_422(PriceSchema(), json_body())
        self._get_visible_or_404(pk)
        return self.answer_saved(product.change_price(pk, body["price"], body["reason"]))

    @api_action("/bulk", "put")
    def bulk(self):
        """Set price and/or stock alert of many SKUs at once
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    ids: {type: array, items: {type: integer}}
                    price: {type: string}
                    stock_alert_qty: {type: integer}
                    reason: {type: string}
                  required: [ids]
          responses:
            200: {description: The SKUs after the change}
        """
        body = load_or_422(BulkSchema(), json_body())
        skus = product.skus_for_update(body["ids"])
        if body["price"] is not None:
            product.change_prices(body["ids"], body["price"], body["reason"])
        if body["stock_alert_qty"] is not None:
            product.set_stock_alert(body["ids"], body["stock_alert_qty"])
        db.session.commit()
        return self.response(200, result=self.list_model_schema.dump(skus, many=True))


class SpuTransitionApi(ReadOnlyModelApi):
    resource_name = "spu_transition"
    datamodel = SQLAInterface(SpuTransition)
    center = "product"
    list_columns = ["id", "shop_id", "spu_id", "from_status", "to_status", "actor", "reason",
                    "created_at"]
    show_columns = list_columns
    search_columns = ["spu_id", "to_status", "shop_id"]
    order_columns = ["id", "created_at"]


class PriceChangeApi(ReadOnlyModelApi):
    resource_name = "price_change"
    datamodel = SQLAInterface(PriceChange)
    center = "product"
    list_columns = ["id", "shop_id", "sku_id", "old_price", "new_price", "reason", "actor",
                    "created_at"]
    show_columns = list_columns
    search_columns = ["sku_id", "shop_id", "actor"]
    order_columns = ["id", "created_at"]
    base_order = ("id", "desc")
