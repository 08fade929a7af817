"""库存 screens and REST resources: warehouses, stock (read-only but for /adjust), the ledger."""
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate
from wtforms import BooleanField, IntegerField
from wtforms.validators import Optional

from models.inventory import Stock, StockLedger, Warehouse
from services import inventory
from views.base import (HoutaiModelApi, HoutaiModelView, ReadOnlyModelApi, ReadOnlyModelView,
                        api_action, form_rule)
from views.forms import LinesField
from views.schema import StrictInteger, json_body, load_or_422

WAREHOUSE_LABELS = {"code": _l("Code"), "name": _l("Name"), "region": _l("Region"),
                    "outer_id": _l("Outer id (ERP)"), "enabled": _l("Enabled"),
                    "shop": _l("Shop"), "service_regions": _l("Also serves (province codes)"),
                    "priority": _l("Dispatch priority"),
                    "cross_border": _l("Bonded (cross-border)")}


class WarehouseView(HoutaiModelView):
    datamodel = SQLAInterface(Warehouse)
    center = "inventory"
    list_title = _l("Warehouses")
    label_columns = WAREHOUSE_LABELS
    list_columns = ["code", "name", "region", "priority", "shop", "cross_border", "enabled"]
    show_columns = ["code", "name", "region", "service_regions", "priority", "outer_id", "shop",
                    "cross_border", "enabled", "created_at"]
    add_columns = ["shop", "code", "name", "region", "service_regions", "priority", "outer_id",
                   "cross_border", "enabled"]
    edit_columns = ["code", "name", "region", "service_regions", "priority", "outer_id",
                    "cross_border", "enabled"]
    search_columns = ["code", "name", "region", "shop", "enabled"]
    formatters_columns = {"service_regions": lambda codes: ", ".join(codes or [])}
    add_form_extra_fields = {
        "service_regions": LinesField(_l("Also serves (province codes)"),
                                      description=_l("One six-digit code per line")),
        "priority": IntegerField(_l("Dispatch priority"), default=100, validators=[Optional()],
                                 description=_l("Lower first among warehouses that serve the "
                                                "buyer equally well")),
        # unticked means an ordinary warehouse (a required checkbox could never be unticked)
        "cross_border": BooleanField(_l("Bonded (cross-border)"), default=False,
                                     description=_l("Its shipments need a cleared customs "
                                                    "declaration")),
    }
    edit_form_extra_fields = add_form_extra_fields

    def pre_add(self, item):
        super().pre_add(item)
        form_rule(inventory.check_warehouse, item)

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(inventory.check_warehouse, item)


class WarehouseApi(HoutaiModelApi):
    resource_name = "warehouse"
    datamodel = SQLAInterface(Warehouse)
    center = "inventory"
    list_columns = ["id", "shop_id", "code", "name", "region", "service_regions", "priority",
                    "outer_id", "cross_border", "enabled"]
    show_columns = list_columns + ["created_at", "updated_at"]
    add_columns = ["shop_id", "code", "name", "region", "service_regions", "priority",
                   "outer_id", "cross_border", "enabled"]
    edit_columns = ["code", "name", "region", "service_regions", "priority", "outer_id",
                    "cross_border", "enabled"]
    search_columns = ["shop_id", "code", "name", "region", "outer_id", "enabled"]
    order_columns = ["id", "code", "name", "priority"]

    def pre_add(self, item):
        inventory.check_warehouse(item)

    def pre_update(self, item):
        inventory.check_warehouse(item)


STOCK_COLUMNS = ["id", "shop_id", "sku_id", "warehouse_id", "on_hand", "reserved", "available",
                 "updated_at"]


class StockView(ReadOnlyModelView):
    datamodel = SQLAInterface(Stock)
    center = "inventory"
    list_title = _l("Stock")
    label_columns = {"sku": _l("SKU"), "warehouse": _l("Warehouse"), "on_hand": _l("On hand"),
                     "reserved": _l("Reserved"), "available": _l("Available"),
                     "shop": _l("Shop"), "updated_at": _l("Updated at")}
    list_columns = ["sku", "warehouse", "on_hand", "reserved", "available", "updated_at"]
    show_columns = list_columns
    search_columns = ["sku", "warehouse", "on_hand", "reserved"]


class AdjustSchema(Schema):
    sku_id = StrictInteger(required=True)
    warehouse_id = StrictInteger(required=True)
    delta = StrictInteger(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=255))


class StockApi(ReadOnlyModelApi):
    resource_name = "stock"
    datamodel = SQLAInterface(Stock)
    center = "inventory"
    include_route_methods = {"get", "get_list", "info", "adjust"}
    list_columns = STOCK_COLUMNS
    show_columns = STOCK_COLUMNS
    search_columns = ["shop_id", "sku_id", "warehouse_id", "on_hand", "reserved"]
    order_columns = ["id", "on_hand", "reserved", "updated_at"]

    @api_action("/adjust", "adjust")
    def adjust(self):
        """Count stock in (delta > 0) or out (delta < 0), with a reason; kept in the ledger
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    sku_id: {type: integer}
                    warehouse_id: {type: integer}
                    delta: {type: integer}
                    reason: {type: string}
                  required: [sku_id, warehouse_id, delta, reason]
          responses:
            200: {description: The stock row after the change}
        """
        body = load_or_422(AdjustSchema(), json_body())
        return self.answer_saved(inventory.adjust(body["sku_id"], body["warehouse_id"],
                                                  body["delta"], body["reason"]))


LEDGER_COLUMNS = ["id", "shop_id", "stock_id", "sku_id", "warehouse_id", "reason", "reference",
                  "note", "on_hand_before", "on_hand_after", "reserved_before", "reserved_after",
                  "actor", "created_at"]


class StockLedgerView(ReadOnlyModelView):
    datamodel = SQLAInterface(StockLedger)
    center = "inventory"
    list_title = _l("Stock ledger")
    label_columns = {"reason": _l("Reason"), "reference": _l("Reference"), "note": _l("Note"),
                     "on_hand_before": _l("On hand before"), "on_hand_after": _l("On hand after"),
                     "reserved_before": _l("Reserved before"),
                     "reserved_after": _l("Reserved after"), "actor": _l("Who"),
                     "created_at": _l("When"), "sku_id": _l("SKU"),
                     "warehouse_id": _l("Warehouse")}
    list_columns = ["created_at", "sku_id", "warehouse_id", "reason", "on_hand_before",
                    "on_hand_after", "reserved_before", "reserved_after", "reference", "actor"]
    show_columns = LEDGER_COLUMNS
    search_columns = ["sku_id", "warehouse_id", "reason", "reference", "actor", "created_at"]
    base_order = ("id", "desc")


class StockLedgerApi(ReadOnlyModelApi):
    resource_name = "stock_ledger"
    datamodel = SQLAInterface(StockLedger)
    center = "inventory"
    list_columns = LEDGER_COLUMNS
    show_columns = LEDGER_COLUMNS
    search_columns = ["sku_id", "warehouse_id", "reason", "reference", "shop_id"]
    order_columns = ["id", "created_at"]
    base_order = ("id", "desc")
