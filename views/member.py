"""会员中心 (basic) screens and REST resources; phone numbers and addresses masked for
merchants and customer service, revealed one member at a time (audited)."""
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l

from app.extensions import db
from models.member import Member, MemberAddress, MemberLevel, PointsLedger
from services import member, points  # noqa: F401  (points: its subscribers and expiry task)
from services import risk
from views.base import HoutaiModelApi, HoutaiModelView, ReadOnlyModelApi, api_action, form_rule
from views.risk import CreditScoreView
from views.schema import ReasonSchema, json_body, load_or_422

MEMBER_COLUMNS = ["id", "account", "name", "phone", "status", "level_id", "growth",
                  "created_at"]
ADDRESS_COLUMNS = ["id", "member_id", "recipient", "phone", "province_code", "city_code",
                   "district_code", "detail", "is_default"]
MASKS = {"phone": member.mask_phone, "detail": member.mask_text, "recipient": member.mask_name,
         "name": member.mask_name}


def _masked(value, field):
    return MASKS[field](value) if member.masks_personal_data() else value


def masking_formatters(columns) -> dict:
    """Screen formatters that mask personal data for the viewers who must not see it."""
    return {c: (lambda value, c=c: _masked(value, c)) for c in columns if c in MASKS}


def mask_rows(rows: list[dict]) -> None:
    if member.masks_personal_data():
        for row in rows:
            for field, mask in MASKS.items():
                if field in row:
                    row[field] = mask(row[field])


class MaskingApiMixin:
    """Masks the answers of get and list (FAB's pre_get hooks)."""

    def pre_get(self, data):
        super().pre_get(data)
        mask_rows([data["result"]])

    def pre_get_list(self, data):
        super().pre_get_list(data)
        mask_rows(data["result"])


class MemberAddressView(HoutaiModelView):
    datamodel = SQLAInterface(MemberAddress)
    center = "member"
    list_title = _l("Shipping addresses")
    label_columns = {"member": _l("Member"), "recipient": _l("Recipient"), "phone": _l("Phone"),
                     "province_code": _l("Province"), "city_code": _l("City"),
                     "district_code": _l("District"), "detail": _l("Address"),
                     "is_default": _l("Default")}
    list_columns = ["member", "recipient", "phone", "district_code", "detail", "is_default"]
    show_columns = ["member", "recipient", "phone", "province_code", "city_code",
                    "district_code", "detail", "is_default"]
    add_columns = show_columns
    edit_columns = show_columns
    search_columns = ["member", "district_code"]
    formatters_columns = masking_formatters(show_columns)

    def pre_add(self, item):
        _screen_rule(member.check_address, item)
        db.session.add(item)
        db.session.flush()
        member.make_default(item)

    def pre_update(self, item):
        _screen_rule(member.check_address, item)
        member.make_default(item)


def _screen_rule(rule, item):
    form_rule(rule, item)


class MemberView(HoutaiModelView):
    datamodel = SQLAInterface(Member)
    center = "member"
    list_title = _l("Members")
    label_columns = {"account": _l("Account"), "name": _l("Name"), "phone": _l("Phone"),
                     "status": _l("Status"), "level": _l("Level"), "growth": _l("Growth"),
                     "created_at": _l("Created at")}
    list_columns = ["account", "name", "phone", "status", "level", "growth", "created_at"]
    show_columns = list_columns
    add_columns = ["account", "name", "phone", "status"]
    edit_columns = add_columns
    search_columns = ["account", "status"]
    formatters_columns = masking_formatters(show_columns)
    related_views = [MemberAddressView, CreditScoreView]   # the credit score and its factors

    def pre_add(self, item):
        _screen_rule(member.check_member, item)

    def pre_update(self, item):
        _screen_rule(member.check_member, item)


class MemberApi(MaskingApiMixin, HoutaiModelApi):
    resource_name = "member"
    datamodel = SQLAInterface(Member)
    center = "member"
    list_columns = MEMBER_COLUMNS
    show_columns = MEMBER_COLUMNS
    add_columns = ["account", "name", "phone", "status"]
    edit_columns = add_columns
    search_columns = ["account", "name", "status"]
    order_columns = ["id", "account", "created_at"]

    def pre_get(self, data):
        """The member with "credit_score" (0–1000) and "credit_factors" (risk control)."""
        super().pre_get(data)
        data["result"].update(risk.credit_of(data["result"].get("id")))

    def pre_add(self, item):
        member.check_member(item)

    def pre_update(self, item):
        member.check_member(item)

    @api_action("/<int:pk>/reveal", "reveal")
    def reveal(self, pk):
        """A member's phone and addresses unmasked; recorded in the audit log with the reason
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reason: {type: string}}, required: [reason]}
          responses:
            200: {description: The member with its addresses, unmasked}
        """
        body = load_or_422(ReasonSchema(), json_body())
        found = member.reveal(pk, body["reason"])
        db.session.commit()
        return self.response(200, result={
            **{c: getattr(found, c) for c in ("id", "account", "name", "phone", "status")},
            "addresses": [{c: getattr(a, c) for c in ADDRESS_COLUMNS} for a in found.addresses]})




class MemberAddressApi(MaskingApiMixin, HoutaiModelApi):
    resource_name = "member_address"
    datamodel = SQLAInterface(MemberAddress)
    center = "member"
    list_columns = ADDRESS_COLUMNS
    show_columns = ADDRESS_COLUMNS
    add_columns = ["member_id", "recipient", "phone", "province_code", "city_code",
                   "district_code", "detail", "is_default"]
    edit_columns = add_columns
    search_columns = ["member_id", "district_code", "is_default"]
    order_columns = ["id"]

    def pre_add(self, item):
        member.check_address(item)
        db.session.add(item)
        db.session.flush()
        member.make_default(item)

    def pre_update(self, item):
        member.check_address(item)
        member.make_default(item)


class PointsLedgerApi(ReadOnlyModelApi):
    """积分流水: every change of a member's points; the latest row's `balance_after` is the
    balance."""

    resource_name = "points_ledger"
    datamodel = SQLAInterface(PointsLedger)
    center = "member"
    list_columns = ["id", "member_id", "delta", "reason", "reference", "remaining",
                    "expires_at", "balance_after", "created_at"]
    show_columns = list_columns
    search_columns = ["member_id", "reason", "reference", "created_at"]
    base_order = ("id", "desc")


LEVEL_COLUMNS = ["name", "growth_threshold", "discount_percent", "free_shipping_threshold",
                 "points_multiplier"]


class RelevelOnSave:
    """Levels changed: every member is put at the level their growth reached (a deleted
    level's members first lose it)."""

    def post_add(self, item):
        member.relevel()
        db.session.commit()

    def post_update(self, item):
        self.post_add(item)

    def pre_delete(self, item):
        member.detach_level(item.id)

    def post_delete(self, item):
        self.post_add(item)


class MemberLevelApi(RelevelOnSave, HoutaiModelApi):
    """Member levels: the growth that reaches each, and its benefits."""

    resource_name = "member_level"
    datamodel = SQLAInterface(MemberLevel)
    center = "member_level"
    list_columns = show_columns = ["id", *LEVEL_COLUMNS]
    add_columns = edit_columns = LEVEL_COLUMNS
    order_columns = ["id", "growth_threshold"]
    base_order = ("growth_threshold", "asc")

    def pre_add(self, item):
        member.check_level(item)

    def pre_update(self, item):
        member.check_level(item)


class MemberLevelView(RelevelOnSave, HoutaiModelView):
    datamodel = SQLAInterface(MemberLevel)
    center = "member_level"
    list_title = _l("Member levels")
    label_columns = {"name": _l("Name"), "growth_threshold": _l("Growth threshold"),
                     "discount_percent": _l("Member discount (%)"),
                     "free_shipping_threshold": _l("Free shipping from"),
                     "points_multiplier": _l("Points multiplier")}
    list_columns = show_columns = add_columns = edit_columns = LEVEL_COLUMNS
    base_order = ("growth_threshold", "asc")

    def pre_add(self, item):
        super().pre_add(item)
        _screen_rule(member.check_level, item)

    def pre_update(self, item):
        super().pre_update(item)
        _screen_rule(member.check_level, item)
