"""发票 invoices: a buyer asks for one per order; the shop (or the platform) issues it through an
e-invoice adapter; a refund voids it (same month) or reverses it with a red invoice."""
from sqlalchemy import CheckConstraint, Column, ForeignKey, Integer, String
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import Money, ShopOwnedMixin, UTCDateTime, utcnow

INVOICE_KINDS = ("personal", "company")
# requested → issued → voided; a red invoice (红字发票) is `issued` with a negative amount
INVOICE_STATUSES = ("requested", "issued", "voided", "cancelled")


class Invoice(ShopOwnedMixin, db.Model):
    __tablename__ = "invoice"
    __table_args__ = (CheckConstraint("amount <> 0", name="ck_invoice_amount_not_zero"),)

    id = Column(Integer, primary_key=True)
    invoice_no = Column(String(32), nullable=False, unique=True)
    order_id = Column(Integer, ForeignKey("order.id"), nullable=False, index=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, index=True)
    kind = Column(String(12), nullable=False)
    title = Column(String(128), nullable=False)          # 抬头
    tax_id = Column(String(32), nullable=True)           # 纳税人识别号 (companies)
    amount = Column(Money, nullable=False)               # negative on a red invoice
    status = Column(String(12), nullable=False, default="requested", index=True)
    reverses_id = Column(Integer, ForeignKey("invoice.id"), nullable=True, index=True)
    e_invoice_code = Column(String(64), nullable=True, unique=True)
    pdf_url = Column(String(255), nullable=True)
    requested_at = Column(UTCDateTime, nullable=False, default=utcnow)
    issued_at = Column(UTCDateTime, nullable=True)
    voided_at = Column(UTCDateTime, nullable=True)
    order = relationship("Order")

    def __repr__(self) -> str:
        return self.invoice_no
