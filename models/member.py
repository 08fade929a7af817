"""会员中心 (basic): members (buyers) and their shipping addresses."""
from sqlalchemy import Boolean, Column, ForeignKey, Integer, String
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import TimestampMixin


class Member(TimestampMixin, db.Model):
    """A buyer of the platform (platform data: every shop sells to the same members)."""

    __tablename__ = "member"

    id = Column(Integer, primary_key=True)
    account = Column(String(64), nullable=False, unique=True)
    name = Column(String(64), nullable=False)
    phone = Column(String(32), nullable=True)
    # active | frozen
    status = Column(String(16), nullable=False, default="active")
    addresses = relationship("MemberAddress", back_populates="member",
                             order_by="MemberAddress.id")

    def __repr__(self) -> str:
        return self.account


class MemberAddress(TimestampMixin, db.Model):
    """A shipping address: GB/T 2260 region codes and the street detail."""

    __tablename__ = "member_address"

    id = Column(Integer, primary_key=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, index=True)
    recipient = Column(String(64), nullable=False)
    phone = Column(String(32), nullable=False)
    province_code = Column(String(6), nullable=False)
    city_code = Column(String(6), nullable=False)
    district_code = Column(String(6), nullable=False)
    detail = Column(String(255), nullable=False)
    is_default = Column(Boolean, nullable=False, default=False)
    member = relationship("Member", back_populates="addresses")

    def __repr__(self) -> str:
        return f"{self.recipient} {self.district_code}"
