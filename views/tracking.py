"""物流中心 tracking REST and screens: the scans of each shipment (read), the public endpoint
carriers push to (signed; no login), and the sandbox carrier's advance endpoint (staff)."""
from flask import request
from flask_appbuilder.api import BaseApi, expose
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l

from app.extensions import db
from models.logistics import TrackingEvent
from services import tracking
from services.carriers import sandbox
from views.base import ReadOnlyModelApi, ReadOnlyModelView, api_action, api_errors
from views.openapi import OpenApiErrorsMixin
from views.schema import json_body

EVENT_COLUMNS = ["id", "shop_id", "notice_id", "carrier_id", "tracking_no", "external_id",
                 "status", "description", "location", "occurred_at", "received_at"]
STATUS_LABELS = {"collected": _l("Collected"), "in_transit": _l("In transit"),
                 "out_for_delivery": _l("Out for delivery"), "signed": _l("Signed for"),
                 "exception": _l("Exception"), "returned": _l("Returned")}


class TrackingEventApi(ReadOnlyModelApi):
    """Carrier scans per shipment, newest first; a shipment's tracking is
    `?q=(filters:!((col:notice_id,opr:eq,value:<id>)))` (or `tracking_no`)."""

    resource_name = "tracking_event"
    datamodel = SQLAInterface(TrackingEvent)
    center = "tracking"
    list_columns = EVENT_COLUMNS
    show_columns = EVENT_COLUMNS
    search_columns = ["shop_id", "notice_id", "carrier_id", "tracking_no", "status",
                      "occurred_at"]
    order_columns = ["id", "occurred_at", "received_at"]
    base_order = ("id", "desc")


def _raw_body() -> bytes:
    """The request's body; a form body was read already (the request guard checks form
    values), so it is given back encoded the same way (signatures cover the values)."""
    from urllib.parse import urlencode

    data = request.get_data()
    if not data and request.mimetype == "application/x-www-form-urlencoded" and request.form:
        data = urlencode(list(request.form.items(multi=True))).encode()
    return data


class CarrierPushApi(OpenApiErrorsMixin, BaseApi):
    """The endpoint carriers push scans to: public (the signature is the authentication)."""

    resource_name = "carrier_push"
    center = "tracking"
    openapi_spec_tag = "Tracking"

    @expose("/<carrier_code>", methods=["POST"])
    @api_errors
    def push(self, carrier_code):
        """A carrier's signed push of scans (no login)
        ---
        post:
          parameters:
          - {in: path, name: carrier_code, required: true, schema: {type: string}}
          - {in: header, name: X-Timestamp, schema: {type: string},
             description: 'sandbox: Unix seconds; refused outside TRACKING_PUSH_WINDOW_SECONDS'}
          - {in: header, name: X-Nonce, schema: {type: string},
             description: 'sandbox: unique per push (a replay has no effect)'}
          - {in: header, name: X-Signature, schema: {type: string},
             description: 'sandbox: hex HMAC-SHA256 of timestamp + "\\n" + nonce + "\\n" + body'}
          requestBody:
            description: 'sandbox: JSON {"tracking_no", "scans": [{"id", "status",
              "description", "location", "occurred_at"}]}; kuaidi100: form param + sign'
            content:
              application/json: {schema: {type: object}}
              application/x-www-form-urlencoded: {schema: {type: object}}
          responses:
            200: {description: 'Handled, a replay too (no second effect): the acknowledgement
              the carrier expects, with "stored" (new scans) and "replayed"'}
            401: {description: Bad or missing signature, or a stale push; nothing is stored}
            404: {description: Unknown or disabled carrier}
        """
        answer = tracking.handle_push(carrier_code, _raw_body(), request.headers)
        db.session.commit()
        return self.response(200, **answer)


class SandboxCarrierApi(OpenApiErrorsMixin, BaseApi):
    """The sandbox carrier's own desk: advance a shipment it was told about."""

    resource_name = "sandbox_carrier"
    center = "tracking"
    openapi_spec_tag = "Tracking"

    @api_action("/advance", "advance")
    def advance(self):
        """Add a scan to a sandbox shipment and push its history to this application
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    tracking_no: {type: string}
                    status: {type: string, enum: [collected, in_transit, out_for_delivery,
                                                  signed, exception, returned]}
                    description: {type: string}
                    location: {type: string}
                  required: [tracking_no, status]
          responses:
            200: {description: 'The scan and the HTTP status the push got: {"result": {"id",
              "status", "description", "location", "occurred_at"}, "push_status": 200}'}
            404: {description: The sandbox carrier has no such shipment}
            409: {description: The sandbox carrier is off (no SANDBOX_CARRIER_SECRET)}
        """
        body = json_body()
        scan, status = sandbox.advance(body.get("tracking_no"), body.get("status"),
                                       body.get("description"), body.get("location"))
        return self.response(200, result=scan, push_status=status)


class TrackingEventView(ReadOnlyModelView):
    datamodel = SQLAInterface(TrackingEvent)
    center = "tracking"
    list_title = _l("Tracking events")
    label_columns = {"shop": _l("Shop"), "notice_id": _l("Shipping notice"),
                     "carrier_id": _l("Carrier"), "tracking_no": _l("Tracking no."),
                     "external_id": _l("Carrier's scan id"), "status": _l("Status"),
                     "description": _l("Description"), "location": _l("Location"),
                     "occurred_at": _l("Occurred at"), "received_at": _l("Received at")}
    list_columns = ["tracking_no", "notice_id", "status", "description", "location",
                    "occurred_at", "received_at"]
    show_columns = ["shop", "notice_id", "carrier_id", "tracking_no", "external_id", "status",
                    "description", "location", "occurred_at", "received_at"]
    search_columns = ["tracking_no", "notice_id", "status", "occurred_at"]
    formatters_columns = {"status": lambda s: STATUS_LABELS.get(s, s)}
    base_order = ("id", "desc")
