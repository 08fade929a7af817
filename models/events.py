"""The outbox: domain events recorded with the change, and one delivery per subscriber."""
from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import UTCDateTime, utcnow


class OutboxEvent(db.Model):
    """A domain event (`order.paid`, ...) written in the same transaction as its cause."""

    __tablename__ = "outbox_event"

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False, index=True)
    payload = Column(JSON, nullable=False, default=dict)
    shop_id = Column(Integer, nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    deliveries = relationship("EventDelivery", back_populates="event", order_by="EventDelivery.id")

    def __repr__(self) -> str:
        return f"{self.name} #{self.id}"


DELIVERY_STATUS_LABELS = {"pending": _l("Pending"), "retrying": _l("Retrying"),
                          "done": _l("Done"), "failed": _l("Failed")}


class EventDelivery(db.Model):
    """One subscriber's handling of one event: its idempotency marker and its retry state."""

    __tablename__ = "event_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "subscriber", name="uq_event_delivery_event_subscriber"),
        Index("ix_event_delivery_status_due", "status", "next_attempt_at"),
    )

    id = Column(Integer, primary_key=True)
    event_id = Column(Integer, ForeignKey("outbox_event.id"), nullable=False)
    subscriber = Column(String(128), nullable=False)
    # pending → done, or pending → retrying → ... → failed (visible in the failed list)
    status = Column(String(16), nullable=False, default="pending")
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(UTCDateTime, nullable=False, default=utcnow)
    last_error = Column(Text, nullable=True)
    done_at = Column(UTCDateTime, nullable=True)
    event = relationship("OutboxEvent", back_populates="deliveries")

    def __repr__(self) -> str:
        return f"{self.subscriber} ← event #{self.event_id}"
