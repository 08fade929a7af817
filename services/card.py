"""会员中心 cards (卡券): stored-value cards (储值卡, a member's, topped up) and gift cards (礼品卡,
issued with a value, bound to whoever redeems them), spent at checkout and refunded back.

Every change of a balance locks the card's row first (`SELECT … FOR UPDATE`), then writes one
ledger row with the balance after it and the card's new balance in the same transaction: the
balance is always the sum of the ledger and never below zero, whatever runs at the same time.
A ledger row is unique per (card, reason, reference), so a repeated top-up or refund with the
same reference has one effect. Card money is a liability of the platform (services/finance.py
posts it when `card.issued` / `card.topped_up` are published).
"""
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import select

from app.extensions import db
from models.card import CARD_KINDS, Card, CardLedger
from models.member import Member
from services.actor import is_row_id
from services.audit import set_reason
from services.clock import business_zone, now
from services.errors import REFERENCE_NOT_FOUND, ConflictError, NotFoundError, ValidationFailed
from services.events import publish
from services.numbering import number

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("100000.00")
STORED_VALUE, GIFT = CARD_KINDS
ACTIVE = "active"


# -- checks ------------------------------------------------------------------------------------

def parse_amount(value, field: str = "amount") -> Decimal:
    """An amount of a card change: more than 0.00, at most 100000.00, two decimals at most;
    422 naming `field` otherwise."""
    reason = "An amount such as \"100.00\": more than 0.00, at most 100000.00, two decimals."
    if isinstance(value, bool) or not isinstance(value, (Decimal, str, int)):
        raise ValidationFailed.field(field, reason)
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
        exact = amount.is_finite() and amount == amount.quantize(CENT)
    except InvalidOperation:
        exact = False
    if not exact or not Decimal("0") < amount <= MAX_AMOUNT:
        raise ValidationFailed.field(field, reason)
    return amount.quantize(CENT)


def _reference(value, field: str = "reference") -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 48:
        raise ValidationFailed.field(field, "Required text, at most 48 characters.")
    return value.strip()


def _member(member_id) -> Member:
    member = db.session.get(Member, member_id) if is_row_id(member_id) else None
    if member is None:
        raise ValidationFailed.field("member_id", REFERENCE_NOT_FOUND)
    return member


def _expiry(value) -> datetime | None:
    """A moment in the future (a time without a zone is business time), or None."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValidationFailed.field("expires_at", "A date and time (ISO 8601).")
    moment = value if value.tzinfo is not None else value.replace(tzinfo=business_zone())
    if moment <= now():
        raise ValidationFailed.field("expires_at", "In the future.")
    return moment


def ensure_usable(card: Card) -> None:
    """409 naming the field for a frozen or void card, or one past its expiry."""
    if card.status != ACTIVE:
        raise ConflictError(f"The card is {card.status}", {"status": [card.status]})
    if card.expires_at is not None and card.expires_at <= now():
        raise ConflictError("The card has expired",
                            {"expires_at": [card.expires_at.isoformat()]})


# -- locking and writing -----------------------------------------------------------------------

def card_for_update(card_id) -> Card:
    """The card row-locked and read afresh (404 when there is none)."""
    if not is_row_id(card_id):
        raise NotFoundError("Not found")
    card = db.session.scalars(select(Card).where(Card.id == card_id).with_for_update()
                              .execution_options(populate_existing=True)).one_or_none()
    if card is None:
        raise NotFoundError("Not found")
    return card


def _card_no_for_update(card_no: str) -> Card | None:
    return db.session.scalars(select(Card).where(Card.card_no == card_no).with_for_update()
                              .execution_options(populate_existing=True)).one_or_none()


def _recorded(card: Card, reason: str, reference: str) -> CardLedger | None:
    return db.session.scalars(select(CardLedger).where(
        CardLedger.card_id == card.id, CardLedger.reason == reason,
        CardLedger.reference == reference)).one_or_none()


def _write(card: Card, delta: Decimal, reason: str, reference: str) -> CardLedger:
    """One ledger row and the card's new balance (the caller holds the card's row lock)."""
    after = card.balance + delta
    if after < 0:
        raise ConflictError("Not enough on the card", {"card_no": [f"Balance {card.balance:.2f}."]})
    row = CardLedger(card_id=card.id, delta=delta, reason=reason, reference=reference,
                     balance_after=after, created_at=now())
    card.balance = after
    db.session.add(row)
    db.session.flush()
    return row


def balance_of_ledger(card_id: int) -> Decimal:
    """The sum of a card's ledger (what `Card.balance` must always equal)."""
    return sum(db.session.scalars(select(CardLedger.delta).where(CardLedger.card_id == card_id)),
               Decimal("0.00"))


# -- the operations ----------------------------------------------------------------------------

def issue(kind, amount, member_id=None, expires_at=None) -> Card:
    """A new card holding `amount`. A stored-value card belongs to a member from the start;
    a gift card may be issued unbound and bound later."""
    if kind not in CARD_KINDS:
        raise ValidationFailed.field("kind", f"One of: {', '.join(CARD_KINDS)}.")
    amount = parse_amount(amount)
    if member_id is not None:
        _member(member_id)
    elif kind == STORED_VALUE:
        raise ValidationFailed.field("member_id", "A stored-value card belongs to a member.")
    card = Card(card_no=number("CD"), kind=kind, member_id=member_id, balance=Decimal("0.00"),
                status=ACTIVE, expires_at=_expiry(expires_at), created_at=now())
    set_reason(db.session, f"Card issued with {amount:.2f}")
    db.session.add(card)
    db.session.flush()
    row = _write(card, amount, "issue", card.card_no)
    publish("card.issued", {"card_id": card.id, "ledger_id": row.id, "amount": f"{amount:.2f}"})
    return card


def top_up(card_id, amount, reference) -> CardLedger:
    """Add money to a stored-value card; the same `reference` again answers the same row
    (409 when it was used for another amount)."""
    amount, reference = parse_amount(amount), _reference(reference)
    card = card_for_update(card_id)
    if card.kind != STORED_VALUE:
        raise ConflictError("Only a stored-value card is topped up", {"kind": [card.kind]})
    done = _recorded(card, "top_up", reference)
    if done is not None:
        if done.delta != amount:
            raise ConflictError("This reference topped up another amount",
                                {"reference": [f"Used for {done.delta:.2f}."]})
        return done
    ensure_usable(card)
    set_reason(db.session, f"Top-up {reference}")
    row = _write(card, amount, "top_up", reference)
    publish("card.topped_up", {"card_id": card.id, "ledger_id": row.id,
                               "amount": f"{amount:.2f}"})
    return row


def bind(card_id, member_id) -> Card:
    """A gift card is redeemed by a member: bound to them, once (the same member again is a
    no-op; another member is 409)."""
    member = _member(member_id)
    card = card_for_update(card_id)
    if card.member_id == member.id:
        return card
    if card.member_id is not None:
        raise ConflictError("The card is bound to another member",
                            {"member_id": ["Already bound to another member."]})
    ensure_usable(card)
    set_reason(db.session, f"Card bound to member {member.id}")
    card.member_id = member.id
    db.session.flush()
    return card


def spend(card_no, member_id: int, amount: Decimal, reference: str) -> CardLedger:
    """Pay `amount` with the member's card (a trade's payment, `reference` its out_trade_no):
    all of it or nothing, under the card's row lock."""
    if not isinstance(card_no, str) or not card_no.strip() or len(card_no) > 32:
        raise ValidationFailed.field("card_no", "The card's number.")
    card = _card_no_for_update(card_no.strip())
    if card is None:
        raise ValidationFailed.field("card_no", REFERENCE_NOT_FOUND)
    if card.member_id != member_id:
        raise ConflictError("Not a card of this buyer",
                            {"card_no": ["Not a card of the trade's member."]})
    ensure_usable(card)
    if card.balance < amount:
        raise ConflictError("The card does not cover the payable", {
            "card_no": [f"Balance {card.balance:.2f}, payable {amount:.2f}."]})
    set_reason(db.session, f"Paid {reference}")
    return _write(card, -amount, "spend", reference)


def refund_spend(spend_reference: str, refund_reference: str, amount: Decimal) -> CardLedger:
    """Give back (part of) a card payment to the card it came from; the same
    `refund_reference` again answers the same row. Refunds reach the card whatever its
    status: the money is the member's."""
    spent = db.session.scalars(select(CardLedger).where(
        CardLedger.reason == "spend", CardLedger.reference == spend_reference)).one_or_none()
    if spent is None:
        raise NotFoundError("No card payment", {"out_trade_no": ["No such card payment."]})
    card = card_for_update(spent.card_id)
    done = _recorded(card, "refund", refund_reference)
    if done is not None:
        return done
    if not Decimal("0") < amount <= -spent.delta:
        raise ConflictError("More than the card payment",
                            {"amount": [f"At most {-spent.delta:.2f}."]})
    set_reason(db.session, f"Refund {refund_reference}")
    return _write(card, amount, "refund", refund_reference)


def spend_of(out_trade_no: str) -> CardLedger | None:
    return db.session.scalars(select(CardLedger).where(
        CardLedger.reason == "spend", CardLedger.reference == out_trade_no)).one_or_none()
