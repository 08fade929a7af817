"""The audit log: read-only, newest first; merchants see the entries of their shop's records."""
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l

from models.audit import AuditLog
from views.base import ReadOnlyModelApi, ReadOnlyModelView

AUDIT_COLUMNS = ["id", "created_at", "actor", "action", "model", "record_pk", "changes",
                 "reason", "shop_id"]


class AuditLogView(ReadOnlyModelView):
    datamodel = SQLAInterface(AuditLog)
    center = "audit"
    list_title = _l("Audit log")
    show_title = _l("Audit entry")
    label_columns = {"created_at": _l("Time"), "actor": _l("Who"), "action": _l("Action"),
                     "model": _l("Model"), "record_pk": _l("Record"), "changes": _l("Changes"),
                     "reason": _l("Reason"), "shop_id": _l("Shop")}
    list_columns = ["created_at", "actor", "action", "model", "record_pk", "reason", "shop_id"]
    show_columns = AUDIT_COLUMNS
    search_columns = ["actor", "action", "model", "record_pk", "shop_id", "created_at"]
    base_order = ("id", "desc")


class AuditLogApi(ReadOnlyModelApi):
    resource_name = "audit_log"
    datamodel = SQLAInterface(AuditLog)
    center = "audit"
    list_columns = AUDIT_COLUMNS
    show_columns = AUDIT_COLUMNS
    search_columns = ["actor", "action", "model", "record_pk", "shop_id", "created_at"]
    order_columns = ["id", "created_at"]
    base_order = ("id", "desc")
