"""风控中心 screens and REST resources: rules, blacklists, the queue of cases, credit scores.
Risk data is platform data: merchants reach none of it (no role of theirs has its centers)."""
from flask import flash, redirect
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate
from wtforms import SelectField

from app.extensions import db
from models.risk import (BLACKLIST_KINDS, RISK_ACTIONS, RISK_EVENTS, RULE_KINDS, Blacklist,
                         CreditScore, RiskDecision, RiskRule)
from services import risk
from services.errors import HoutaiError
from views.base import (HoutaiModelApi, HoutaiModelView, ReadOnlyModelApi, ReadOnlyModelView,
                        api_action, form_rule)
from views.forms import JSONTextAreaField
from views.schema import StrictInteger, json_body, load_or_422

RULE_FIELDS = ["name", "event", "kind", "params", "action", "enabled"]
RULE_LABELS = {"name": _l("Name"), "event": _l("Event"), "kind": _l("Kind"),
               "params": _l("Parameters"), "action": _l("Action"), "enabled": _l("Enabled"),
               "created_at": _l("Created at")}


class OpenCasesFirst(SQLAInterface):
    """Lists of cases: open ones first, then the newest."""

    def apply_order_by(self, query, order_column, order_direction, *args, **kwargs):
        query = super().apply_order_by(query, order_column, order_direction, *args, **kwargs)
        return query.order_by(RiskDecision.id.desc())


class RiskRuleApi(HoutaiModelApi):
    """Rules as data: on `event`, `kind` counts over `params` and decides `action`."""

    resource_name = "risk_rule"
    datamodel = SQLAInterface(RiskRule)
    center = "risk"
    list_columns = ["id", *RULE_FIELDS, "created_at"]
    show_columns = list_columns
    add_columns = edit_columns = RULE_FIELDS
    search_columns = ["name", "event", "kind", "action", "enabled"]
    order_columns = ["id", "name", "event"]
    base_order = ("id", "asc")

    def pre_add(self, item):
        risk.check_rule(item)

    def pre_update(self, item):
        risk.check_rule(item)


class BlacklistApi(HoutaiModelApi):
    """Blacklisted members (id or account), phones, devices, IPs and addresses."""

    resource_name = "blacklist"
    datamodel = SQLAInterface(Blacklist)
    center = "risk"
    list_columns = ["id", "kind", "value", "reason", "created_at"]
    show_columns = list_columns
    add_columns = edit_columns = ["kind", "value", "reason"]
    search_columns = ["kind", "value", "created_at"]
    order_columns = ["id", "kind"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        risk.check_blacklist(item)

    def pre_update(self, item):
        risk.check_blacklist(item)


class ResolveSchema(Schema):
    resolution = fields.String(required=True, validate=validate.OneOf(risk.RESOLUTIONS))
    note = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=255))


DECISION_COLUMNS = ["id", "event", "member_id", "reference", "decision", "fired", "status",
                    "resolution", "resolved_by", "note", "created_at", "resolved_at"]


class RiskDecisionApi(ReadOnlyModelApi):
    """What the engine decided, with the rules that fired and their inputs; open cases wait
    for a person (`resolve`)."""

    resource_name = "risk_decision"
    datamodel = OpenCasesFirst(RiskDecision)
    center = "risk_cases"
    include_route_methods = {"get", "get_list", "info", "resolve"}
    list_columns = show_columns = DECISION_COLUMNS
    search_columns = ["status", "event", "member_id", "decision", "reference", "resolution",
                      "created_at"]
    order_columns = ["id", "created_at", "status"]
    base_order = ("status", "desc")

    @api_action("/<int:pk>/resolve", "resolve")
    def resolve(self, pk):
        """Resolve an open case: release (a held trade ships) or confirm (an unpaid trade is
        cancelled, a paid one stays held; a waiting refund request is rejected)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    resolution: {type: string, enum: [release, confirm]}
                    note: {type: string}
                  required: [resolution]
          responses:
            200: {description: The case, closed}
            409: {description: 'The case is closed already (errors.status)'}
        """
        body = load_or_422(ResolveSchema(), json_body())
        decision = risk.resolve(pk, body["resolution"], body["note"])
        return self.answer_saved(decision)


class RecomputeSchema(Schema):
    member_id = StrictInteger(required=True)


class CreditScoreApi(ReadOnlyModelApi):
    """Members' credit scores (0–1000) with their factors."""

    resource_name = "credit_score"
    datamodel = SQLAInterface(CreditScore)
    center = "risk_cases"
    include_route_methods = {"get", "get_list", "info", "recompute"}
    list_columns = show_columns = ["id", "member_id", "score", "factors", "updated_at"]
    search_columns = ["member_id", "score", "updated_at"]
    order_columns = ["id", "score", "updated_at"]
    base_order = ("score", "asc")

    @api_action("/recompute", "recompute")
    def recompute(self):
        """Compute a member's score now from their history
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {member_id: {type: integer}},
                         required: [member_id]}
          responses:
            200: {description: 'The score: {"result": {"member_id", "score", "factors"}}'}
        """
        body = load_or_422(RecomputeSchema(), json_body())
        return self.answer_saved(risk.credit_score(body["member_id"]))


# -- screens ---------------------------------------------------------------------------------

def _choices(values) -> list[tuple[str, str]]:
    return [(v, v) for v in values]


class RiskRuleView(HoutaiModelView):
    datamodel = SQLAInterface(RiskRule)
    center = "risk"
    list_title = _l("Risk rules")
    label_columns = RULE_LABELS
    list_columns = ["name", "event", "kind", "params", "action", "enabled"]
    show_columns = [*RULE_FIELDS, "created_at"]
    add_columns = edit_columns = RULE_FIELDS
    search_columns = ["name", "event", "kind", "action", "enabled"]
    base_order = ("id", "asc")
    description_columns = {"params": _l("The kind's thresholds and windows as JSON, e.g. "
                                        "{\"key\": \"member\", \"limit\": 5, "
                                        "\"window_minutes\": 10}")}
    add_form_extra_fields = {
        "event": SelectField(_l("Event"), choices=_choices(RISK_EVENTS)),
        "kind": SelectField(_l("Kind"), choices=_choices(RULE_KINDS)),
        "action": SelectField(_l("Action"), choices=_choices(RISK_ACTIONS), default="review"),
        "params": JSONTextAreaField(_l("Parameters"), default={}),
    }
    edit_form_extra_fields = add_form_extra_fields

    def pre_add(self, item):
        super().pre_add(item)
        form_rule(risk.check_rule, item)

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(risk.check_rule, item)


class BlacklistView(HoutaiModelView):
    datamodel = SQLAInterface(Blacklist)
    center = "risk"
    list_title = _l("Blacklists")
    label_columns = {"kind": _l("Kind"), "value": _l("Value"), "reason": _l("Reason"),
                     "created_at": _l("Created at")}
    list_columns = ["kind", "value", "reason", "created_at"]
    show_columns = list_columns
    add_columns = edit_columns = ["kind", "value", "reason"]
    search_columns = ["kind", "value"]
    base_order = ("id", "desc")
    add_form_extra_fields = {"kind": SelectField(_l("Kind"), choices=_choices(BLACKLIST_KINDS))}
    edit_form_extra_fields = add_form_extra_fields

    def pre_add(self, item):
        super().pre_add(item)
        form_rule(risk.check_blacklist, item)

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(risk.check_blacklist, item)


class RiskDecisionView(ReadOnlyModelView):
    """The queue: open cases first; release or confirm them."""

    datamodel = OpenCasesFirst(RiskDecision)
    center = "risk_cases"
    list_title = _l("Risk cases")
    label_columns = {"event": _l("Event"), "member_id": _l("Member"),
                     "reference": _l("Reference"), "decision": _l("Decision"),
                     "fired": _l("Rules fired"), "status": _l("Status"),
                     "resolution": _l("Resolution"), "resolved_by": _l("Resolved by"),
                     "note": _l("Note"), "created_at": _l("Created at"),
                     "resolved_at": _l("Resolved at")}
    list_columns = ["created_at", "event", "member_id", "reference", "decision", "status",
                    "resolution"]
    show_columns = DECISION_COLUMNS[1:]
    search_columns = ["status", "event", "decision", "member_id", "reference"]
    base_order = ("status", "desc")
    formatters_columns = {"fired": lambda fired: "; ".join(
        f"{f.get('name')} → {f.get('action')}" for f in fired or [])}

    def _resolve(self, items, resolution):
        items = items if isinstance(items, list) else [items]
        try:
            for item in items:
                risk.resolve(item.id, resolution, "Resolved in the case queue")
            db.session.commit()
            flash(str(_l("Done")), "success")
        except HoutaiError as err:
            db.session.rollback()
            flash(err.message, "danger")
        return redirect(self.get_redirect())

    @action("release", _l("Release"), _l("Release the selected cases?"), "fa-unlock")
    def release(self, items):
        return self._resolve(items, "release")

    @action("confirm", _l("Confirm"), _l("Confirm the selected cases (cancel or keep held)?"),
            "fa-ban")
    def confirm(self, items):
        return self._resolve(items, "confirm")


class CreditScoreView(ReadOnlyModelView):
    """Credit scores; shown on each member's page too."""

    datamodel = SQLAInterface(CreditScore)
    center = "risk_cases"
    list_title = _l("Credit scores")
    label_columns = {"member": _l("Member"), "member_id": _l("Member"), "score": _l("Score"),
                     "factors": _l("Factors"), "updated_at": _l("Updated at")}
    list_columns = ["member_id", "score", "factors", "updated_at"]
    show_columns = list_columns
    search_columns = ["score"]
    base_order = ("score", "asc")
    formatters_columns = {"factors": lambda factors: "; ".join(
        f"{name} {f.get('value')} ({f.get('points'):+d})" for name, f in (factors or {}).items()
        if isinstance(f, dict))}
