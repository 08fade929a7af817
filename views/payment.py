"""支付中心 screens and REST: payment attempts and refunds (read), the gateways' notification
endpoints (public, verified by signature), and the sandbox gateway's pay page."""
from flask import Blueprint, abort, render_template_string, request
from flask_appbuilder.api import expose
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import generate_csrf

from app.extensions import db
from models.payment import (PAYMENT_STATUS_LABELS, REFUND_STATUS_LABELS, Payment,
                            PaymentRefund)
from services import payment
from services.errors import HoutaiError
from services.gateways import sandbox
from views.base import ReadOnlyModelApi, ReadOnlyModelView

PAYMENT_COLUMNS = ["id", "trade_id", "out_trade_no", "channel", "amount", "currency", "status",
                   "transaction_id", "payer_account", "flag_reason", "refunded_amount",
                   "created_at", "paid_at"]
REFUND_COLUMNS = ["id", "payment_id", "out_refund_no", "amount", "reason", "status",
                  "gateway_refund_id", "attempts", "last_error", "created_at", "finished_at"]


class PaymentApi(ReadOnlyModelApi):
    """Payment attempts (staff and the storefront; a trade spans shops), and the endpoints
    gateways notify."""

    resource_name = "payment"
    datamodel = SQLAInterface(Payment)
    center = "payment"
    include_route_methods = ReadOnlyModelApi.include_route_methods | {"notify", "refund_notify"}
    list_columns = PAYMENT_COLUMNS
    show_columns = PAYMENT_COLUMNS
    search_columns = ["trade_id", "out_trade_no", "channel", "status", "transaction_id",
                      "created_at"]
    order_columns = ["id", "created_at", "amount"]
    base_order = ("id", "desc")

    def _notified(self, handle, channel):
        """Run a notification handler: 200 `{"result": "ok"}` once handled (a repeat too);
        a refusal in the error shape. A flagged amount is kept (committed) before the 422."""
        try:
            handle(channel, request.get_data(), request.headers)
        except payment.AmountMismatch as mismatch:
            db.session.commit()
            return self.response(mismatch.status, message=mismatch.message,
                                 errors=mismatch.errors)
        except HoutaiError as refusal:
            db.session.rollback()
            return self.response(refusal.status, message=refusal.message, errors=refusal.errors)
        db.session.commit()
        return self.response(200, result="ok")

    @expose("/notify/<channel>", methods=["POST"])
    def notify(self, channel):
        """A gateway's payment notification (signed; no login)
        ---
        post:
          parameters:
          - {in: path, name: channel, required: true, schema: {type: string}}
          - {in: header, name: X-Signature, required: true, schema: {type: string},
             description: hex HMAC-SHA256 of the raw body under the channel's secret}
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    out_trade_no: {type: string}
                    transaction_id: {type: string}
                    amount: {type: string, example: "12.34"}
                    currency: {type: string, example: CNY}
                    status: {type: string, enum: [SUCCESS, FAILED]}
                    paid_at: {type: string, format: date-time}
                    payer_account: {type: string}
          responses:
            200: {description: 'Handled (also a repeat): {"result": "ok"}'}
            401: {description: Bad or missing signature; nothing changes}
            404: {description: Unknown out_trade_no}
            422: {description: Amount or currency does not match; the payment is flagged}
        """
        return self._notified(payment.handle_payment_notice, channel)

    @expose("/refund-notify/<channel>", methods=["POST"])
    def refund_notify(self, channel):
        """A gateway's refund notification (signed; no login)
        ---
        post:
          parameters:
          - {in: path, name: channel, required: true, schema: {type: string}}
          - {in: header, name: X-Signature, required: true, schema: {type: string}}
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    out_refund_no: {type: string}
                    out_trade_no: {type: string}
                    refund_id: {type: string}
                    amount: {type: string}
                    currency: {type: string}
                    status: {type: string, enum: [REFUND_SUCCESS, REFUND_FAILED]}
                    refunded_at: {type: string, format: date-time}
          responses:
            200: {description: 'Handled (also a repeat): {"result": "ok"}'}
            401: {description: Bad or missing signature; nothing changes}
            404: {description: Unknown out_refund_no}
        """
        return self._notified(payment.handle_refund_notice, channel)


class PaymentRefundApi(ReadOnlyModelApi):
    resource_name = "payment_refund"
    datamodel = SQLAInterface(PaymentRefund)
    center = "payment"
    list_columns = REFUND_COLUMNS
    show_columns = REFUND_COLUMNS
    search_columns = ["payment_id", "out_refund_no", "status", "created_at"]
    order_columns = ["id", "created_at", "amount"]
    base_order = ("id", "desc")


PAYMENT_LABELS = {
    "trade": _l("Trade"), "out_trade_no": _l("Payment no."), "channel": _l("Channel"),
    "amount": _l("Amount"), "currency": _l("Currency"), "status": _l("Status"),
    "transaction_id": _l("Gateway transaction"), "payer_account": _l("Payer account"),
    "flag_reason": _l("Flag reason"), "refunded_amount": _l("Refunded amount"),
    "created_at": _l("Created at"), "paid_at": _l("Paid at"),
    "notified_at": _l("Last notified at"),
}


class PaymentView(ReadOnlyModelView):
    datamodel = SQLAInterface(Payment)
    center = "payment"
    list_title = _l("Payments")
    label_columns = PAYMENT_LABELS
    list_columns = ["out_trade_no", "trade", "channel", "amount", "status", "refunded_amount",
                    "created_at", "paid_at"]
    show_columns = ["out_trade_no", "trade", "channel", "amount", "currency", "status",
                    "transaction_id", "payer_account", "flag_reason", "refunded_amount",
                    "created_at", "paid_at", "notified_at"]
    search_columns = ["out_trade_no", "channel", "status", "transaction_id", "created_at"]
    formatters_columns = {"status": lambda s: PAYMENT_STATUS_LABELS.get(s, s)}
    base_order = ("id", "desc")


class PaymentRefundView(ReadOnlyModelView):
    """The refund queue: `failed` ones wait for a person."""

    datamodel = SQLAInterface(PaymentRefund)
    center = "payment"
    list_title = _l("Refunds")
    label_columns = {"payment": _l("Payment"), "out_refund_no": _l("Refund no."),
                     "amount": _l("Amount"), "reason": _l("Reason"), "status": _l("Status"),
                     "gateway_refund_id": _l("Gateway refund"), "attempts": _l("Attempts"),
                     "last_error": _l("Last error"), "created_at": _l("Created at"),
                     "finished_at": _l("Finished at")}
    list_columns = ["out_refund_no", "payment", "amount", "status", "attempts", "created_at",
                    "finished_at"]
    show_columns = ["out_refund_no", "payment", "amount", "reason", "status",
                    "gateway_refund_id", "attempts", "last_error", "created_at", "finished_at"]
    search_columns = ["out_refund_no", "status", "created_at"]
    formatters_columns = {"status": lambda s: REFUND_STATUS_LABELS.get(s, s)}
    base_order = ("id", "desc")


# -- the sandbox gateway's pay page (it stands for the third party's site) ----------------------

sandbox_pages = Blueprint("sandbox_gateway", __name__, url_prefix="/sandbox")

PAY_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sandbox gateway</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto">
<h1>Sandbox gateway</h1>
<p>Payment <code>{{ tx.out_trade_no }}</code>: <strong>{{ "%.2f"|format(tx.amount) }}
{{ tx.currency }}</strong></p>
{% if tx.status == "created" %}
<form method="post">
  <input type="hidden" name="csrf_token" value="{{ csrf }}">
  <label>Payer account <input name="payer_account" value="sandbox-buyer"></label>
  <p><button name="outcome" value="pay">Pay</button>
     <button name="outcome" value="fail">Fail the payment</button></p>
</form>
{% else %}
<p id="outcome">This payment {{ tx.status }}. The shop is notified.</p>
{% endif %}
</body></html>"""


@sandbox_pages.route("/pay/<out_trade_no>", methods=["GET", "POST"])
def pay_page(out_trade_no):
    """The tester pays or fails one payment; the shop is notified afterwards."""
    if request.method == "POST":
        outcome = request.form.get("outcome")
        if outcome not in ("pay", "fail"):
            abort(400)
        try:
            sandbox.settle(out_trade_no, outcome == "pay",
                           (request.form.get("payer_account") or "sandbox-buyer").strip())
        except HoutaiError as refusal:
            db.session.rollback()
            abort(refusal.status)
        db.session.commit()
    tx = sandbox.pending_payment(out_trade_no)
    if tx is None:
        abort(404)
    return render_template_string(PAY_PAGE, tx=tx, csrf=generate_csrf())
