"""Messages: templates for SMS and 站内信 (in-app messages), and each message sent through a
channel's adapter (a sandbox ships with the project)."""
from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import TimestampMixin, UTCDateTime, utcnow

MESSAGE_CHANNELS = ("sms", "inbox")
MESSAGE_STATUSES = ("queued", "sent", "failed")


class MessageTemplate(TimestampMixin, db.Model):
    """A message (platform data) sent by SMS or as a 站内信 when `event_name` happens (or when a
    service asks for it by `code`); `body` names fields of the event in braces: {order_no}."""

    __tablename__ = "message_template"
    __table_args__ = (UniqueConstraint("code", "channel", "locale",
                                       name="uq_message_template_code"),)

    id = Column(Integer, primary_key=True)
    code = Column(String(64), nullable=False)
    channel = Column(String(16), nullable=False)
    locale = Column(String(8), nullable=False, default="zh")
    event_name = Column(String(64), nullable=True, index=True)
    title = Column(String(128), nullable=True)
    body = Column(Text, nullable=False)
    # the template's id at the SMS provider (a signed, registered template), when it needs one
    provider_template = Column(String(64), nullable=True)
    enabled = Column(Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return f"{self.code} ({self.channel}, {self.locale})"


class Message(db.Model):
    """One SMS or 站内信 to one member, rendered from a template, sent through the channel's
    adapter once (`dedupe_key` makes a redelivered event send nothing more)."""

    __tablename__ = "message"
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    template_id = Column(Integer, ForeignKey("message_template.id"), nullable=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=True, index=True)
    channel = Column(String(16), nullable=False)
    # a mobile number for SMS (masked on screens), the member for 站内信
    recipient = Column(String(64), nullable=True)
    title = Column(String(128), nullable=True)
    body = Column(Text, nullable=False)
    status = Column(String(16), nullable=False, default="queued")
    provider_ref = Column(String(64), nullable=True)
    error = Column(Text, nullable=True)
    attempts = Column(Integer, nullable=False, default=0)
    # a queued SMS is (re)sent from then on; while one sender holds it, the end of its lease
    next_attempt_at = Column(UTCDateTime, nullable=True)
    dedupe_key = Column(String(128), nullable=False, unique=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    sent_at = Column(UTCDateTime, nullable=True)
    read_at = Column(UTCDateTime, nullable=True)
    template = relationship("MessageTemplate")
    member = relationship("Member")
    shop = relationship("Shop")

    def __repr__(self) -> str:
        return f"{self.channel} #{self.id}"
