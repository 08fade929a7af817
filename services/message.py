"""Messages (integrations): SMS and 站内信 (inbox messages) rendered from templates when
events happen, sent once per event and template through the channel's adapter
(services/messaging), failures retried a bounded number of times by `houtai tick`.

A template's `body` (and `title`) name fields of its event in braces, `{order_no}`; only the
fields its event offers (`TEMPLATE_EVENTS`) are accepted. A message's `dedupe_key` is
`<event id>:<template id>`: an event delivered twice sends nothing more. Sending claims the
message with a conditional update (a lease on `next_attempt_at`), commits, calls the adapter
with no transaction open, then records the outcome.
"""
import re
import secrets
from datetime import timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import select, update

from app.extensions import db
from models.message import MESSAGE_CHANNELS, Message, MessageTemplate
from services.actor import visible_row
from services.clock import now
from services.errors import NotFoundError, ValidationFailed
from services.events import Listeners, current_event, subscribe
from services.member import mask_phone
from services.scheduler import scheduled

ORDER_FIELDS = frozenset({"order_id", "order_no", "amount", "member_name", "shop_name"})
NOTICE_FIELDS = ORDER_FIELDS | {"notice_no", "carrier", "tracking_no"}
TRADE_FIELDS = frozenset({"trade_id", "trade_no", "amount", "member_name"})
AFTER_SALE_FIELDS = ORDER_FIELDS | {"after_sale_no", "refund_amount"}
REFUND_FIELDS = frozenset({"trade_no", "refund_amount", "member_name"})
# The events a template may answer, and the fields each offers to its text.
TEMPLATE_EVENTS: dict[str, frozenset] = {
    **{f"trade.{s}": TRADE_FIELDS for s in ("placed", "paid", "cancelled")},
    **{f"order.{s}": ORDER_FIELDS for s in ("paid", "cancelled", "shipped", "delivered",
                                            "completed", "closed")},
    **{f"shipping_notice.{s}": NOTICE_FIELDS for s in ("shipped", "signed")},
    "payment.refunded": REFUND_FIELDS,
    **{f"after_sale.{s}": AFTER_SALE_FIELDS for s in (
        "requested", "approved", "rejected", "return_shipped", "received", "refunding",
        "refunded", "closed")},
}
# A template without an event is sent by code (or tried with "send test"): the member only.
CODE_FIELDS = frozenset({"member_name"})
SAMPLE = {"order_id": 1001, "order_no": "O20250101000001", "amount": "198.00",
          "member_name": "李雷", "shop_name": "示例店铺", "notice_no": "N20250101000001",
          "carrier": "SF", "tracking_no": "SF1234567890", "trade_id": 1001,
          "trade_no": "T20250101000001", "after_sale_no": "AS20250101000001",
          "refund_amount": "99.00"}
CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LOCALES = ("zh", "en")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
MOBILE = re.compile(r"1[3-9][0-9]{9}")
SMS_MAX_CHARS = 500
SEND_JOB = "workers.message.send_message"
SUBSCRIBER = "message.from_templates"
RETRY_BASE_SECONDS = 60
RETRY_BATCH = 200


# -- templates ----------------------------------------------------------------------------------

def fields_of(event_name: str | None) -> frozenset:
    return TEMPLATE_EVENTS.get(event_name, CODE_FIELDS) if event_name else CODE_FIELDS


def placeholders(text: str | None) -> list[str]:
    return PLACEHOLDER.findall(text or "")


def _text(value, limit: int, required: bool = False) -> str | None:
    value = value.strip() if isinstance(value, str) else value
    if value in (None, ""):
        if required:
            raise ValueError("Required.")
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError(f"At most {limit} characters.")
    return value


def check_template(item: MessageTemplate) -> MessageTemplate:
    """The fields of a template (screens and REST), every error at once: a known channel,
    locale and event; only the event's fields in braces; (code, channel, locale) unique."""
    errors = {}
    if not isinstance(item.code, str) or not CODE.fullmatch(item.code.strip()):
        errors["code"] = ["Letters, digits, _ . - (at most 64), starting with a letter or digit."]
    if item.channel not in MESSAGE_CHANNELS:
        errors["channel"] = [f"One of {', '.join(MESSAGE_CHANNELS)}."]
    item.locale = item.locale or "zh"
    if item.locale not in LOCALES:
        errors["locale"] = [f"One of {', '.join(LOCALES)}."]
    if item.event_name in ("", None):
        item.event_name = None
    elif item.event_name not in TEMPLATE_EVENTS:
        errors["event_name"] = [f"One of {', '.join(TEMPLATE_EVENTS)}, or none."]
    for field, limit, required in (("title", 128, False), ("body", 4000, True),
                                   ("provider_template", 64, False)):
        try:
            setattr(item, field, _text(getattr(item, field), limit, required))
        except ValueError as err:
            errors[field] = [str(err)]
    if item.channel == "sms" and isinstance(item.body, str) and len(item.body) > SMS_MAX_CHARS:
        errors["body"] = [f"An SMS has at most {SMS_MAX_CHARS} characters."]
    known = fields_of(item.event_name if "event_name" not in errors else None)
    for field in ("title", "body"):
        unknown = [p for p in placeholders(getattr(item, field)) if p not in known]
        if unknown and field not in errors:
            errors[field] = [f"Unknown fields {', '.join('{' + p + '}' for p in unknown)}; "
                             f"this event offers {', '.join(sorted(known))}."]
    if item.enabled is None:
        item.enabled = True
    elif not isinstance(item.enabled, bool):
        errors["enabled"] = ["true or false."]
    if not errors:
        item.code = item.code.strip()
        clash = select(MessageTemplate.id).where(
            MessageTemplate.code == item.code, MessageTemplate.channel == item.channel,
            MessageTemplate.locale == item.locale)
        if item.id is not None:
            clash = clash.where(MessageTemplate.id != item.id)
        with db.session.no_autoflush:
            if db.session.execute(clash.limit(1)).first() is not None:
                errors["code"] = ["A template with this code, channel and locale exists."]
    if errors:
        raise ValidationFailed("Validation failed", errors)
    return item


def render(text: str | None, context: dict) -> str | None:
    """The text with each {field} replaced by its value (an absent value: empty)."""
    if text is None:
        return None
    return PLACEHOLDER.sub(lambda m: _shown(context.get(m.group(1))), text)


def _shown(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return str(value)


# -- what an event tells a template ---------------------------------------------------------------

def context_for(payload: dict) -> tuple[dict, object]:
    """The fields of an event's records (order, notice, trade, after-sales, refund) and the
    member the message goes to."""
    from models.after_sale import AfterSale
    from models.member import Member
    from models.order import Order, ShippingNotice, Trade
    from models.payment import Payment, PaymentRefund
    from models.shop import Shop

    context, order_id, trade_id, member_id = {}, payload.get("order_id"), \
        payload.get("trade_id"), None
    if payload.get("after_sale_id"):
        after = db.session.get(AfterSale, payload["after_sale_id"])
        if after is not None:
            context.update(after_sale_no=after.after_sale_no, refund_amount=after.amount)
            order_id = order_id or after.order_id
    if payload.get("notice_id"):
        notice = db.session.get(ShippingNotice, payload["notice_id"])
        if notice is not None:
            context.update(notice_no=notice.notice_no, carrier=notice.carrier,
                           tracking_no=notice.tracking_no)
            order_id = order_id or notice.order_id
    if payload.get("refund_id"):
        refund = db.session.get(PaymentRefund, payload["refund_id"])
        if refund is not None:
            context["refund_amount"] = refund.amount
            trade_id = trade_id or db.session.get(Payment, refund.payment_id).trade_id
    if order_id:
        order = db.session.get(Order, order_id)
        if order is not None:
            shop = db.session.get(Shop, order.shop_id)
            context.update(order_id=order.id, order_no=order.order_no, amount=order.payable,
                           shop_name=shop.name if shop else None)
            member_id = order.member_id
    if trade_id and not order_id:
        trade = db.session.get(Trade, trade_id)
        if trade is not None:
            context.update(trade_id=trade.id, trade_no=trade.trade_no, amount=trade.payable)
            member_id = trade.member_id
    member = db.session.get(Member, member_id) if member_id else None
    if member is not None:
        context["member_name"] = member.name
    return context, member


def _from_templates(payload: dict) -> None:
    """Each enabled template of the running event: one message, never a second."""
    event = current_event()
    if event is None:
        return
    templates = db.session.scalars(select(MessageTemplate).where(
        MessageTemplate.event_name == event.name, MessageTemplate.enabled.is_(True))
        .order_by(MessageTemplate.id)).all()
    if not templates:
        return
    context, member = context_for(payload)
    for template in templates:
        key = f"{event.id}:{template.id}"
        if db.session.scalar(select(Message.id).where(Message.dedupe_key == key)) is None:
            queue(template, context, member, event.shop_id, key)


_templates = Listeners(MessageTemplate, lambda: db.session.scalars(
    select(MessageTemplate.event_name).where(MessageTemplate.enabled.is_(True))).all())


def _wanted(name: str, shop_id: int | None) -> bool:
    """Whether an enabled template is sent on `name`."""
    return name in _templates.current()


for _name in TEMPLATE_EVENTS:
    subscribe(_name, SUBSCRIBER, wanted=_wanted)(_from_templates)


# -- messages -----------------------------------------------------------------------------------

def queue(template: MessageTemplate, context: dict, member, shop_id, dedupe_key: str,
          mobile: str | None = None) -> Message:
    """A message rendered from the template for the member (an SMS to `mobile`, else to the
    member's phone). A 站内信 is delivered at once; an SMS goes to its adapter after the
    commit. A message with nobody to go to is recorded as failed."""
    from app.queue import enqueue_after_commit

    stamp = now()
    recipient = (mobile or (member.phone if member else None)) if template.channel == "sms" \
        else (member.account if member else None)
    message = Message(template_id=template.id, shop_id=shop_id,
                      member_id=member.id if member else None, channel=template.channel,
                      recipient=recipient, title=render(template.title, context),
                      body=render(template.body, context), status="queued", attempts=0,
                      dedupe_key=dedupe_key, created_at=stamp, next_attempt_at=stamp)
    db.session.add(message)
    if not recipient:
        message.status, message.error = "failed", "No recipient (no member, or no mobile)."
    elif template.channel == "inbox":
        message.attempts, message.status, message.sent_at = 1, "sent", stamp
        message.provider_ref = "inbox"
    db.session.flush()
    if message.status == "queued":
        enqueue_after_commit(db.session, SEND_JOB, message.id)
    return message


def max_attempts() -> int:
    return current_app.config.get("MESSAGE_MAX_ATTEMPTS", 5)


def claim(message_id: int) -> tuple[int, str, str, str | None, str | None] | None:
    """Take a queued, due message for one attempt (one sender wins), held for a minute.
    Commits. (attempt, channel, recipient, body, provider template) or None."""
    stamp = now()
    attempt = db.session.execute(
        update(Message).where(Message.id == message_id, Message.status == "queued",
                              Message.next_attempt_at <= stamp)
        .values(attempts=Message.attempts + 1, next_attempt_at=stamp + timedelta(seconds=60))
        .returning(Message.attempts).execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if attempt is None:
        db.session.rollback()
        return None
    message = db.session.get(Message, message_id)
    template = db.session.get(MessageTemplate, message.template_id) if message.template_id \
        else None
    found = (attempt, message.channel, message.recipient, message.body,
             template.provider_template if template else None)
    db.session.commit()
    return found


def send(message_id: int) -> str | None:
    """Claim → commit → adapter → record. The message's status after this attempt, or None
    when it is not queued, not due, or another sender has it."""
    from services import messaging

    claimed = claim(message_id)
    if claimed is None:
        return None
    attempt, channel, recipient, body, provider_template = claimed
    try:
        reference, error = messaging.adapter(channel).send(recipient, body,
                                                           provider_template), None
    except Exception as exc:  # noqa: BLE001 - any refusal of the provider is retried
        reference, error = None, f"{type(exc).__name__}: {exc}"
    stamp = now()
    if error is None:
        values = {"status": "sent", "provider_ref": str(reference)[:64], "sent_at": stamp,
                  "error": None}
    elif attempt >= max_attempts():
        values = {"status": "failed", "error": error[-2000:]}
    else:
        values = {"error": error[-2000:],
                  "next_attempt_at": stamp + timedelta(
                      seconds=RETRY_BASE_SECONDS * 2 ** (attempt - 1))}
    status = db.session.execute(
        update(Message).where(Message.id == message_id, Message.attempts == attempt,
                              Message.status == "queued")
        .values(**values).returning(Message.status)
        .execution_options(synchronize_session=False)).scalar_one_or_none()
    db.session.commit()
    return status


@scheduled("messages.retry")
def retry_due() -> int:
    """Hand every queued message that is due (a retry, or one whose job was lost) to the
    queue; each is tried at most MESSAGE_MAX_ATTEMPTS times."""
    from app.queue import enqueue_now

    ids = db.session.scalars(select(Message.id).where(
        Message.status == "queued", Message.next_attempt_at <= now())
        .order_by(Message.next_attempt_at, Message.id).limit(RETRY_BATCH)).all()
    db.session.rollback()
    for message_id in ids:
        enqueue_now(SEND_JOB, message_id)
    return len(ids)


def send_test(template_id, mobile=None, member_id=None) -> Message:
    """The template rendered with sample values, sent to a mobile number (SMS) or a member
    (站内信, or SMS to the member's phone)."""
    from models.member import Member

    template = db.session.get(MessageTemplate, template_id) \
        if isinstance(template_id, int) else None
    if template is None:
        raise NotFoundError("Not found")
    member = visible_row(Member, member_id) if member_id is not None else None
    if member_id is not None and member is None:
        raise ValidationFailed.field("member_id", "No such member.")
    if mobile is not None and (not isinstance(mobile, str) or not MOBILE.fullmatch(mobile)):
        raise ValidationFailed.field("mobile", "An 11-digit mainland mobile number.")
    if template.channel == "sms" and not mobile and not (member and member.phone):
        raise ValidationFailed.field("mobile", "Required for an SMS (or a member with a phone).")
    if template.channel == "inbox" and member is None:
        raise ValidationFailed.field("member_id", "Required for a 站内信.")
    context = {**SAMPLE, **({"member_name": member.name} if member else {})}
    return queue(template, context, member, None, f"test:{template.id}:{secrets.token_hex(8)}",
                 mobile=mobile)


def mark_read(message_id, member_id) -> Message:
    """The member read a 站内信 (once; reading again changes nothing)."""
    message = visible_row(Message, message_id)
    if message is None or message.channel != "inbox" or message.member_id != member_id:
        raise NotFoundError("Not found")
    if message.read_at is None:
        message.read_at = now()
    return message


def masked_recipient(message_or_channel, recipient=None) -> str | None:
    """Mobile numbers as 138****5678 on every screen and answer."""
    channel = getattr(message_or_channel, "channel", message_or_channel)
    recipient = getattr(message_or_channel, "recipient", recipient)
    return mask_phone(recipient) if channel == "sms" else recipient
