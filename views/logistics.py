"""物流中心 REST and screens: carriers, their rate cards and selection rules (platform data,
center `logistics`), the shops' freight templates and their region lines (center `freight`),
the freight quote helper, and the report of freight paid against the carriers' real cost."""
from flask import request
from flask_appbuilder.api import BaseApi
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate
from wtforms import BooleanField, IntegerField
from wtforms.validators import Optional

from app.extensions import db
from models.logistics import Carrier, CarrierRate, CarrierRule, FreightRule, FreightTemplate
from services import logistics
from views.base import HoutaiModelApi, HoutaiModelView, api_action, form_rule
from views.forms import LinesField
from views.openapi import OpenApiErrorsMixin
from views.schema import StrictInteger, json_body, load_or_422

CARRIER_FIELDS = ["code", "name", "adapter", "adapter_code", "supports_cod", "enabled"]
RATE_FIELDS = ["regions", "first_kg", "first_fee", "step_kg", "step_fee", "remote_surcharge"]
RULE_FIELDS = ["name", "priority", "regions", "warehouse_id", "min_weight_kg", "max_weight_kg",
               "cod", "carrier_id", "enabled"]
TEMPLATE_FIELDS = ["name", "basis", "free_over_amount", "free_over_pieces", "remote_regions",
                   "remote_surcharge", "is_default", "enabled"]
FREIGHT_RULE_FIELDS = ["regions", "first_units", "first_fee", "step_units", "step_fee"]

LABELS = {
    "code": _l("Code"), "name": _l("Name"), "adapter": _l("Tracking adapter"),
    "adapter_code": _l("Code at the tracking service"), "supports_cod": _l("Cash on delivery"),
    "enabled": _l("Enabled"), "carrier": _l("Carrier"),
    "regions": _l("Provinces (empty: everywhere else)"), "first_kg": _l("First kg"),
    "first_fee": _l("First fee"), "step_kg": _l("Each further kg"),
    "step_fee": _l("Further fee"), "remote_surcharge": _l("Remote surcharge"),
    "priority": _l("Priority"), "warehouse": _l("Warehouse"),
    "min_weight_kg": _l("Min weight (kg)"), "max_weight_kg": _l("Max weight (kg)"),
    "cod": _l("Cash on delivery"), "shop": _l("Shop"), "basis": _l("Charged by"),
    "free_over_amount": _l("Free over amount"), "free_over_pieces": _l("Free over pieces"),
    "remote_regions": _l("Remote provinces"), "is_default": _l("Shop default"),
    "template": _l("Template"), "first_units": _l("First units"),
    "step_units": _l("Each further units"), "created_at": _l("Created at"),
}
REGION_FIELD = {"regions": LinesField(_l("Provinces (empty: everywhere else)"),
                                      description=_l("One six-digit code per line"))}
# a flag left unticked is false, not a missing value
ENABLED_FIELD = {"enabled": BooleanField(_l("Enabled"), default=True)}


def _codes(codes) -> str:
    return ", ".join(codes or []) or "*"


# -- carriers (platform data) ------------------------------------------------------------------

class CarrierApi(HoutaiModelApi):
    resource_name = "carrier"
    datamodel = SQLAInterface(Carrier)
    center = "logistics"
    list_columns = ["id", *CARRIER_FIELDS, "created_at"]
    show_columns = ["id", *CARRIER_FIELDS, "created_at", "updated_at"]
    add_columns = CARRIER_FIELDS
    edit_columns = CARRIER_FIELDS
    search_columns = ["code", "name", "adapter", "supports_cod", "enabled"]
    order_columns = ["id", "code", "name"]
    base_order = ("id", "asc")

    def pre_add(self, item):
        logistics.check_carrier(item)

    def pre_update(self, item):
        logistics.check_carrier(item)


class CarrierRateApi(HoutaiModelApi):
    """A carrier's rate card, one line per region group (`carrier_id` names the carrier)."""

    resource_name = "carrier_rate"
    datamodel = SQLAInterface(CarrierRate)
    center = "logistics"
    list_columns = ["id", "carrier_id", *RATE_FIELDS]
    show_columns = list_columns
    add_columns = ["carrier_id", *RATE_FIELDS]
    edit_columns = RATE_FIELDS
    search_columns = ["carrier_id"]
    order_columns = ["id", "carrier_id"]
    base_order = ("id", "asc")

    def pre_add(self, item):
        logistics.check_rate(item)

    def pre_update(self, item):
        logistics.check_rate(item)


class CarrierRuleApi(HoutaiModelApi):
    resource_name = "carrier_rule"
    datamodel = SQLAInterface(CarrierRule)
    center = "logistics"
    list_columns = ["id", *RULE_FIELDS, "created_at"]
    show_columns = list_columns
    add_columns = RULE_FIELDS
    edit_columns = RULE_FIELDS
    search_columns = ["name", "priority", "warehouse_id", "carrier_id", "cod", "enabled"]
    order_columns = ["id", "priority", "name"]
    base_order = ("priority", "asc")

    def pre_add(self, item):
        logistics.check_rule(item)

    def pre_update(self, item):
        logistics.check_rule(item)


class CarrierView(HoutaiModelView):
    datamodel = SQLAInterface(Carrier)
    center = "logistics"
    list_title = _l("Carriers")
    label_columns = LABELS
    list_columns = ["code", "name", "adapter", "supports_cod", "enabled"]
    show_columns = [*CARRIER_FIELDS, "created_at"]
    add_columns = CARRIER_FIELDS
    edit_columns = CARRIER_FIELDS
    search_columns = ["code", "name", "adapter", "enabled"]
    add_form_extra_fields = {**ENABLED_FIELD,
                             "supports_cod": BooleanField(_l("Cash on delivery"))}
    edit_form_extra_fields = add_form_extra_fields

    def pre_add(self, item):
        super().pre_add(item)
        form_rule(logistics.check_carrier, item)

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(logistics.check_carrier, item)


class CarrierRateView(HoutaiModelView):
    datamodel = SQLAInterface(CarrierRate)
    center = "logistics"
    list_title = _l("Carrier rate cards")
    label_columns = LABELS
    list_columns = ["carrier", "regions", "first_kg", "first_fee", "step_kg", "step_fee",
                    "remote_surcharge"]
    show_columns = ["carrier", *RATE_FIELDS]
    add_columns = ["carrier", *RATE_FIELDS]
    edit_columns = RATE_FIELDS
    search_columns = ["carrier"]
    formatters_columns = {"regions": _codes}
    add_form_extra_fields = REGION_FIELD
    edit_form_extra_fields = REGION_FIELD

    def pre_add(self, item):
        super().pre_add(item)
        if item.carrier is not None:
            item.carrier_id = item.carrier.id
        form_rule(logistics.check_rate, item)

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(logistics.check_rate, item)


class CarrierRuleView(HoutaiModelView):
    datamodel = SQLAInterface(CarrierRule)
    center = "logistics"
    list_title = _l("Carrier selection rules")
    label_columns = LABELS
    list_columns = ["priority", "name", "regions", "warehouse", "min_weight_kg",
                    "max_weight_kg", "cod", "carrier", "enabled"]
    form_fields = ["name", "priority", "regions", "warehouse", "min_weight_kg", "max_weight_kg",
                   "cod", "carrier", "enabled"]
    show_columns = form_fields
    add_columns = form_fields
    edit_columns = form_fields
    search_columns = ["name", "warehouse", "carrier", "enabled"]
    formatters_columns = {"regions": _codes}
    add_form_extra_fields = {**REGION_FIELD, **ENABLED_FIELD,
                             "priority": IntegerField(_l("Priority"), default=100,
                                                      validators=[Optional()],
                                                      description=_l("Lower first"))}
    edit_form_extra_fields = add_form_extra_fields
    base_order = ("priority", "asc")

    def _ids(self, item):
        item.carrier_id = item.carrier.id if item.carrier is not None else None
        item.warehouse_id = item.warehouse.id if item.warehouse is not None else None

    def pre_add(self, item):
        super().pre_add(item)
        self._ids(item)
        form_rule(logistics.check_rule, item)

    def pre_update(self, item):
        super().pre_update(item)
        self._ids(item)
        form_rule(logistics.check_rule, item)


# -- freight templates (shop data) -------------------------------------------------------------

class QuoteLineSchema(Schema):
    sku_id = StrictInteger(required=True)
    quantity = StrictInteger(required=True, validate=validate.Range(min=1, max=9999))


class QuoteSchema(Schema):
    shop_id = StrictInteger(load_default=None, allow_none=True)
    province_code = fields.String(required=True, validate=validate.Length(min=1, max=16))
    lines = fields.List(fields.Nested(QuoteLineSchema), required=True,
                        validate=validate.Length(min=1, max=logistics.MAX_QUOTE_LINES))


class FreightTemplateApi(HoutaiModelApi):
    """运费模板 of a shop; its region lines are the freight_rule resource."""

    resource_name = "freight_template"
    datamodel = SQLAInterface(FreightTemplate)
    center = "freight"
    include_route_methods = {"get", "get_list", "info", "post", "put", "delete", "quote"}
    list_columns = ["id", "shop_id", *TEMPLATE_FIELDS, "created_at"]
    show_columns = ["id", "shop_id", *TEMPLATE_FIELDS, "created_at", "updated_at"]
    add_columns = ["shop_id", *TEMPLATE_FIELDS]
    edit_columns = TEMPLATE_FIELDS
    search_columns = ["shop_id", "name", "basis", "is_default", "enabled"]
    order_columns = ["id", "name"]
    base_order = ("id", "asc")

    def pre_add(self, item):
        logistics.check_template(item)

    def pre_update(self, item):
        logistics.check_template(item)

    def pre_delete(self, item):
        logistics.check_template_delete(item)

    @api_action("/quote", "quote")
    def quote(self):
        """The freight of SKUs of one shop to a province, per template (list prices)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    shop_id: {type: integer}
                    province_code: {type: string, example: "310000"}
                    lines: {type: array, items: {type: object, properties: {
                            sku_id: {type: integer}, quantity: {type: integer}}}}
                  required: [province_code, lines]
          responses:
            200: {description: '{"result": {"shop_id", "province_code", "freight", "templates":
              [{"template_id", "name", "basis", "pieces", "weight_kg", "amount", "free",
              "freight"}]}}'}
            422: {description: 'A bad province (errors.province_code), an unknown SKU
              (errors."lines.<n>.sku_id"), SKUs of several shops, or a province the template
              does not deliver to'}
        """
        body = load_or_422(QuoteSchema(), json_body())
        return self.response(200, result=logistics.quote_templates(
            [dict(line) for line in body["lines"]], body["province_code"], body["shop_id"]))


class FreightRuleApi(HoutaiModelApi):
    """A region line of a freight template (it belongs to the template's shop)."""

    resource_name = "freight_rule"
    datamodel = SQLAInterface(FreightRule)
    center = "freight"
    list_columns = ["id", "shop_id", "template_id", *FREIGHT_RULE_FIELDS]
    show_columns = list_columns
    add_columns = ["template_id", *FREIGHT_RULE_FIELDS]
    edit_columns = FREIGHT_RULE_FIELDS
    search_columns = ["shop_id", "template_id"]
    order_columns = ["id", "template_id"]
    base_order = ("id", "asc")

    def pre_add(self, item):
        logistics.check_freight_rule(item)

    def pre_update(self, item):
        logistics.check_freight_rule(item)


BASIS_LABELS = {"piece": _l("By piece"), "weight": _l("By weight")}


class FreightTemplateView(HoutaiModelView):
    datamodel = SQLAInterface(FreightTemplate)
    center = "freight"
    list_title = _l("Freight templates")
    label_columns = LABELS
    list_columns = ["name", "shop", "basis", "free_over_amount", "free_over_pieces",
                    "remote_surcharge", "is_default", "enabled"]
    show_columns = ["shop", *TEMPLATE_FIELDS, "created_at"]
    add_columns = ["shop", *TEMPLATE_FIELDS]
    edit_columns = TEMPLATE_FIELDS
    search_columns = ["name", "shop", "basis", "is_default", "enabled"]
    formatters_columns = {"basis": lambda b: BASIS_LABELS.get(b, b),
                          "remote_regions": _codes}
    add_form_extra_fields = {
        "remote_regions": LinesField(_l("Remote provinces"),
                                     description=_l("One six-digit code per line")),
        "free_over_pieces": IntegerField(_l("Free over pieces"), validators=[Optional()]),
        "is_default": BooleanField(_l("Shop default")),
        **ENABLED_FIELD,
    }
    edit_form_extra_fields = add_form_extra_fields

    def pre_add(self, item):
        super().pre_add(item)
        form_rule(logistics.check_template, item)

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(logistics.check_template, item)

    def pre_delete(self, item):
        form_rule(logistics.check_template_delete, item)


class FreightRuleView(HoutaiModelView):
    datamodel = SQLAInterface(FreightRule)
    center = "freight"
    list_title = _l("Freight template lines")
    label_columns = LABELS
    list_columns = ["template", "regions", "first_units", "first_fee", "step_units", "step_fee"]
    show_columns = ["template", *FREIGHT_RULE_FIELDS]
    add_columns = ["template", *FREIGHT_RULE_FIELDS]
    edit_columns = FREIGHT_RULE_FIELDS
    search_columns = ["template"]
    formatters_columns = {"regions": _codes}
    add_form_extra_fields = REGION_FIELD
    edit_form_extra_fields = REGION_FIELD

    def pre_add(self, item):
        with db.session.no_autoflush:      # the line belongs to its template's shop
            if item.template is not None:
                item.template_id = item.template.id
                item.shop_id = item.template.shop_id
                item.shop = item.template.shop
            super().pre_add(item)
            form_rule(logistics.check_freight_rule, item)

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(logistics.check_freight_rule, item)


# -- the report ----------------------------------------------------------------------------------

class FreightReportApi(OpenApiErrorsMixin, BaseApi):
    """Freight buyers paid against the carriers' real cost (the viewer's shop only)."""

    resource_name = "freight_report"
    center = "logistics"
    openapi_spec_tag = "Logistics"
    allow_browser_login = True

    @api_action("/", "get", methods=("GET",))
    def get(self):
        """Shipments shipped from `from` to `to` (business days, inclusive; default the last
        30 days): per carrier and per province, freight paid, real cost, difference
        ---
        get:
          parameters:
          - {in: query, name: from, schema: {type: string, format: date}}
          - {in: query, name: to, schema: {type: string, format: date}}
          responses:
            200: {description: '{"result": {"from", "to", "carriers": [{"carrier_id", "code",
              "name", "shipments", "uncosted", "freight", "cost", "difference"}],
              "provinces": [{"province_code", ...}], "total": {...}}}'}
            422: {description: 'A bad date (errors.from, errors.to)'}
        """
        return self.response(200, result=logistics.freight_report(
            request.args.get("from"), request.args.get("to")))
