"""Webhooks: storefronts and ERPs told of status changes of trades, orders, shipments and
refunds, by signed and retried POSTs, each one logged."""
from sqlalchemy import (JSON, Boolean, Column, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import TimestampMixin, UTCDateTime, utcnow

WEBHOOK_DELIVERY_STATUSES = ("pending", "retrying", "succeeded", "failed")


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

    def request_body(self) -> str:
        """The JSON body the receiver gets (shown in the deliveries log)."""
        from services.webhook import request_body

        return request_body(self).decode()
