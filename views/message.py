"""Integrations: message templates (SMS, 站内信) with a send-test, the messages log (mobile
numbers masked), and a member's inbox for the storefront. Every rule is in
services/message.py."""
from flask import flash, redirect, request, url_for
from flask_appbuilder.baseviews import expose
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import has_access
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields
from wtforms import BooleanField, SelectField

from app.extensions import db
from models.message import MESSAGE_CHANNELS, Message, MessageTemplate
from services import message
from services.errors import HoutaiError
from views.base import (HoutaiModelApi, HoutaiModelView, ReadOnlyModelApi, ReadOnlyModelView,
                        api_action, form_rule)
from views.schema import StrictInteger, json_body, load_or_422

TEMPLATE_FIELDS = ["code", "channel", "locale", "event_name", "title", "body",
                   "provider_template", "enabled"]
TEMPLATE_COLUMNS = ["id", *TEMPLATE_FIELDS, "created_at", "updated_at"]
MESSAGE_COLUMNS = ["id", "template_id", "shop_id", "member_id", "channel", "recipient", "title",
                   "body", "status", "provider_ref", "error", "attempts", "created_at",
                   "sent_at", "read_at"]
INBOX_COLUMNS = ["id", "member_id", "title", "body", "created_at", "sent_at", "read_at"]
STATUS_LABELS = {"queued": _l("Queued"), "sent": _l("Sent"), "failed": _l("Failed")}
CHANNEL_LABELS = {"sms": _l("SMS"), "inbox": _l("站内信")}
LABELS = {"code": _l("Code"), "channel": _l("Channel"), "locale": _l("Language"),
          "event_name": _l("Event"), "title": _l("Title"), "body": _l("Text"),
          "provider_template": _l("Provider template id"), "enabled": _l("Enabled"),
          "created_at": _l("Created at"), "updated_at": _l("Updated at"),
          "template": _l("Template"), "shop": _l("Shop"), "member": _l("Member"),
          "recipient": _l("Recipient"), "status": _l("Status"),
          "provider_ref": _l("Provider reference"), "error": _l("Error"),
          "attempts": _l("Attempts"), "sent_at": _l("Sent at"), "read_at": _l("Read at")}


def _masked_rows(rows) -> None:
    for row in rows:
        if "recipient" in row:
            row["recipient"] = message.masked_recipient(row.get("channel", "sms"),
                                                        row["recipient"])


def _masked_value(value):
    return message.masked_recipient("sms", value) if value and value.isdigit() else value


class SendTestBody(Schema):
    mobile = fields.String(load_default=None, allow_none=True)
    member_id = StrictInteger(load_default=None, allow_none=True)


class MessageTemplateApi(HoutaiModelApi):
    """Message templates: an SMS or a 站内信 sent when `event_name` happens; `body` names
    the event's fields in braces."""

    resource_name = "message_template"
    datamodel = SQLAInterface(MessageTemplate)
    center = "messaging"
    include_route_methods = {"get", "get_list", "info", "post", "put", "delete", "send_test"}
    list_columns = TEMPLATE_COLUMNS
    show_columns = TEMPLATE_COLUMNS
    add_columns = TEMPLATE_FIELDS
    edit_columns = TEMPLATE_FIELDS
    search_columns = ["code", "channel", "locale", "event_name", "enabled"]
    order_columns = ["id", "code"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        message.check_template(item)

    def pre_update(self, item):
        message.check_template(item)

    def pre_delete(self, item):
        if db.session.query(Message.id).filter_by(template_id=item.id).first():
            from services.errors import ConflictError

            raise ConflictError("The template has messages",
                                {"id": ["It has sent messages: disable it instead."]})

    @api_action("/<int:pk>/send_test", "send_test")
    def send_test(self, pk):
        """Send the template rendered with sample values to a mobile number or a member
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {mobile: {type: string},
                         member_id: {type: integer}}}
          responses:
            201: {description: 'The message (queued SMS, or a sent 站内信), recipient masked'}
            404: {description: No such template}
            422: {description: 'errors.mobile or errors.member_id'}
        """
        body = load_or_422(SendTestBody(), json_body())
        sent = message.send_test(pk, body["mobile"], body["member_id"])
        db.session.commit()
        row = {c: getattr(sent, c) for c in ("id", "channel", "recipient", "title", "body",
                                             "status")}
        _masked_rows([row])
        return self.response(201, result=row)


def _template_rule(item):
    form_rule(message.check_template, item)


class MessageTemplateView(HoutaiModelView):
    datamodel = SQLAInterface(MessageTemplate)
    center = "messaging"
    list_title = _l("Message templates")
    label_columns = LABELS
    description_columns = {"body": _l("Fields of the event in braces, e.g. {order_no}")}
    list_columns = ["code", "channel", "locale", "event_name", "title", "enabled"]
    show_columns = TEMPLATE_FIELDS + ["created_at", "updated_at"]
    add_columns = TEMPLATE_FIELDS
    edit_columns = TEMPLATE_FIELDS
    search_columns = ["code", "channel", "locale", "event_name", "enabled"]
    add_form_extra_fields = {
        "channel": SelectField(_l("Channel"), choices=[(c, CHANNEL_LABELS[c])
                                                       for c in MESSAGE_CHANNELS]),
        "locale": SelectField(_l("Language"), choices=[(c, c) for c in message.LOCALES]),
        "event_name": SelectField(_l("Event"), choices=[("", "—")] + [
            (name, name) for name in message.TEMPLATE_EVENTS]),
        "enabled": BooleanField(_l("Enabled"), default=True)}
    edit_form_extra_fields = add_form_extra_fields
    formatters_columns = {"channel": lambda value: CHANNEL_LABELS.get(value, value)}
    include_route_methods = {"list", "show", "add", "edit", "delete", "action", "action_post",
                             "send_test_form"}
    base_order = ("id", "desc")

    def pre_add(self, item):
        super().pre_add(item)
        _template_rule(item)

    def pre_update(self, item):
        super().pre_update(item)
        _template_rule(item)

    @expose("/send_test/<int:pk>", methods=["GET", "POST"])
    @has_access
    def send_test_form(self, pk):
        """Send a test: the template with sample values, to a mobile number or a member."""
        template = db.session.get(MessageTemplate, pk)
        if template is None:
            from flask import abort

            abort(404)
        mobile = (request.form.get("mobile") or "").strip()
        member_id = (request.form.get("member_id") or "").strip()
        if request.method == "POST":
            try:
                if member_id and not member_id.isdigit():
                    from services.errors import ValidationFailed

                    raise ValidationFailed.field("member_id", "A member id.")
                sent = message.send_test(pk, mobile or None, int(member_id) if member_id else None)
                db.session.commit()
                flash(str(_l("Test message %(id)s: %(status)s", id=sent.id,
                             status=STATUS_LABELS.get(sent.status, sent.status))), "success")
                return redirect(url_for("MessageView.list"))
            except HoutaiError as err:
                db.session.rollback()
                flash("; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in err.errors.items())
                      or err.message, "danger")
        return self.render_template("houtai/message_send_test.html", template=template,
                                    mobile=mobile, member_id=member_id,
                                    title=_l("Send a test message"))


class MessageApi(ReadOnlyModelApi):
    """The messages log: every SMS and 站内信 sent (or being sent), mobile numbers masked."""

    resource_name = "message"
    datamodel = SQLAInterface(Message)
    center = "integrations"
    list_columns = MESSAGE_COLUMNS
    show_columns = MESSAGE_COLUMNS
    search_columns = ["template_id", "shop_id", "member_id", "channel", "status",
                      "created_at"]
    order_columns = ["id", "created_at"]
    base_order = ("id", "desc")

    def pre_get(self, data):
        super().pre_get(data)
        _masked_rows([data["result"]])

    def pre_get_list(self, data):
        super().pre_get_list(data)
        _masked_rows(data["result"])


class MessageView(ReadOnlyModelView):
    datamodel = SQLAInterface(Message)
    center = "integrations"
    list_title = _l("Messages")
    label_columns = LABELS
    list_columns = ["created_at", "channel", "template", "recipient", "title", "status",
                    "attempts", "shop"]
    show_columns = ["channel", "template", "member", "recipient", "title", "body", "status",
                    "provider_ref", "error", "attempts", "created_at", "sent_at", "read_at",
                    "shop"]
    search_columns = ["channel", "status", "template", "shop", "created_at"]
    formatters_columns = {"recipient": _masked_value,
                          "channel": lambda value: CHANNEL_LABELS.get(value, value),
                          "status": lambda value: STATUS_LABELS.get(value, value)}
    base_order = ("id", "desc")


class ReadBody(Schema):
    member_id = StrictInteger(required=True)


class MemberMessageApi(ReadOnlyModelApi):
    """A member's 站内信 for the storefront: list with a member_id filter
    (`?q=(filters:!((col:member_id,opr:eq,value:7)))`), newest first; mark one read."""

    resource_name = "member_message"
    datamodel = SQLAInterface(Message)
    center = "member_inbox"
    include_route_methods = ReadOnlyModelApi.include_route_methods | {"read"}
    base_filters = [["channel", FilterEqual, "inbox"], ["status", FilterEqual, "sent"]]
    list_columns = INBOX_COLUMNS
    show_columns = INBOX_COLUMNS
    search_columns = ["member_id", "read_at", "created_at"]
    order_columns = ["id", "created_at"]
    base_order = ("id", "desc")

    @api_action("/<int:pk>/read", "read")
    def read(self, pk):
        """The member read the message (idempotent)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, properties: {member_id: {type: integer}},
                         required: [member_id]}
          responses:
            200: {description: The message with read_at}
            404: {description: No such message of this member}
        """
        body = load_or_422(ReadBody(), json_body())
        return self.answer_saved(message.mark_read(pk, body["member_id"]))


def register(appbuilder) -> None:
    integrations = dict(category="Integrations", category_label=_l("Integrations"),
                        category_icon="fa-plug")
    appbuilder.add_view(MessageTemplateView, "Message templates",
                        label=_l("Message templates"), icon="fa-commenting-o", **integrations)
    appbuilder.add_view(MessageView, "Messages", label=_l("Messages"), icon="fa-envelope-o",
                        **integrations)
    for api in (MessageTemplateApi, MessageApi, MemberMessageApi):
        appbuilder.add_api(api)
