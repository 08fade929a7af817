"""Uploaded files: the record of each stored file (the bytes live in a storage adapter)."""
from sqlalchemy import Column, ForeignKey, Integer, String

from app.extensions import db
from models.base import UTCDateTime, utcnow


class UploadedFile(db.Model):
    """One uploaded file; a merchant's uploads belong to its shop, staff uploads to none."""

    __tablename__ = "uploaded_file"
    shop_column = "shop_id"

    id = Column(Integer, primary_key=True)
    key = Column(String(96), nullable=False, unique=True)
    original_name = Column(String(255), nullable=False)
    content_type = Column(String(64), nullable=False)
    size = Column(Integer, nullable=False)
    width = Column(Integer, nullable=True)
    height = Column(Integer, nullable=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    uploaded_by = Column(String(128), nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return self.original_name
