"""The outbox and its deliveries: what reacted to what, and the failed list to retry."""
from flask import flash, redirect
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l

from app.extensions import db
from models.events import DELIVERY_STATUS_LABELS, EventDelivery, OutboxEvent
from services import events
from views.base import ReadOnlyModelApi, ReadOnlyModelView


class OutboxEventView(ReadOnlyModelView):
    datamodel = SQLAInterface(OutboxEvent)
    center = "events"
    list_title = _l("Events")
    label_columns = {"name": _l("Event"), "payload": _l("Payload"), "created_at": _l("Time"),
                     "shop_id": _l("Shop")}
    list_columns = ["id", "name", "shop_id", "created_at"]
    show_columns = ["id", "name", "payload", "shop_id", "created_at"]
    search_columns = ["name", "shop_id", "created_at"]
    base_order = ("id", "desc")


class EventDeliveryView(ReadOnlyModelView):
    datamodel = SQLAInterface(EventDelivery)
    center = "events"
    list_title = _l("Event deliveries")
    label_columns = {"event": _l("Event"), "subscriber": _l("Subscriber"), "status": _l("Status"),
                     "attempts": _l("Attempts"), "next_attempt_at": _l("Next attempt"),
                     "last_error": _l("Last error"), "done_at": _l("Done at")}
    list_columns = ["id", "event", "subscriber", "status", "attempts", "next_attempt_at",
                    "done_at"]
    show_columns = ["id", "event", "subscriber", "status", "attempts", "next_attempt_at",
                    "last_error", "done_at"]
    search_columns = ["subscriber", "status"]
    base_order = ("id", "desc")
    formatters_columns = {"status": lambda status: DELIVERY_STATUS_LABELS.get(status, status)}

    @action("retry", _l("Retry"), _l("Retry the selected failed deliveries?"), "fa-repeat")
    def retry(self, items):
        items = items if isinstance(items, list) else [items]
        for item in items:
            events.retry_failed(item.id)
        db.session.commit()
        flash(str(_l("Failed deliveries queued again")), "info")
        return redirect(self.get_redirect())


class EventDeliveryApi(ReadOnlyModelApi):
    resource_name = "event_delivery"
    datamodel = SQLAInterface(EventDelivery)
    center = "events"
    list_columns = ["id", "event_id", "subscriber", "status", "attempts", "next_attempt_at",
                    "last_error", "done_at"]
    show_columns = list_columns
    search_columns = ["subscriber", "status", "event_id"]
    order_columns = ["id", "next_attempt_at"]


class OutboxEventApi(ReadOnlyModelApi):
    resource_name = "outbox_event"
    datamodel = SQLAInterface(OutboxEvent)
    center = "events"
    list_columns = ["id", "name", "payload", "shop_id", "created_at"]
    show_columns = list_columns
    search_columns = ["name", "shop_id"]
    order_columns = ["id", "created_at"]
    base_order = ("id", "desc")
