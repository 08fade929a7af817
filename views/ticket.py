"""客服中心 tickets: REST (the storefront opens tickets and writes the buyer's messages; agents
and the shop's merchants answer) and the console screens (queues, agents, tickets with their
SLA, calls)."""
from markupsafe import Markup
from flask import flash, redirect, request, url_for
from flask_appbuilder.baseviews import expose
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import has_access
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.extensions import db
from models.ticket import (PRIORITIES, TICKET_SOURCES, Agent, CallRecord, Ticket,
                           TicketMessage, TicketQueue)
from services import ticket as tickets
from services.clock import business_time_text
from services.errors import HoutaiError
from views.base import (HoutaiModelApi, HoutaiModelView, ReadOnlyModelApi, ReadOnlyModelView,
                        api_action, api_errors)
from views.schema import StrictInteger, json_body, load_or_422

TICKET_COLUMNS = ["id", "ticket_no", "shop_id", "queue_id", "source", "after_sale_id",
                  "order_id", "member_id", "subject", "priority", "status", "assignee_id",
                  "response_due_at", "resolve_due_at", "first_response_at", "resolved_at",
                  "created_at"]


class OpenTicketSchema(Schema):
    queue_id = StrictInteger(required=True)
    subject = fields.String(required=True, validate=validate.Length(min=1, max=255))
    message = fields.String(load_default=None, validate=validate.Length(max=5000))
    source = fields.String(load_default="manual", validate=validate.OneOf(TICKET_SOURCES))
    order_id = StrictInteger(load_default=None, allow_none=True)
    member_id = StrictInteger(load_default=None, allow_none=True)
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))


class ReplySchema(Schema):
    body = fields.String(required=True, validate=validate.Length(min=1, max=5000))
    internal = fields.Boolean(load_default=False)


class AssignSchema(Schema):
    agent_id = StrictInteger(load_default=None, allow_none=True)


class TicketApi(HoutaiModelApi):
    """Tickets; a shop's tickets are its merchants' too. The answer of one ticket carries its
    conversation (`messages`; the storefront never sees internal notes)."""

    resource_name = "ticket"
    datamodel = SQLAInterface(Ticket)
    center = "ticket"
    include_route_methods = {"get", "get_list", "info", "post", "reply", "resolve", "close",
                             "assign", "call"}
    list_columns = TICKET_COLUMNS
    show_columns = TICKET_COLUMNS
    add_columns = ["queue_id", "subject"]
    search_columns = ["ticket_no", "shop_id", "queue_id", "source", "order_id", "member_id",
                      "status", "priority", "assignee_id", "resolve_due_at", "created_at"]
    order_columns = ["id", "created_at", "resolve_due_at"]
    base_order = ("id", "desc")

    def _answer(self, ticket, status=200):
        result = self.show_model_schema.dump(ticket)
        result["messages"] = tickets.conversation(ticket, tickets.author_kind() == "buyer")
        result["overdue"] = tickets.is_overdue(ticket)
        return self.response(status, id=ticket.id, result=result)

    def pre_get(self, data):
        ticket = tickets.visible(data["id"])
        data["result"]["messages"] = tickets.conversation(ticket,
                                                          tickets.author_kind() == "buyer")
        data["result"]["overdue"] = tickets.is_overdue(ticket)

    @api_errors
    def post_headless(self):
        """Open a ticket (assigned at once when an agent with the queue's skill is free)."""
        body = load_or_422(OpenTicketSchema(), json_body())
        ticket = tickets.open_ticket(body["queue_id"], body["subject"], message=body["message"],
                                     source=body["source"], order_id=body["order_id"],
                                     member_id=body["member_id"], priority=body["priority"])
        db.session.commit()
        return self._answer(ticket, 201)

    @api_action("/<int:pk>/reply", "reply")
    def reply(self, pk):
        """Write in the ticket's conversation (`internal`: a note buyers never see)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties: {body: {type: string}, internal: {type: boolean}}
                  required: [body]
          responses:
            200: {description: The ticket with its conversation}
        """
        body = load_or_422(ReplySchema(), json_body())
        tickets.reply(pk, body["body"], body["internal"])
        db.session.commit()
        return self._answer(tickets.visible(pk))

    @api_action("/<int:pk>/resolve", "resolve")
    def resolve(self, pk):
        """Resolve an open or pending ticket
        ---
        post:
          responses:
            200: {description: The ticket, resolved}
        """
        ticket = tickets.resolve(pk)
        db.session.commit()
        return self._answer(ticket)

    @api_action("/<int:pk>/close", "close")
    def close(self, pk):
        """Close a ticket
        ---
        post:
          responses:
            200: {description: The ticket, closed}
        """
        ticket = tickets.close(pk)
        db.session.commit()
        return self._answer(ticket)

    @api_action("/<int:pk>/assign", "assign")
    def assign(self, pk):
        """Give the ticket to an agent (`agent_id`), or to the least-loaded one (no body)
        ---
        post:
          responses:
            200: {description: The ticket}
        """
        body = load_or_422(AssignSchema(), json_body())
        ticket = tickets.reassign(pk, body["agent_id"])
        db.session.commit()
        return self._answer(ticket)

    @api_action("/<int:pk>/call", "call")
    def call(self, pk):
        """Call the ticket's buyer (呼叫中心); the record keeps the masked number
        ---
        post:
          responses:
            201: {description: 'The call record: {"result": {"id", "call_id", "masked_number",
              "status": "in_progress"}}'}
        """
        record = tickets.call(pk)
        db.session.commit()
        return self.response(201, result={"id": record.id, "call_id": record.call_id,
                                          "masked_number": record.masked_number,
                                          "status": record.status})


class TicketMessageApi(ReadOnlyModelApi):
    """Every message, internal notes included: staff and the shop's merchants."""

    resource_name = "ticket_message"
    datamodel = SQLAInterface(TicketMessage)
    center = "ticket_internal"
    list_columns = ["id", "ticket_id", "shop_id", "author_kind", "author", "body", "internal",
                    "created_at"]
    show_columns = list_columns
    search_columns = ["ticket_id", "author_kind", "internal", "created_at"]
    base_order = ("id", "desc")


class CallRecordApi(ReadOnlyModelApi):
    resource_name = "call_record"
    datamodel = SQLAInterface(CallRecord)
    center = "ticket_internal"
    include_route_methods = ReadOnlyModelApi.include_route_methods | {"hang_up"}
    list_columns = ["id", "ticket_id", "shop_id", "call_id", "masked_number", "agent",
                    "status", "duration_seconds", "recording_url", "started_at"]
    show_columns = list_columns
    search_columns = ["ticket_id", "status", "started_at"]
    base_order = ("id", "desc")

    @api_action("/<int:pk>/hang-up", "hang_up")
    def hang_up(self, pk):
        """The call ended: duration and recording attached
        ---
        post:
          responses:
            200: {description: The call record}
        """
        record = tickets.hang_up(pk)
        db.session.commit()
        return self.response(200, result=self.show_model_schema.dump(record))


class TicketQueueApi(HoutaiModelApi):
    resource_name = "ticket_queue"
    datamodel = SQLAInterface(TicketQueue)
    center = "ticket_setup"
    list_columns = ["id", "name", "skill", "response_minutes", "resolve_minutes", "enabled"]
    show_columns = list_columns
    add_columns = edit_columns = ["name", "skill", "response_minutes", "resolve_minutes",
                                  "enabled"]
    search_columns = ["name", "skill", "enabled"]


class AgentApi(HoutaiModelApi):
    resource_name = "ticket_agent"
    datamodel = SQLAInterface(Agent)
    center = "ticket_setup"
    list_columns = ["id", "user_id", "skills", "available"]
    show_columns = list_columns
    add_columns = edit_columns = ["user_id", "skills", "available"]
    search_columns = ["user_id", "available"]

    def pre_add(self, item):
        _check_skills(item)

    def pre_update(self, item):
        _check_skills(item)


def _check_skills(agent) -> None:
    from services.errors import ValidationFailed

    if not isinstance(agent.skills, list) or not all(
            isinstance(s, str) and 0 < len(s) <= 32 for s in agent.skills):
        raise ValidationFailed.field("skills", "A list of skill names, e.g. [\"after_sale\"].")


def _conversation_link(ticket_no) -> Markup:
    return Markup('<a href="/ticketview/conversation/%s">%s</a>') % (ticket_no, ticket_no)


def _sla(value) -> Markup:
    """Resolve-by time; overdue tickets stand out."""
    due, overdue = value
    text = business_time_text(due)
    if overdue:
        return Markup('<span class="label label-danger">%s</span>') % text
    return Markup("%s") % text


class TicketView(ReadOnlyModelView):
    datamodel = SQLAInterface(Ticket)
    center = "ticket"
    list_title = _l("Tickets")
    label_columns = {"ticket_no": _l("Ticket no."), "shop": _l("Shop"), "queue": _l("Queue"),
                     "source": _l("Source"), "subject": _l("Subject"),
                     "priority": _l("Priority"), "status": _l("Status"),
                     "assignee": _l("Assignee"), "sla": _l("Resolve by"),
                     "first_response_at": _l("First response at"),
                     "created_at": _l("Created at")}
    list_columns = ["ticket_no", "subject", "queue", "priority", "status", "assignee", "sla"]
    show_columns = ["ticket_no", "shop", "queue", "source", "subject", "priority", "status",
                    "assignee", "sla", "first_response_at", "created_at"]
    search_columns = ["ticket_no", "queue", "status", "priority", "created_at"]
    formatters_columns = {"sla": _sla, "ticket_no": _conversation_link}
    base_order = ("id", "desc")
    include_route_methods = ReadOnlyModelView.include_route_methods | {"conversation"}
    base_permissions = ReadOnlyModelView.base_permissions + ["can_conversation"]

    @expose("/conversation/<ticket_no>", methods=["GET", "POST"])
    @has_access
    def conversation(self, ticket_no):
        """The ticket's conversation; agents and the shop's merchants answer here."""
        found = tickets.visible_by_number(ticket_no)
        if request.method == "POST":
            try:
                tickets.reply(found.id, request.form.get("body"),
                              request.form.get("internal") == "y")
                db.session.commit()
                return redirect(url_for(f"{self.endpoint}.conversation", ticket_no=ticket_no))
            except HoutaiError as err:
                db.session.rollback()
                flash("; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in err.errors.items())
                      or err.message, "danger")
        due, overdue = found.sla()
        return self.render_template(
            "houtai/ticket_conversation.html", ticket=found, overdue=overdue,
            due=business_time_text(due), messages=tickets.conversation(found, False),
            title=found.ticket_no, appbuilder=self.appbuilder)


class TicketQueueView(HoutaiModelView):
    datamodel = SQLAInterface(TicketQueue)
    center = "ticket_setup"
    list_title = _l("Ticket queues")
    label_columns = {"name": _l("Name"), "skill": _l("Skill"),
                     "response_minutes": _l("First response within (minutes)"),
                     "resolve_minutes": _l("Resolve within (minutes)"), "enabled": _l("Enabled")}
    list_columns = ["name", "skill", "response_minutes", "resolve_minutes", "enabled"]
    add_columns = edit_columns = show_columns = list_columns


class CallRecordView(ReadOnlyModelView):
    datamodel = SQLAInterface(CallRecord)
    center = "ticket_internal"
    list_title = _l("Calls")
    label_columns = {"ticket": _l("Ticket"), "masked_number": _l("Number"),
                     "agent": _l("Agent"), "status": _l("Status"),
                     "duration_seconds": _l("Duration (s)"), "recording_url": _l("Recording"),
                     "started_at": _l("Started at")}
    list_columns = ["ticket", "masked_number", "agent", "status", "duration_seconds",
                    "started_at"]
    show_columns = list_columns + ["recording_url"]
    base_order = ("id", "desc")
