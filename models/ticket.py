"""客服中心 tickets: queues with a skill and SLA, agents with skills and availability, tickets with
their conversation (buyer, agent, merchant, internal notes), and call records."""
from sqlalchemy import (JSON, Boolean, CheckConstraint, Column, ForeignKey, Integer, String,
                        Text)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import UTCDateTime, utcnow

TICKET_STATUSES = ("open", "pending", "resolved", "closed")
# `tracking`: a carrier reported an exception on a shipment (物流异常)
TICKET_SOURCES = ("manual", "complaint", "after_sale", "chat", "tracking")
PRIORITIES = ("low", "normal", "high", "urgent")


class TicketQueue(db.Model):
    """A queue of tickets needing one skill, with its service levels."""

    __tablename__ = "ticket_queue"
    __table_args__ = (CheckConstraint("response_minutes > 0 AND resolve_minutes > 0",
                                      name="ck_ticket_queue_sla_positive"),)

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False, unique=True)
    skill = Column(String(32), nullable=False, index=True)
    response_minutes = Column(Integer, nullable=False, default=60)
    resolve_minutes = Column(Integer, nullable=False, default=1440)
    enabled = Column(Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return self.name


class Agent(db.Model):
    """A customer-service user as the assignment sees them: skills and availability."""

    __tablename__ = "ticket_agent"

    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id"), nullable=False, unique=True)
    skills = Column(JSON, nullable=False, default=list)
    available = Column(Boolean, nullable=False, default=True)
    user = relationship("UserAccount")

    def __repr__(self) -> str:
        return self.user.username if self.user else str(self.user_id)


class Ticket(db.Model):
    """A case to handle: from an after-sales request, a complaint, a chat, or by hand.
    `shop_id` set: the shop's merchants see and answer it; unset: platform staff only."""

    __tablename__ = "ticket"
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    ticket_no = Column(String(32), nullable=False, unique=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    queue_id = Column(Integer, ForeignKey("ticket_queue.id"), nullable=False, index=True)
    source = Column(String(16), nullable=False, default="manual")
    after_sale_id = Column(Integer, ForeignKey("after_sale.id"), nullable=True, index=True)
    order_id = Column(Integer, ForeignKey("order.id"), nullable=True, index=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=True, index=True)
    subject = Column(String(255), nullable=False)
    priority = Column(String(8), nullable=False, default="normal")
    status = Column(String(16), nullable=False, default="open", index=True)
    assignee_id = Column(Integer, ForeignKey("ticket_agent.id"), nullable=True, index=True)
    response_due_at = Column(UTCDateTime, nullable=False)
    resolve_due_at = Column(UTCDateTime, nullable=False, index=True)
    first_response_at = Column(UTCDateTime, nullable=True)
    resolved_at = Column(UTCDateTime, nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    shop = relationship("Shop")
    queue = relationship("TicketQueue")
    assignee = relationship("Agent")
    messages = relationship("TicketMessage", order_by="TicketMessage.id")

    def __repr__(self) -> str:
        return self.ticket_no

    def sla(self) -> tuple:
        """(resolve by, overdue now): open or pending past its resolve time, or still without
        a first response past its response time."""
        from services.clock import now

        moment = now()
        overdue = self.status in ("open", "pending") and (
            moment > self.resolve_due_at or
            (self.first_response_at is None and moment > self.response_due_at))
        return self.resolve_due_at, overdue


class TicketMessage(db.Model):
    """One message of a ticket's conversation; `internal` notes are never shown to buyers."""

    __tablename__ = "ticket_message"
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("ticket.id"), nullable=False, index=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    author_kind = Column(String(12), nullable=False)     # buyer | agent | merchant | system
    author = Column(String(128), nullable=False)
    body = Column(Text, nullable=False)
    internal = Column(Boolean, nullable=False, default=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)


class CallRecord(db.Model):
    """A call placed from a ticket through the telephony adapter (呼叫中心)."""

    __tablename__ = "call_record"
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("ticket.id"), nullable=False, index=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    call_id = Column(String(64), nullable=False, unique=True)
    masked_number = Column(String(32), nullable=False)
    agent = Column(String(128), nullable=False)
    status = Column(String(16), nullable=False)           # completed | no_answer | failed
    duration_seconds = Column(Integer, nullable=False, default=0)
    recording_url = Column(String(255), nullable=True)
    started_at = Column(UTCDateTime, nullable=False, default=utcnow)
