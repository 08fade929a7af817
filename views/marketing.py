"""营销中心 coupons (REST and screens) and the members' coupon wallet (read). Merchants manage
their own shop's coupons; platform staff manage every coupon, platform ones (no shop)
included."""
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from marshmallow import Schema

from app.extensions import db
from models.marketing import Coupon, MemberCoupon
from services import marketing
from views.base import (HoutaiModelApi, HoutaiModelView, ReadOnlyModelApi, ReadOnlyModelView,
                        api_action)
from views.schema import StrictInteger, json_body, load_or_422

COUPON_FIELDS = ["name", "kind", "amount", "percent_off", "cap", "threshold", "scope",
                 "scope_ids", "starts_at", "ends_at", "total_quantity", "per_member_limit",
                 "stackable", "claimable", "code", "enabled"]


class ClaimSchema(Schema):
    member_id = StrictInteger(required=True)


class CouponApi(HoutaiModelApi):
    resource_name = "coupon"
    datamodel = SQLAInterface(Coupon)
    center = "marketing"
    include_route_methods = {"get", "get_list", "info", "post", "put", "delete", "claim"}
    list_columns = ["id", "shop_id", *COUPON_FIELDS, "claimed", "created_at"]
    show_columns = list_columns
    add_columns = ["shop_id", *COUPON_FIELDS]
    edit_columns = COUPON_FIELDS
    search_columns = ["shop_id", "name", "kind", "scope", "code", "enabled", "starts_at",
                      "ends_at"]
    order_columns = ["id", "starts_at", "ends_at"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        marketing.check_coupon(item)

    def pre_update(self, item):
        marketing.check_coupon(item)

    @api_action("/<int:pk>/claim", "claim")
    def claim(self, pk):
        """A member claims the coupon into their wallet
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {member_id: {type: integer}},
                         required: [member_id]}
          responses:
            201: {description: 'The wallet entry: {"result": {"id", "coupon_id", "member_id",
              "status": "granted"}}'}
            409: {description: 'errors.coupon: sold_out | member_limit | not_claimable'}
        """
        body = load_or_422(ClaimSchema(), json_body())
        granted = marketing.claim(pk, body["member_id"])
        db.session.commit()
        return self.response(201, result={"id": granted.id, "coupon_id": granted.coupon_id,
                                          "member_id": granted.member_id,
                                          "status": granted.status})


class MemberCouponApi(ReadOnlyModelApi):
    """The members' coupon wallets."""

    resource_name = "member_coupon"
    datamodel = SQLAInterface(MemberCoupon)
    center = "marketing"
    list_columns = ["id", "coupon_id", "member_id", "shop_id", "status", "source", "order_id",
                    "granted_at", "used_at"]
    show_columns = list_columns
    search_columns = ["coupon_id", "member_id", "status", "order_id"]
    base_order = ("id", "desc")


class CouponView(HoutaiModelView):
    datamodel = SQLAInterface(Coupon)
    center = "marketing"
    list_title = _l("Coupons")
    label_columns = {"shop": _l("Shop"), "name": _l("Name"), "kind": _l("Kind"),
                     "amount": _l("Amount"), "percent_off": _l("Percent off"), "cap": _l("Cap"),
                     "threshold": _l("Threshold"), "scope": _l("Scope"),
                     "scope_ids": _l("Scope ids"), "starts_at": _l("Starts at"),
                     "ends_at": _l("Ends at"), "total_quantity": _l("Total quantity"),
                     "claimed": _l("Claimed"), "per_member_limit": _l("Per member"),
                     "stackable": _l("Stackable"), "claimable": _l("Claimable by members"),
                     "code": _l("Public code"), "enabled": _l("Enabled")}
    list_columns = ["name", "shop", "kind", "amount", "threshold", "starts_at", "ends_at",
                    "claimed", "total_quantity", "enabled"]
    show_columns = ["shop", *COUPON_FIELDS, "claimed"]
    add_columns = ["shop", *COUPON_FIELDS]
    edit_columns = COUPON_FIELDS
    search_columns = ["name", "shop", "kind", "enabled"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        super().pre_add(item)
        marketing.check_coupon(item)

    def pre_update(self, item):
        super().pre_update(item)
        marketing.check_coupon(item)


class MemberCouponView(ReadOnlyModelView):
    datamodel = SQLAInterface(MemberCoupon)
    center = "marketing"
    list_title = _l("Coupon wallets")
    label_columns = {"coupon": _l("Coupon"), "member": _l("Member"), "status": _l("Status"),
                     "source": _l("Source"), "granted_at": _l("Granted at"),
                     "used_at": _l("Used at")}
    list_columns = ["coupon", "member", "status", "source", "granted_at", "used_at"]
    show_columns = list_columns
    search_columns = ["coupon", "status"]
    base_order = ("id", "desc")
