"""财务管理 screens and REST: the journal (read), balances, and the daily reconciliation with its
mismatches to resolve. Finance staff (and Admin) only."""
from flask_appbuilder.api import BaseApi, expose
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.extensions import db
from models.finance import (JournalEntry, JournalLine, ReconciliationItem, ReconciliationRun,
                            Settlement)
from services import finance
from services.actor import current_actor
from views.base import (HoutaiModelApi, ReadOnlyModelApi, ReadOnlyModelView, api_action,
                        api_errors)
from views.openapi import OpenApiErrorsMixin
from views.schema import StrictInteger, json_body, load_or_422

ACCOUNT_FORMAT = {"account": lambda code: f"{code} {finance.ACCOUNTS.get(code, '')}"}


class JournalEntryApi(ReadOnlyModelApi):
    resource_name = "journal_entry"
    datamodel = SQLAInterface(JournalEntry)
    center = "finance"
    list_columns = ["id", "entry_no", "kind", "reference", "memo", "reverses_id",
                    "occurred_at", "created_at"]
    show_columns = list_columns
    search_columns = ["entry_no", "kind", "reference", "occurred_at"]
    order_columns = ["id", "occurred_at"]
    base_order = ("id", "desc")


class JournalLineApi(ReadOnlyModelApi):
    resource_name = "journal_line"
    datamodel = SQLAInterface(JournalLine)
    center = "finance"
    list_columns = ["id", "entry_id", "account", "shop_id", "debit", "credit"]
    show_columns = list_columns
    search_columns = ["entry_id", "account", "shop_id"]
    base_order = ("id", "desc")


class ReconciliationRunApi(ReadOnlyModelApi):
    resource_name = "reconciliation_run"
    datamodel = SQLAInterface(ReconciliationRun)
    center = "finance"
    list_columns = ["id", "day", "status", "checked", "mismatches", "created_at"]
    show_columns = list_columns
    search_columns = ["day", "status"]
    base_order = ("day", "desc")


class ResolutionSchema(Schema):
    resolution = fields.String(required=True, validate=validate.Length(min=1, max=255))


class ReconciliationItemApi(ReadOnlyModelApi):
    resource_name = "reconciliation_item"
    datamodel = SQLAInterface(ReconciliationItem)
    center = "finance"
    include_route_methods = ReadOnlyModelApi.include_route_methods | {"resolve"}
    list_columns = ["id", "run_id", "kind", "reference", "ours", "theirs", "detail",
                    "resolved_at", "resolved_by", "resolution"]
    show_columns = list_columns
    search_columns = ["run_id", "kind", "reference", "resolved_at"]
    base_order = ("id", "desc")

    @api_action("/<int:pk>/resolve", "resolve")
    def resolve(self, pk):
        """Mark a mismatch resolved, saying how
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {resolution: {type: string}},
                         required: [resolution]}
          responses:
            200: {description: The item, resolved}
            409: {description: Already resolved}
        """
        body = load_or_422(ResolutionSchema(), json_body())
        item = finance.resolve(pk, body["resolution"], current_actor().name)
        db.session.commit()
        return self.response(200, result=self.show_model_schema.dump(item))


class FinanceApi(OpenApiErrorsMixin, BaseApi):
    """Balances derived from the journal."""

    resource_name = "finance"
    center = "finance"
    openapi_spec_tag = "Finance"

    @expose("/balances", methods=["GET"])
    @protect()
    def balances(self):
        """Every account's balance (debits − credits), and per shop what it is owed and the
        commission it paid
        ---
        get:
          responses:
            200: {description: 'Balances: {"accounts": [...], "shops": [...]}'}
        """
        return self.response(200, **finance.balances())


class JournalEntryView(ReadOnlyModelView):
    datamodel = SQLAInterface(JournalEntry)
    center = "finance"
    list_title = _l("Journal")
    label_columns = {"entry_no": _l("Entry no."), "kind": _l("Kind"), "reference": _l("Reference"),
                     "memo": _l("Memo"), "occurred_at": _l("Occurred at"),
                     "created_at": _l("Created at")}
    list_columns = ["entry_no", "kind", "reference", "memo", "occurred_at"]
    show_columns = ["entry_no", "kind", "reference", "memo", "occurred_at", "created_at"]
    search_columns = ["entry_no", "kind", "reference", "occurred_at"]
    base_order = ("id", "desc")


class JournalLineView(ReadOnlyModelView):
    datamodel = SQLAInterface(JournalLine)
    center = "finance"
    list_title = _l("Journal lines")
    label_columns = {"entry": _l("Entry"), "account": _l("Account"), "shop": _l("Shop"),
                     "debit": _l("Debit"), "credit": _l("Credit")}
    list_columns = ["entry", "account", "shop", "debit", "credit"]
    show_columns = list_columns
    search_columns = ["account", "shop"]
    formatters_columns = ACCOUNT_FORMAT
    base_order = ("id", "desc")


class ReconciliationRunView(ReadOnlyModelView):
    datamodel = SQLAInterface(ReconciliationRun)
    center = "finance"
    list_title = _l("Reconciliation")
    label_columns = {"day": _l("Day"), "status": _l("Status"), "checked": _l("Checked"),
                     "mismatches": _l("Mismatches"), "created_at": _l("Run at")}
    list_columns = ["day", "status", "checked", "mismatches", "created_at"]
    show_columns = list_columns
    search_columns = ["day", "status"]
    base_order = ("day", "desc")


class ReconciliationItemView(ReadOnlyModelView):
    datamodel = SQLAInterface(ReconciliationItem)
    center = "finance"
    list_title = _l("Mismatches")
    label_columns = {"run": _l("Day"), "kind": _l("Kind"), "reference": _l("Reference"),
                     "ours": _l("Ours"), "theirs": _l("The gateway's"), "detail": _l("Detail"),
                     "resolved_at": _l("Resolved at"), "resolved_by": _l("Resolved by"),
                     "resolution": _l("Resolution")}
    list_columns = ["run", "kind", "reference", "ours", "theirs", "resolved_at"]
    show_columns = ["run", "kind", "reference", "ours", "theirs", "detail", "resolved_at",
                    "resolved_by", "resolution"]
    search_columns = ["kind", "reference", "resolved_at"]
    base_order = ("id", "desc")


class SettlementSchema(Schema):
    shop_id = StrictInteger(required=True)
    period_end = fields.Date(required=True)


class PaySettlementSchema(Schema):
    reference = fields.String(required=True, validate=validate.Length(min=1, max=64))


SETTLEMENT_COLUMNS = ["id", "settlement_no", "shop_id", "period_end", "paid_by_buyers",
                      "platform_discounts", "commission", "refunds", "net", "status",
                      "approved_by", "approved_at", "paid_at", "payment_reference", "created_at"]


class SettlementApi(HoutaiModelApi):
    """Statements per shop: Finance drafts, approves and pays them; merchants read theirs."""

    resource_name = "settlement"
    datamodel = SQLAInterface(Settlement)
    center = "settlement"
    include_route_methods = {"get", "get_list", "info", "post", "approve", "pay"}
    list_columns = SETTLEMENT_COLUMNS
    show_columns = SETTLEMENT_COLUMNS
    add_columns = ["shop_id", "period_end"]
    search_columns = ["settlement_no", "shop_id", "period_end", "status"]
    order_columns = ["id", "period_end", "net"]
    base_order = ("id", "desc")

    @api_errors
    def post_headless(self):
        """Draft the statement of a shop up to a day"""
        body = load_or_422(SettlementSchema(), json_body())
        statement = finance.settle(body["shop_id"], body["period_end"])
        db.session.commit()
        return self.response(201, id=statement.id,
                             result=self.show_model_schema.dump(statement))

    @api_action("/<int:pk>/approve", "approve")
    def approve(self, pk):
        """Approve a draft statement
        ---
        post:
          responses:
            200: {description: The statement, approved}
            409: {description: Not a draft}
        """
        statement = finance.approve_settlement(pk, current_actor().name)
        db.session.commit()
        return self.response(200, result=self.show_model_schema.dump(statement))

    @api_action("/<int:pk>/pay", "pay")
    def pay(self, pk):
        """Record the transfer to the shop (posts it to the journal)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {reference: {type: string}},
                         required: [reference]}
          responses:
            200: {description: The statement, paid}
            409: {description: Not approved}
        """
        body = load_or_422(PaySettlementSchema(), json_body())
        statement = finance.pay_settlement(pk, body["reference"])
        db.session.commit()
        return self.response(200, result=self.show_model_schema.dump(statement))


class SettlementView(ReadOnlyModelView):
    datamodel = SQLAInterface(Settlement)
    center = "settlement"
    list_title = _l("Settlements")
    label_columns = {"settlement_no": _l("Settlement no."), "shop": _l("Shop"),
                     "period_end": _l("Up to"), "paid_by_buyers": _l("Paid by buyers"),
                     "platform_discounts": _l("Platform-funded discounts"),
                     "commission": _l("Commission"), "refunds": _l("Refunds"),
                     "net": _l("Net payable"), "status": _l("Status"),
                     "approved_by": _l("Approved by"), "approved_at": _l("Approved at"),
                     "paid_at": _l("Paid at"), "payment_reference": _l("Transfer reference")}
    list_columns = ["settlement_no", "shop", "period_end", "paid_by_buyers", "commission",
                    "refunds", "net", "status"]
    show_columns = ["settlement_no", "shop", "period_end", "paid_by_buyers",
                    "platform_discounts", "commission", "refunds", "net", "status",
                    "approved_by", "approved_at", "paid_at", "payment_reference"]
    search_columns = ["settlement_no", "shop", "status", "period_end"]
    base_order = ("id", "desc")
