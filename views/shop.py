"""店铺管理 screens and REST resource."""
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from marshmallow.validate import Range
from wtforms.validators import NumberRange

from models.shop import STATUS_LABELS, Shop
from views.base import HoutaiModelApi, HoutaiModelView

SHOP_LABELS = {
    "code": _l("Code"), "name": _l("Name"), "status": _l("Status"),
    "commission_rate": _l("Commission rate"), "settlement_account": _l("Settlement account"),
    "contact_phone": _l("Contact phone"), "created_at": _l("Created at"),
}


class ShopView(HoutaiModelView):
    datamodel = SQLAInterface(Shop)
    center = "shop"
    list_title = _l("Shops")
    show_title = _l("Shop")
    add_title = _l("Add shop")
    edit_title = _l("Edit shop")
    label_columns = SHOP_LABELS
    list_columns = ["code", "name", "status", "commission_rate", "created_at"]
    show_columns = ["code", "name", "status", "commission_rate", "settlement_account",
                    "contact_phone", "created_at"]
    add_columns = ["code", "name", "status", "commission_rate", "settlement_account",
                   "contact_phone"]
    edit_columns = add_columns
    search_columns = ["code", "name", "status"]
    order_columns = ["code", "name", "status", "created_at"]
    validators_columns = {"commission_rate": [NumberRange(min=0, max=1)]}
    formatters_columns = {"status": lambda status: STATUS_LABELS.get(status, status)}


class ShopApi(HoutaiModelApi):
    resource_name = "shop"
    datamodel = SQLAInterface(Shop)
    center = "shop"
    list_columns = ["id", "code", "name", "status", "commission_rate", "created_at"]
    show_columns = ["id", "code", "name", "status", "commission_rate", "settlement_account",
                    "contact_phone", "created_at", "updated_at"]
    add_columns = ["code", "name", "status", "commission_rate", "settlement_account",
                   "contact_phone"]
    edit_columns = add_columns
    search_columns = ["code", "name", "status"]
    order_columns = ["id", "code", "name", "status", "created_at"]
    validators_columns = {"commission_rate": Range(min=0, max=1)}
