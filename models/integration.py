"""Integrations: webhooks to storefronts and ERPs with their delivery log, message templates
(SMS, 站内信) with the messages sent through them, and asynchronous exports."""
from sqlalchemy import (JSON, Boolean, Column, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import TimestampMixin, UTCDateTime, utcnow

WEBHOOK_DELIVERY_STATUSES = ("pending", "retrying", "succeeded", "failed")
MESSAGE_CHANNELS = ("sms", "inbox")
MESSAGE_STATUSES = ("queued", "sent", "failed")
EXPORT_KINDS = ("orders", "settlements", "stock", "sales")
EXPORT_FORMATS = ("csv", "xlsx")
EXPORT_STATUSES = ("queued", "running", "done", "failed")


class WebhookSubscription(TimestampMixin, db.Model):
    """An endpoint (a storefront, an ERP) told of status changes of trades, orders, shipments
    and refunds. A merchant's subscription hears its own shop's events only; a platform one
    (no shop) hears every shop's. Bodies are signed with HMAC-SHA256 by a key shown once: only
    a salted hash is kept, the key is derived from it with SECRET_KEY."""

    __tablename__ = "webhook_subscription"
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    name = Column(String(64), nullable=False)
    url = Column(String(512), nullable=False)
    # event names ("order.shipped", ...) or prefixes ending in ".*"
    events = Column(JSON, nullable=False, default=list)
    signing_key_hash = Column(String(128), nullable=False)
    enabled = Column(Boolean, nullable=False, default=True)
    shop = relationship("Shop")

    def __repr__(self) -> str:
        return self.name


class WebhookDelivery(db.Model):
    """One event sent (or being sent) to one subscription: the delivery log and retry state."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_delivery_event"),
        Index("ix_webhook_delivery_status_due", "status", "next_attempt_at"),
    )
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    subscription_id = Column(Integer, ForeignKey("webhook_subscription.id"), nullable=False,
                             index=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    event_id = Column(Integer, ForeignKey("outbox_event.id"), nullable=False)
    event_name = Column(String(64), nullable=False)
    payload = Column(JSON, nullable=False, default=dict)
    status = Column(String(16), nullable=False, default="pending")
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(UTCDateTime, nullable=False, default=utcnow)
    last_status_code = Column(Integer, nullable=True)
    last_error = Column(Text, nullable=True)
    duration_ms = Column(Integer, nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    delivered_at = Column(UTCDateTime, nullable=True)
    subscription = relationship("WebhookSubscription")
    shop = relationship("Shop")

    def __repr__(self) -> str:
        return f"{self.event_name} → {self.subscription_id}"


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
    dedupe_key = Column(String(128), nullable=False, unique=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    sent_at = Column(UTCDateTime, nullable=True)
    read_at = Column(UTCDateTime, nullable=True)
    template = relationship("MessageTemplate")
    member = relationship("Member")
    shop = relationship("Shop")

    def __repr__(self) -> str:
        return f"{self.channel} #{self.id}"


class ExportJob(db.Model):
    """An export of orders, settlements, stock or sales as CSV or Excel, built by a job. A
    merchant's export holds its own shop's rows only: the job filters by `shop_id`, not by
    whoever runs it."""

    __tablename__ = "export_job"
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    export_no = Column(String(32), nullable=False, unique=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    kind = Column(String(16), nullable=False)
    format = Column(String(8), nullable=False, default="csv")
    filters = Column(JSON, nullable=False, default=dict)
    status = Column(String(16), nullable=False, default="queued", index=True)
    row_count = Column(Integer, nullable=True)
    # where the file lies in the storage adapter
    file_key = Column(String(128), nullable=True)
    file_size = Column(Integer, nullable=True)
    error = Column(Text, nullable=True)
    requested_by = Column(String(128), nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    finished_at = Column(UTCDateTime, nullable=True)
    shop = relationship("Shop")

    def __repr__(self) -> str:
        return self.export_no
