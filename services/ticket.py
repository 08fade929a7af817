"""客服中心 tickets: opened by hand, from a complaint, a buyer's chat or an after-sales request;
assigned at once to the least-loaded available agent with the queue's skill; SLA due times;
a conversation (buyer, agent, merchant, internal notes); calls through the telephony adapter.

Assignment locks the candidate agents' rows in id order, then counts their open tickets, so
two tickets opened together never both see the same agent as least loaded.
"""
from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from models.member import Member
from models.order import Order
from models.ticket import (PRIORITIES, TICKET_SOURCES, Agent, CallRecord, Ticket,
                           TicketMessage, TicketQueue)
from services import telephony
from services.actor import current_actor, is_row_id, scope_query, visible_row
from services.clock import now
from services.errors import ConflictError, NotFoundError, ValidationFailed
from services.events import publish, subscribe
from services.numbering import number

OPEN = ("open", "pending")
AFTER_SALE_SKILL = "after_sale"


def _text(value, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValidationFailed.field(field, f"Required, at most {limit} characters.")
    return value.strip()


def author_kind() -> str:
    """Who is writing: the buyer (through the storefront), a merchant, or an agent."""
    actor = current_actor()
    if "Storefront" in actor.roles:
        return "buyer"
    if actor.merchant:
        return "merchant"
    return "agent" if actor.user_id is not None else "system"


# -- opening and assignment --------------------------------------------------------------------

def open_ticket(queue_id, subject, *, message=None, source="manual", order_id=None,
                member_id=None, priority="normal", after_sale=None) -> Ticket:
    queue = db.session.get(TicketQueue, queue_id) if is_row_id(queue_id) else None
    if queue is None or not queue.enabled:
        raise ValidationFailed.field("queue_id", "Related record not found.")
    subject = _text(subject, "subject", 255)
    if source not in TICKET_SOURCES:
        raise ValidationFailed.field("source", f"One of: {', '.join(TICKET_SOURCES)}.")
    if priority not in PRIORITIES:
        raise ValidationFailed.field("priority", f"One of: {', '.join(PRIORITIES)}.")
    shop_id = None
    if order_id is not None:
        found = visible_row(Order, order_id)
        if found is None:
            raise ValidationFailed.field("order_id", "Related record not found.")
        shop_id, member_id = found.shop_id, member_id or found.member_id
    if member_id is not None and (not is_row_id(member_id)
                                  or db.session.get(Member, member_id) is None):
        raise ValidationFailed.field("member_id", "Related record not found.")
    if current_actor().merchant:
        raise ValidationFailed.field("queue_id", "Merchants answer tickets; buyers and staff "
                                                 "open them.")
    moment = now()
    ticket = Ticket(ticket_no=number("TK"), shop_id=shop_id, queue_id=queue.id, source=source,
                    after_sale_id=after_sale.id if after_sale else None, order_id=order_id,
                    member_id=member_id, subject=subject, priority=priority, status="open",
                    response_due_at=moment + timedelta(minutes=queue.response_minutes),
                    resolve_due_at=moment + timedelta(minutes=queue.resolve_minutes),
                    created_at=moment)
    db.session.add(ticket)
    db.session.flush()
    if message is not None:
        _add_message(ticket, _text(message, "message", 5000), author_kind(), internal=False)
    assign(ticket)
    publish("ticket.opened", {"ticket_id": ticket.id, "queue_id": queue.id,
                              "assignee_id": ticket.assignee_id}, shop_id=shop_id)
    return ticket


def assign(ticket: Ticket) -> Agent | None:
    """The least-loaded available agent having the queue's skill (ties: the lowest id), or
    none: the ticket waits in its queue."""
    skill = db.session.get(TicketQueue, ticket.queue_id).skill
    agents = [a for a in db.session.scalars(select(Agent).where(Agent.available.is_(True))
                                            .order_by(Agent.id).with_for_update())
              if skill in (a.skills or [])]
    if not agents:
        ticket.assignee_id = None
        return None
    load = dict(db.session.execute(
        select(Ticket.assignee_id, func.count()).where(
            Ticket.assignee_id.in_([a.id for a in agents]), Ticket.status.in_(OPEN),
            Ticket.id != ticket.id)
        .group_by(Ticket.assignee_id)).all())
    chosen = min(agents, key=lambda a: (load.get(a.id, 0), a.id))
    ticket.assignee_id = chosen.id
    return chosen


@subscribe("after_sale.requested", "ticket.from_after_sale")
def _from_after_sale(payload: dict) -> None:
    """Every after-sales request gets a ticket in the first enabled `after_sale` queue (none
    when there is no such queue); once."""
    from models.after_sale import AfterSale

    if db.session.scalar(select(Ticket.id).where(
            Ticket.after_sale_id == payload["after_sale_id"])):
        return
    queue = db.session.scalars(select(TicketQueue).where(
        TicketQueue.skill == AFTER_SALE_SKILL, TicketQueue.enabled.is_(True))
        .order_by(TicketQueue.id)).first()
    request = db.session.get(AfterSale, payload["after_sale_id"])
    if queue is None or request is None:
        return
    open_ticket(queue.id, f"After-sale {request.after_sale_no}: {request.reason}"[:255],
                source="after_sale", order_id=request.order_id, member_id=request.member_id,
                after_sale=request)


# -- the conversation and the steps ------------------------------------------------------------

def visible(ticket_id) -> Ticket:
    ticket = visible_row(Ticket, ticket_id)
    if ticket is None:
        raise NotFoundError("Not found")
    return ticket


def visible_by_number(ticket_no) -> Ticket:
    ticket = scope_query(db.session.query(Ticket), Ticket).filter(
        Ticket.ticket_no == ticket_no).one_or_none() if isinstance(ticket_no, str) else None
    if ticket is None:
        raise NotFoundError("Not found")
    return ticket


def _add_message(ticket: Ticket, body: str, kind: str, internal: bool) -> TicketMessage:
    message = TicketMessage(ticket_id=ticket.id, shop_id=ticket.shop_id, author_kind=kind,
                            author=current_actor().name, body=body, internal=internal,
                            created_at=now())
    db.session.add(message)
    return message


def reply(ticket_id, body, internal=False) -> TicketMessage:
    """A message: the buyer's reopens a waiting ticket; an agent's or merchant's first public
    answer is the first response (SLA), and leaves the ticket waiting for the buyer."""
    ticket = visible(ticket_id)
    if ticket.status == "closed":
        raise ConflictError("The ticket is closed", {"status": ["closed"]})
    kind = author_kind()
    if internal and kind == "buyer":
        raise ValidationFailed.field("internal", "Buyers cannot write internal notes.")
    message = _add_message(ticket, _text(body, "body", 5000), kind, bool(internal))
    if kind == "buyer":
        ticket.status = "open"
    elif not internal:
        ticket.first_response_at = ticket.first_response_at or message.created_at
        ticket.status = "pending"
    publish("ticket.message", {"ticket_id": ticket.id, "author_kind": kind,
                               "internal": bool(internal)}, shop_id=ticket.shop_id)
    return message


def resolve(ticket_id) -> Ticket:
    ticket = visible(ticket_id)
    if ticket.status not in OPEN:
        raise ConflictError(f"Cannot resolve a ticket that is {ticket.status}",
                            {"status": [ticket.status]})
    ticket.status, ticket.resolved_at = "resolved", now()
    publish("ticket.resolved", {"ticket_id": ticket.id}, shop_id=ticket.shop_id)
    return ticket


def close(ticket_id) -> Ticket:
    ticket = visible(ticket_id)
    if ticket.status == "closed":
        raise ConflictError("Already closed", {"status": ["closed"]})
    ticket.status = "closed"
    ticket.resolved_at = ticket.resolved_at or now()
    return ticket


def reassign(ticket_id, agent_id=None) -> Ticket:
    """Hand a ticket to a given agent, or (none given) to the least-loaded one again."""
    ticket = visible(ticket_id)
    if agent_id is None:
        assign(ticket)
        return ticket
    agent = db.session.get(Agent, agent_id) if is_row_id(agent_id) else None
    if agent is None:
        raise ValidationFailed.field("agent_id", "Related record not found.")
    ticket.assignee_id = agent.id
    return ticket


def conversation(ticket: Ticket, for_buyer: bool) -> list[dict]:
    return [{"id": m.id, "author_kind": m.author_kind, "author": m.author, "body": m.body,
             "internal": m.internal, "at": m.created_at.isoformat()}
            for m in ticket.messages if not (for_buyer and m.internal)]


def is_overdue(ticket: Ticket) -> bool:
    return ticket.sla()[1]


# -- calls --------------------------------------------------------------------------------------

def call(ticket_id) -> CallRecord:
    """Click-to-call the ticket's buyer through the telephony adapter; the record keeps only
    the masked number."""
    ticket = visible(ticket_id)
    member = db.session.get(Member, ticket.member_id) if ticket.member_id else None
    if member is None or not member.phone:
        raise ConflictError("No buyer's phone number on this ticket", {"member_id": ["None."]})
    placed = telephony.adapter().place_call(member.phone, current_actor().name)
    record = CallRecord(ticket_id=ticket.id, shop_id=ticket.shop_id, call_id=placed.call_id,
                        masked_number=placed.masked_number, agent=current_actor().name,
                        status="in_progress", duration_seconds=0, started_at=now())
    db.session.add(record)
    db.session.flush()
    _add_message(ticket, f"Call {placed.call_id} to {placed.masked_number}", "system",
                 internal=True)
    return record


def hang_up(call_record_id) -> CallRecord:
    """The call ended: its duration and recording come from the adapter."""
    record = visible_row(CallRecord, call_record_id)
    if record is None:
        raise NotFoundError("Not found")
    if record.status != "in_progress":
        raise ConflictError("The call has ended", {"status": [record.status]})
    ended = telephony.adapter().hang_up(record.call_id, record.started_at)
    record.status, record.duration_seconds = ended.status, ended.duration_seconds
    record.recording_url = ended.recording_url
    return record
