"""The audit log: every write by a person or a job, kept in the same transaction as the write."""
from sqlalchemy import JSON, Column, Index, Integer, String

from app.extensions import db
from models.base import UTCDateTime, utcnow


class AuditLog(db.Model):
    """One written row: who (or which job), when, which record, what changed (old → new)."""

    __tablename__ = "audit_log"
    # Entries of a shop's records carry its id, so merchants see those of their shop only.
    shop_column = "shop_id"
    __table_args__ = (
        Index("ix_audit_log_shop_id_id", "shop_id", "id"),
        Index("ix_audit_log_model_pk", "model", "record_pk"),
    )

    id = Column(Integer, primary_key=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    actor = Column(String(128), nullable=False)
    user_id = Column(Integer, nullable=True)
    model = Column(String(64), nullable=False)
    record_pk = Column(String(64), nullable=False)
    action = Column(String(16), nullable=False)
    changes = Column(JSON, nullable=False, default=dict)
    reason = Column(String(255), nullable=True)
    shop_id = Column(Integer, nullable=True)

    def __repr__(self) -> str:
        return f"{self.action} {self.model}#{self.record_pk}"
