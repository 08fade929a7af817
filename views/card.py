"""会员中心 cards (卡券) REST and screens: stored-value and gift cards, issued, topped up and bound
through the card service (never typed in: a balance only changes with its ledger), and the
ledger (read). Cards are platform data: staff and the storefront, never a merchant."""
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.extensions import db
from models.card import CARD_KINDS, Card, CardLedger
from services import card
from views.base import (HoutaiModelApi, ReadOnlyModelApi, ReadOnlyModelView, api_action,
                        api_errors)
from views.schema import MoneyField, StrictInteger, json_body, load_or_422

CARD_COLUMNS = ["id", "card_no", "kind", "member_id", "balance", "status", "expires_at",
                "created_at"]
LEDGER_COLUMNS = ["id", "card_id", "delta", "reason", "reference", "balance_after",
                  "created_at"]


class IssueSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(CARD_KINDS))
    amount = MoneyField(required=True)
    member_id = StrictInteger(load_default=None, allow_none=True)
    expires_at = fields.DateTime(load_default=None, allow_none=True)


class TopUpSchema(Schema):
    amount = MoneyField(required=True)
    reference = fields.String(required=True, validate=validate.Length(min=1, max=48))


class BindSchema(Schema):
    member_id = StrictInteger(required=True)


def ledger_result(row: CardLedger) -> dict:
    return {"id": row.id, "card_id": row.card_id, "delta": f"{row.delta:.2f}",
            "reason": row.reason, "reference": row.reference,
            "balance_after": f"{row.balance_after:.2f}", "created_at": row.created_at.isoformat()}


class CardApi(HoutaiModelApi):
    """Cards: listed and read; issued (POST), topped up and bound through the card service."""

    resource_name = "card"
    datamodel = SQLAInterface(Card)
    center = "card"
    include_route_methods = {"get", "get_list", "info", "post", "top_up", "bind"}
    list_columns = CARD_COLUMNS
    show_columns = CARD_COLUMNS
    # issuing takes an amount (written to the ledger), not a balance: its own schema
    add_model_schema = IssueSchema()
    add_columns = ["kind", "amount", "member_id", "expires_at"]
    label_columns = {"amount": _l("Amount")}
    search_columns = ["card_no", "kind", "member_id", "status", "expires_at", "created_at"]
    order_columns = ["id", "balance", "created_at", "expires_at"]
    base_order = ("id", "desc")

    @api_errors
    def post_headless(self):
        """Issue a card holding `amount` (a stored-value card names its member)"""
        body = load_or_422(self.add_model_schema, json_body())
        made = card.issue(body["kind"], body["amount"], body["member_id"], body["expires_at"])
        db.session.commit()
        return self.response(201, id=made.id, result=self.show_model_schema.dump(made))

    @api_action("/<int:pk>/top_up", "top_up")
    def top_up(self, pk):
        """Add money to a stored-value card (the same reference again changes nothing more)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties: {amount: {type: string, example: "100.00"},
                               reference: {type: string}}
                  required: [amount, reference]
          responses:
            201: {description: 'The ledger row: {"result": {"id", "card_id", "delta", "reason",
              "reference", "balance_after", "created_at"}}'}
            404: {description: No such card}
            409: {description: 'A gift card (errors.kind), frozen or void (errors.status),
              expired (errors.expires_at), or the reference used for another amount'}
        """
        body = load_or_422(TopUpSchema(), json_body())
        row = card.top_up(pk, body["amount"], body["reference"])
        db.session.commit()
        return self.response(201, result=ledger_result(row))

    @api_action("/<int:pk>/bind", "bind")
    def bind(self, pk):
        """Bind a gift card to the member who redeems it (once)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {member_id: {type: integer}},
                         required: [member_id]}
          responses:
            200: {description: The card, bound}
            404: {description: No such card}
            409: {description: 'Bound to another member (errors.member_id)'}
        """
        body = load_or_422(BindSchema(), json_body())
        bound = card.bind(pk, body["member_id"])
        db.session.commit()
        return self.response(200, result=self.show_model_schema.dump(bound))


class CardLedgerApi(ReadOnlyModelApi):
    resource_name = "card_ledger"
    datamodel = SQLAInterface(CardLedger)
    center = "card"
    list_columns = LEDGER_COLUMNS
    show_columns = LEDGER_COLUMNS
    search_columns = ["card_id", "reason", "reference", "created_at"]
    order_columns = ["id", "created_at"]
    base_order = ("id", "desc")


CARD_KIND_LABELS = {"stored_value": _l("Stored-value card"), "gift": _l("Gift card")}
CARD_STATUS_LABELS = {"active": _l("Active"), "frozen": _l("Frozen"), "void": _l("Void")}
LEDGER_REASON_LABELS = {"issue": _l("Issued"), "top_up": _l("Top-up"), "spend": _l("Spent"),
                        "refund": _l("Refunded"), "void": _l("Voided")}


class CardView(ReadOnlyModelView):
    datamodel = SQLAInterface(Card)
    center = "card"
    list_title = _l("Cards")
    label_columns = {"card_no": _l("Card no."), "kind": _l("Kind"), "member": _l("Member"),
                     "balance": _l("Balance"), "status": _l("Status"),
                     "expires_at": _l("Expires at"), "created_at": _l("Created at")}
    list_columns = ["card_no", "kind", "member", "balance", "status", "expires_at", "created_at"]
    show_columns = list_columns
    search_columns = ["card_no", "kind", "member", "status", "expires_at"]
    formatters_columns = {"kind": lambda k: CARD_KIND_LABELS.get(k, k),
                          "status": lambda s: CARD_STATUS_LABELS.get(s, s)}
    base_order = ("id", "desc")


class CardLedgerView(ReadOnlyModelView):
    datamodel = SQLAInterface(CardLedger)
    center = "card"
    list_title = _l("Card ledger")
    label_columns = {"card": _l("Card"), "delta": _l("Change"), "reason": _l("Reason"),
                     "reference": _l("Reference"), "balance_after": _l("Balance after"),
                     "created_at": _l("Created at")}
    list_columns = ["card", "delta", "reason", "reference", "balance_after", "created_at"]
    show_columns = list_columns
    search_columns = ["card", "reason", "reference", "created_at"]
    formatters_columns = {"reason": lambda r: LEDGER_REASON_LABELS.get(r, r)}
    base_order = ("id", "desc")
