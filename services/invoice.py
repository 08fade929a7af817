"""发票 rules: one invoice per order (what the buyer paid, less what was refunded before it was
issued); issued through the e-invoice adapter; a refund after issue voids the invoice when it
was issued this business month, and otherwise reverses the refunded amount with a red invoice.

The e-invoice adapter (`adapter()`): issue(invoice) → (code, pdf_url), void(code). The built-in
sandbox answers at once, with codes `SBXINV…` and PDF links served nowhere.
"""
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from models.invoice import INVOICE_KINDS, Invoice
from models.order import Order, OrderStatus
from services.actor import visible_row
from services.clock import business_date, now
from services.errors import ConflictError, NotFoundError, ValidationFailed
from services.after_sale import refunded_total
from services.events import publish, subscribe
from services.numbering import number

INVOICEABLE = {OrderStatus.paid, OrderStatus.fulfilling, OrderStatus.shipped,
               OrderStatus.delivered, OrderStatus.completed}
TAX_ID = re.compile(r"^[0-9A-Z]{15,20}$")


@dataclass(frozen=True)
class Issued:
    code: str
    pdf_url: str


class SandboxEInvoice:
    def issue(self, invoice: Invoice) -> Issued:
        code = f"SBXINV{secrets.token_hex(8).upper()}"
        base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
        return Issued(code, f"{base}/sandbox/invoices/{code}.pdf")

    def void(self, code: str) -> None:
        return None


def adapter():
    return current_app.extensions.get("houtai_e_invoice") or SandboxEInvoice()


def request(order_id, kind, title, tax_id=None) -> Invoice:
    """The buyer asks for the order's invoice (one per order)."""
    target = visible_row(Order, order_id)
    if target is None:
        raise ValidationFailed.field("order_id", "Related record not found.")
    if kind not in INVOICE_KINDS:
        raise ValidationFailed.field("kind", "personal or company.")
    if not isinstance(title, str) or not title.strip() or len(title) > 128:
        raise ValidationFailed.field("title", "Required, at most 128 characters.")
    if kind == "company" and (not isinstance(tax_id, str) or not TAX_ID.match(tax_id)):
        raise ValidationFailed.field("tax_id", "A company's tax id (15 to 20 digits or "
                                               "capital letters).")
    if OrderStatus(target.status) not in INVOICEABLE:
        raise ConflictError("Only a paid order is invoiced",
                            {"order_id": [OrderStatus(target.status).value]})
    if db.session.scalar(select(Invoice.id).where(
            Invoice.order_id == target.id, Invoice.reverses_id.is_(None),
            Invoice.status.in_(["requested", "issued"]))):
        raise ConflictError("The order already has an invoice", {"order_id": ["Invoiced."]})
    amount = target.payable - refunded_total(target.id)
    if amount <= 0:
        raise ConflictError("Nothing left to invoice", {"order_id": ["Fully refunded."]})
    invoice = Invoice(invoice_no=number("INV"), shop_id=target.shop_id, order_id=target.id,
                      member_id=target.member_id, kind=kind, title=title.strip(),
                      tax_id=tax_id if kind == "company" else None, amount=amount,
                      status="requested", requested_at=now())
    db.session.add(invoice)
    db.session.flush()
    publish("invoice.requested", {"invoice_id": invoice.id}, shop_id=invoice.shop_id)
    return invoice


def _for_update(invoice_id) -> Invoice:
    if visible_row(Invoice, invoice_id) is None:
        raise NotFoundError("Not found")
    invoice = db.session.scalars(select(Invoice).where(Invoice.id == invoice_id)
                                 .with_for_update()).one()
    db.session.refresh(invoice)
    return invoice


def issue(invoice_id) -> Invoice:
    """Issue a requested invoice through the e-invoice adapter, for what is still paid."""
    invoice = _for_update(invoice_id)
    if invoice.status != "requested":
        raise ConflictError(f"Cannot issue an invoice that is {invoice.status}",
                            {"status": [invoice.status]})
    invoice.amount = invoice.order.payable - refunded_total(invoice.order_id)
    if invoice.amount <= 0:
        invoice.status = "cancelled"
        return invoice
    issued = adapter().issue(invoice)
    invoice.e_invoice_code, invoice.pdf_url = issued.code, issued.pdf_url
    invoice.status, invoice.issued_at = "issued", now()
    publish("invoice.issued", {"invoice_id": invoice.id}, shop_id=invoice.shop_id)
    return invoice


@subscribe("after_sale.refunded", "invoice.follow_refund")
def _follow_refund(payload: dict) -> None:
    """A refund on an invoiced order: an issued invoice of this business month is voided and
    issued again for what remains; an older one keeps its place and a red invoice reverses
    the refunded amount. A requested one simply waits (issue takes refunds into account)."""
    from models.after_sale import AfterSale

    request_ = db.session.get(AfterSale, payload["after_sale_id"])
    if request_ is None or request_.amount == 0:
        return
    invoice = db.session.scalars(select(Invoice).where(
        Invoice.order_id == request_.order_id, Invoice.status == "issued",
        Invoice.reverses_id.is_(None)).with_for_update()).one_or_none()
    if invoice is None:
        return
    # (the delivery of `after_sale.refunded` to this subscriber runs once)
    issued_month = business_date(invoice.issued_at).replace(day=1)
    if issued_month == business_date().replace(day=1):
        adapter().void(invoice.e_invoice_code)
        invoice.status, invoice.voided_at = "voided", now()
        publish("invoice.voided", {"invoice_id": invoice.id}, shop_id=invoice.shop_id)
        remaining = invoice.order.payable - refunded_total(invoice.order_id)
        if remaining > 0:
            again = Invoice(invoice_no=number("INV"), shop_id=invoice.shop_id,
                            order_id=invoice.order_id, member_id=invoice.member_id,
                            kind=invoice.kind, title=invoice.title, tax_id=invoice.tax_id,
                            amount=remaining, status="requested", requested_at=now())
            db.session.add(again)
            db.session.flush()
            issue(again.id)
        return
    red = Invoice(invoice_no=number("INV"), shop_id=invoice.shop_id, order_id=invoice.order_id,
                  member_id=invoice.member_id, kind=invoice.kind, title=invoice.title,
                  tax_id=invoice.tax_id, amount=-request_.amount, status="requested",
                  reverses_id=invoice.id, requested_at=now())
    db.session.add(red)
    db.session.flush()
    issued = adapter().issue(red)
    red.e_invoice_code, red.pdf_url = issued.code, issued.pdf_url
    red.status, red.issued_at = "issued", now()
    publish("invoice.reversed", {"invoice_id": invoice.id, "red_invoice_id": red.id},
            shop_id=invoice.shop_id)
