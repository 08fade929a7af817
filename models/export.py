"""Exports: orders, settlements, stock and sales reports as CSV or Excel files, built in the
background and kept per shop."""
from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Text
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import UTCDateTime, utcnow

EXPORT_KINDS = ("orders", "settlements", "stock", "sales")
EXPORT_FORMATS = ("csv", "xlsx")
EXPORT_STATUSES = ("queued", "running", "done", "failed")


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
