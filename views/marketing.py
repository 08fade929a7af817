"""营销中心: coupons, promotions and zones (REST and screens), the members' coupon wallets,
batch issues, usage, and the pricing preview screen. Merchants manage their own shop's
coupons and promotions (merchant-funded); platform staff manage every one, platform ones (no
shop) included."""
from flask import request
from flask_appbuilder import BaseView
from flask_appbuilder.baseviews import expose
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import has_access
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.extensions import db
from models.marketing import (Coupon, CouponIssue, MemberCoupon, Promotion, PromotionUsage,
                              PromotionZone)
from services import marketing, order
from services.actor import current_actor
from services.errors import HoutaiError
from views.base import (HoutaiModelApi, HoutaiModelView, ReadOnlyModelApi, ReadOnlyModelView,
                        api_action)
from views.schema import StrictInteger, json_body, load_or_422

COUPON_FIELDS = ["name", "kind", "amount", "percent_off", "cap", "threshold", "scope",
                 "scope_ids", "starts_at", "ends_at", "total_quantity", "per_member_limit",
                 "stackable", "claimable", "code", "enabled"]


class ClaimSchema(Schema):
    member_id = StrictInteger(required=True)


class IssueSchema(Schema):
    member_ids = fields.List(StrictInteger(), required=True,
                             validate=validate.Length(min=1, max=marketing.MAX_ISSUE_MEMBERS))


class CouponApi(HoutaiModelApi):
    resource_name = "coupon"
    datamodel = SQLAInterface(Coupon)
    center = "marketing"
    include_route_methods = {"get", "get_list", "info", "post", "put", "delete", "claim",
                             "issue"}
    list_columns = ["id", "shop_id", *COUPON_FIELDS, "claimed", "used", "created_at"]
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
                                          "member_id": granted.member_id, "code": granted.code,
                                          "status": granted.status})

    @api_action("/<int:pk>/issue", "issue")
    def issue(self, pk):
        """Issue the coupon to many members in the background (a batch job)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {member_ids: {type: array,
                         items: {type: integer}}}, required: [member_ids]}
          responses:
            202: {description: 'The batch: {"result": {"id", "status": "queued"}}; follow it
              at /api/v1/coupon_issue/<id> (issued, refused by reason)'}
        """
        body = load_or_422(IssueSchema(), json_body())
        batch = marketing.start_issue(pk, body["member_ids"], current_actor().name)
        db.session.commit()
        return self.response(202, result={"id": batch.id, "coupon_id": batch.coupon_id,
                                          "members": len(batch.member_ids),
                                          "status": batch.status})


class MemberCouponApi(ReadOnlyModelApi):
    """The members' coupon wallets."""

    resource_name = "member_coupon"
    datamodel = SQLAInterface(MemberCoupon)
    center = "marketing"
    list_columns = ["id", "coupon_id", "member_id", "shop_id", "code", "status", "source",
                    "trade_id", "order_id", "amount", "issue_id", "granted_at", "used_at"]
    show_columns = list_columns
    search_columns = ["coupon_id", "member_id", "status", "order_id", "trade_id", "code"]
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


PROMOTION_FIELDS = ["name", "kind", "rules", "scope", "scope_ids", "zone_id", "starts_at",
                    "ends_at", "priority", "exclusive", "cap", "per_member_limit", "quantity",
                    "budget", "funded_by", "enabled"]
PROMOTION_LABELS = {"shop": _l("Shop"), "name": _l("Name"), "kind": _l("Kind"),
                    "rules": _l("Rules"), "scope": _l("Scope"), "scope_ids": _l("Scope ids"),
                    "zone": _l("Zone"), "starts_at": _l("Starts at"), "ends_at": _l("Ends at"),
                    "priority": _l("Priority"), "exclusive": _l("Exclusive"), "cap": _l("Cap"),
                    "per_member_limit": _l("Per member"), "quantity": _l("Quantity"),
                    "sold": _l("Sold"), "budget": _l("Budget"), "spent": _l("Spent"),
                    "funded_by": _l("Funded by"), "enabled": _l("Enabled")}


class PromotionApi(HoutaiModelApi):
    """Promotions: special prices, flash sales, spend tiers (满减) and multi-buys (满N件)."""

    resource_name = "promotion"
    datamodel = SQLAInterface(Promotion)
    center = "marketing"
    list_columns = ["id", "shop_id", *PROMOTION_FIELDS, "sold", "spent", "created_at"]
    show_columns = list_columns
    add_columns = ["shop_id", *PROMOTION_FIELDS]
    edit_columns = PROMOTION_FIELDS
    search_columns = ["shop_id", "name", "kind", "zone_id", "enabled", "starts_at", "ends_at",
                      "funded_by"]
    order_columns = ["id", "starts_at", "ends_at", "priority"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        marketing.check_promotion(item)

    def pre_update(self, item):
        marketing.check_promotion(item)


class PromotionView(HoutaiModelView):
    datamodel = SQLAInterface(Promotion)
    center = "marketing"
    list_title = _l("Promotions")
    label_columns = PROMOTION_LABELS
    list_columns = ["name", "shop", "kind", "zone", "starts_at", "ends_at", "sold", "spent",
                    "budget", "funded_by", "enabled"]
    show_columns = ["shop", *[c if c != "zone_id" else "zone" for c in PROMOTION_FIELDS],
                    "sold", "spent"]
    add_columns = ["shop", *[c if c != "zone_id" else "zone" for c in PROMOTION_FIELDS]]
    edit_columns = [c if c != "zone_id" else "zone" for c in PROMOTION_FIELDS]
    search_columns = ["name", "shop", "kind", "enabled"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        super().pre_add(item)
        marketing.check_promotion(item)

    def pre_update(self, item):
        super().pre_update(item)
        marketing.check_promotion(item)


ZONE_FIELDS = ["name", "kind", "banner_url", "spu_ids", "starts_at", "ends_at", "enabled"]


class PromotionZoneApi(HoutaiModelApi):
    """Promotion zones and special events (专场): curated SPUs with a window and a banner."""

    resource_name = "promotion_zone"
    datamodel = SQLAInterface(PromotionZone)
    center = "marketing"
    list_columns = ["id", "shop_id", *ZONE_FIELDS, "created_at"]
    show_columns = list_columns
    add_columns = ["shop_id", *ZONE_FIELDS]
    edit_columns = ZONE_FIELDS
    search_columns = ["shop_id", "name", "kind", "enabled", "starts_at", "ends_at"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        marketing.check_zone(item)

    def pre_update(self, item):
        marketing.check_zone(item)


class PromotionZoneView(HoutaiModelView):
    datamodel = SQLAInterface(PromotionZone)
    center = "marketing"
    list_title = _l("Promotion zones")
    label_columns = {"shop": _l("Shop"), "name": _l("Name"), "kind": _l("Kind"),
                     "banner_url": _l("Banner"), "spu_ids": _l("SPU ids"),
                     "starts_at": _l("Starts at"), "ends_at": _l("Ends at"),
                     "enabled": _l("Enabled")}
    list_columns = ["name", "shop", "kind", "starts_at", "ends_at", "enabled"]
    show_columns = add_columns = ["shop", *ZONE_FIELDS]
    edit_columns = ZONE_FIELDS
    search_columns = ["name", "shop", "kind", "enabled"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        super().pre_add(item)
        marketing.check_zone(item)

    def pre_update(self, item):
        super().pre_update(item)
        marketing.check_zone(item)


USAGE_COLUMNS = ["id", "promotion_id", "coupon_id", "member_id", "trade_id", "order_id",
                 "shop_id", "amount", "quantity", "funded_by", "returned", "created_at"]


class PromotionUsageApi(ReadOnlyModelApi):
    """What each order took of each promotion and coupon (returned on cancel or refund)."""

    resource_name = "promotion_usage"
    datamodel = SQLAInterface(PromotionUsage)
    center = "marketing"
    list_columns = show_columns = USAGE_COLUMNS
    search_columns = ["promotion_id", "coupon_id", "member_id", "trade_id", "order_id",
                      "returned", "created_at"]
    base_order = ("id", "desc")


class PromotionUsageView(ReadOnlyModelView):
    datamodel = SQLAInterface(PromotionUsage)
    center = "marketing"
    list_title = _l("Promotion usage")
    label_columns = {"promotion_id": _l("Promotion"), "coupon_id": _l("Coupon"),
                     "member_id": _l("Member"), "trade_id": _l("Trade"),
                     "order_id": _l("Order"), "amount": _l("Amount"),
                     "quantity": _l("Quantity"), "funded_by": _l("Funded by"),
                     "returned": _l("Returned"), "created_at": _l("Created at")}
    list_columns = ["promotion_id", "coupon_id", "member_id", "order_id", "amount", "quantity",
                    "funded_by", "returned", "created_at"]
    show_columns = list_columns
    search_columns = ["returned", "funded_by", "created_at"]
    base_order = ("id", "desc")


class CouponIssueApi(ReadOnlyModelApi):
    """Batch issues of coupons and how they went."""

    resource_name = "coupon_issue"
    datamodel = SQLAInterface(CouponIssue)
    center = "marketing"
    list_columns = ["id", "coupon_id", "shop_id", "status", "issued", "refused", "created_by",
                    "created_at", "finished_at"]
    show_columns = [*list_columns, "member_ids"]
    search_columns = ["coupon_id", "status", "created_at"]
    base_order = ("id", "desc")


class PreviewForm:
    """The preview screen's fields, read from the posted form."""

    @staticmethod
    def body(form) -> dict:
        lines = []
        for text in (form.get("lines") or "").splitlines():
            parts = text.replace("×", "x").replace("*", "x").split("x")
            if text.strip():
                try:
                    lines.append({"sku_id": int(parts[0]), "quantity": int(parts[1])})
                except (ValueError, IndexError):
                    lines.append({"sku_id": text.strip(), "quantity": None})
        codes = [c.strip() for c in (form.get("coupon_codes") or "").split(",") if c.strip()]
        points = (form.get("points") or "0").strip()
        member = (form.get("member_id") or "").strip()
        return {"member_id": int(member) if member.isdigit() else member, "lines": lines,
                "coupon_codes": codes, "points": int(points) if points.isdigit() else points}


class PricingPreviewView(BaseView):
    """Marketing staff try a cart against the live rules and read the explanation."""

    route_base = "/pricingpreview"
    default_view = "preview"
    center = "pricing_preview"

    @expose("/", methods=["GET", "POST"])
    @has_access
    def preview(self):
        body, result, errors = None, None, None
        if request.method == "POST":
            body = PreviewForm.body(request.form)
            try:
                result = order.preview(body)
            except HoutaiError as err:
                errors = err.errors or {"": [err.message]}
            finally:
                db.session.rollback()
        return self.render_template("houtai/pricing_preview.html", form=request.form,
                                    result=result, errors=errors, title=_l("Pricing preview"),
                                    appbuilder=self.appbuilder)
