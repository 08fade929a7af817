"""评价中心 rules: reviews of delivered or completed order lines by their buyer (one per line,
one follow-up), the merchant's reply, moderation in jobs, staff decisions, ratings rolled up
per SPU and shop, the default positive review when the window lapses, and buyers' feedback.

Everything written goes in `pending`; a job (`workers.review.moderate`) decides once, after
the commit: published, masked (hits masked in `masked_text`), manual review, or rejected.
Re-running the job changes nothing (only a pending item is decided).
"""
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from sqlalchemy import func, insert, select

from app.extensions import db
from app.queue import enqueue_after_commit
from models.order import Order, OrderLine, OrderStatus
from models.review import VISIBLE_STATUSES, Feedback, RatingSummary, Review
from models.storage import UploadedFile
from services import moderation
from services.actor import current_actor, is_row_id, visible_row
from services.audit import record_inserts
from services.clock import now
from services.errors import ConflictError, NotFoundError, ValidationFailed
from services.events import publish
from services.scheduler import scheduled

MAX_IMAGES = 9
MAX_TEXT = 2000
REVIEWABLE = {OrderStatus.delivered, OrderStatus.completed}
MODERATE_JOB = "workers.review.moderate"
MODERATE_FEEDBACK_JOB = "workers.review.moderate_feedback"
# what a moderation decision makes of an item
OUTCOME = {"pass": "published", "mask": "masked", "review": "manual_review",
           "block": "rejected"}
FEEDBACK_TOPICS = ("product", "service", "logistics", "app", "complaint", "other")


def _text(value, field: str = "text", required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or \
            len(value) > MAX_TEXT:
        raise ValidationFailed.field(field, f"Text of {'1' if required else '0'} to "
                                            f"{MAX_TEXT} characters.")
    return value.strip()


def _images(value) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_IMAGES or \
            not all(is_row_id(i) for i in value):
        raise ValidationFailed.field("images", f"At most {MAX_IMAGES} uploaded file ids.")
    found = set(db.session.scalars(select(UploadedFile.id).where(
        UploadedFile.id.in_(value), UploadedFile.content_type.like("image/%"))))
    missing = [i for i in value if i not in found]
    if missing:
        raise ValidationFailed.field("images", f"Not uploaded images: {missing}.")
    return list(value)


def _rating(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise ValidationFailed.field("rating", "A whole number from 1 to 5.")
    return value


def review_days() -> int:
    return current_app.config.get("REVIEW_DAYS", 15)


def post_review(order_line_id, rating, text, images=None) -> Review:
    """The buyer reviews a line of a delivered or completed order, once, within REVIEW_DAYS
    of delivery (the storefront posts for its buyer)."""
    rating, text, images = _rating(rating), _text(text), _images(images)
    line = db.session.get(OrderLine, order_line_id) if is_row_id(order_line_id) else None
    order = db.session.get(Order, line.order_id) if line else None
    if order is None:
        raise ValidationFailed.field("order_line_id", "Related record not found.")
    if OrderStatus(order.status) not in REVIEWABLE:
        raise ConflictError("Only a delivered or completed order's lines are reviewed",
                            {"status": [OrderStatus(order.status).value]})
    if order.delivered_at and order.delivered_at + timedelta(days=review_days()) < now():
        raise ConflictError("The review window has closed",
                            {"order_line_id": [f"{review_days()} days after delivery."]})
    return _written(Review(kind="review", shop_id=line.shop_id, order_id=order.id,
                           order_line_id=line.id, member_id=order.member_id,
                           spu_id=line.spu_id, sku_id=line.sku_id, rating=rating, text=text,
                           images=images))


def post_follow_up(review_id, text, images=None) -> Review:
    """追评: the buyer adds once to a review that is shown."""
    text, images = _text(text), _images(images)
    review = _visible_review(review_id)
    if review.kind != "review" or review.status not in VISIBLE_STATUSES:
        raise ConflictError("Only a shown review takes a follow-up",
                            {"status": [review.status]})
    return _written(_child(review, "follow_up", text, images))


def reply(review_id, text) -> Review:
    """The merchant (or staff) answers a shown review, once."""
    text = _text(text)
    review = _visible_review(review_id)
    if review.kind != "review" or review.status not in VISIBLE_STATUSES:
        raise ConflictError("Only a shown review takes a reply", {"status": [review.status]})
    return _written(_child(review, "reply", text, []))


def _child(review: Review, kind: str, text: str, images: list) -> Review:
    return Review(kind=kind, parent_id=review.id, shop_id=review.shop_id,
                  order_id=review.order_id, order_line_id=review.order_line_id,
                  member_id=review.member_id, spu_id=review.spu_id, sku_id=review.sku_id,
                  text=text, images=images)


def _written(item: Review) -> Review:
    """A new item, pending; its moderation job runs after the commit. A second of the same
    kind for the line is refused (409)."""
    from sqlalchemy.exc import IntegrityError

    if db.session.scalar(select(Review.id).where(Review.order_line_id == item.order_line_id,
                                                 Review.kind == item.kind)) is not None:
        raise ConflictError(f"This line has its {item.kind.replace('_', '-')} already",
                            {"order_line_id": ["Once only."]})
    item.status, item.hits, item.created_at = "pending", [], now()
    db.session.add(item)
    try:
        db.session.flush()
    except IntegrityError:     # the same line at the same moment
        db.session.rollback()
        raise ConflictError("Once only", {"order_line_id": ["Once only."]}) from None
    publish("review.posted", {"review_id": item.id, "member_id": item.member_id,
                              "kind": item.kind}, shop_id=item.shop_id)
    enqueue_after_commit(db.session, MODERATE_JOB, item.id, job_id=f"review-{item.id}")
    return item


def _visible_review(review_id) -> Review:
    review = visible_row(Review, review_id) if is_row_id(review_id) else None
    if review is None:
        raise NotFoundError("Not found")
    return review


def _review_for_update(review_id: int) -> Review | None:
    return db.session.scalars(select(Review).where(Review.id == review_id)
                              .with_for_update()).one_or_none()


def moderate(review_id: int) -> Review | None:
    """The job: decide a pending item from its text, its images and risk control, and
    commit; an item decided already is left as it is."""
    review = _review_for_update(review_id)
    if review is None or review.status != "pending":
        return review
    result = moderation.check(review.text)
    decision = result.decision
    blocked = _blocked_images(review.images)
    if blocked:
        decision = "block"
    decision = max(decision, _risk_decision(review), key=moderation.SEVERITY.get)
    review.status = OUTCOME[decision]
    review.hits = [{k: h[k] for k in ("word", "start", "end", "category", "action")}
                   for h in result.hits] + [{"image": i, "label": label}
                                           for i, label in blocked]
    review.masked_text = result.masked_text if result.hits else None
    review.decision_note = _note(decision, result, blocked)
    review.moderated_by, review.moderated_at = "moderation", now()
    _decided(review)
    db.session.commit()
    return review


def _blocked_images(image_ids: list[int]) -> list[tuple[int, str]]:
    from services.storage import open_file

    found = []
    for file_id in image_ids or []:
        record = db.session.get(UploadedFile, file_id)
        if record is None:
            continue
        with open_file(record) as handle:
            entry = moderation.blocked_image(handle.read())
        if entry is not None:
            found.append((file_id, entry.label))
    return found


def _risk_decision(review: Review) -> str:
    """Risk control's word on the author (review bursts, the same text from many accounts):
    block → rejected, review or hold → manual review."""
    from services import risk

    assessed = risk.assess("review_posted", member_id=review.member_id, text=review.text,
                           reference=f"review:{review.id}")
    return {"block": "block", "hold": "review", "review": "review"}.get(assessed.decision,
                                                                        "pass")


def _note(decision: str, result, blocked) -> str:
    if blocked:
        return "Sensitive image: " + ", ".join(label for _, label in blocked)
    words = sorted({h["word"] for h in result.hits})
    return (f"{decision}: " + ", ".join(words))[:255] if words else decision


def _decided(review: Review) -> None:
    """A decision was taken: ratings follow, subscribers hear of it."""
    db.session.flush()
    if review.kind == "review":
        roll_up(review.shop_id, review.spu_id)
    publish("review.moderated", {"review_id": review.id, "status": review.status},
            shop_id=review.shop_id)


def decide(review_id, approve: bool, reason) -> Review:
    """Staff decide an item in manual review: approved it is shown (masked when it had words
    to mask), rejected it is not."""
    reason = _text(reason, "reason")[:255]
    _visible_review(review_id)
    review = _review_for_update(review_id)
    if review.status != "manual_review":
        raise ConflictError("Only an item in manual review is decided here",
                            {"status": [review.status]})
    if approve:     # what the reviewer let through is shown; words to mask stay masked
        masks = any(hit.get("action") == "mask" for hit in review.hits)
        review.status = "masked" if masks else "published"
    else:
        review.status = "rejected"
    review.decision_note = reason
    review.moderated_by, review.moderated_at = current_actor().name, now()
    _decided(review)
    return review


def hide(review_id, reason) -> Review:
    """Staff take a shown item down, with a reason."""
    reason = _text(reason, "reason")[:255]
    _visible_review(review_id)
    review = _review_for_update(review_id)
    if review.status not in VISIBLE_STATUSES:
        raise ConflictError("Only a shown item is hidden", {"status": [review.status]})
    review.status, review.decision_note = "hidden", reason
    review.moderated_by, review.moderated_at = current_actor().name, now()
    _decided(review)
    return review


def shown_text(review: Review) -> str:
    return review.masked_text if review.status == "masked" else review.text


# -- ratings -----------------------------------------------------------------------------------------

def roll_up(shop_id: int, spu_id: int) -> None:
    """Recount the shown reviews of the SPU and of the shop (idempotent: a recount, not an
    increment)."""
    for spu in (spu_id, None):
        condition = [Review.shop_id == shop_id, Review.kind == "review",
                     Review.status.in_(VISIBLE_STATUSES)]
        if spu is not None:
            condition.append(Review.spu_id == spu)
        count, total = db.session.execute(select(func.count(), func.coalesce(
            func.sum(Review.rating), 0)).where(*condition)).one()
        summary = db.session.scalars(select(RatingSummary).where(
            RatingSummary.shop_id == shop_id, RatingSummary.spu_id.is_(None) if spu is None
            else RatingSummary.spu_id == spu)).one_or_none()
        if summary is None:
            summary = RatingSummary(shop_id=shop_id, spu_id=spu)
            db.session.add(summary)
        summary.reviews, summary.rating_total = count, int(total)
        summary.average = (Decimal(int(total)) / count).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP) if count else Decimal("0")
        summary.updated_at = now()
    db.session.flush()


@scheduled("reviews.default_positive")
def default_positive_reviews() -> int:
    """默认好评: lines of orders delivered more than REVIEW_DAYS ago without a review get a
    5-star default review (shown, counted in the ratings)."""
    deadline = now() - timedelta(days=review_days())
    lines = db.session.execute(
        select(OrderLine.id, OrderLine.shop_id, OrderLine.spu_id, OrderLine.sku_id,
               Order.id.label("order_id"), Order.member_id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(Order.status.in_([s.value for s in REVIEWABLE]),
               Order.delivered_at <= deadline,
               OrderLine.id.not_in(select(Review.order_line_id).where(
                   Review.kind == "review")))
        .order_by(OrderLine.id).limit(1000)).all()
    if not lines:
        return 0
    stamp = now()
    rows = [
        {"kind": "review", "parent_id": None, "shop_id": row.shop_id, "order_id": row.order_id,
         "order_line_id": row.id, "member_id": row.member_id, "spu_id": row.spu_id,
         "sku_id": row.sku_id, "rating": 5, "text": "", "masked_text": None, "images": [],
         "status": "published", "is_default": True, "hits": [],
         "decision_note": "default positive review", "moderated_by": "tick",
         "moderated_at": stamp, "created_at": stamp} for row in lines]
    ids = db.session.execute(insert(Review).returning(Review.id, sort_by_parameter_order=True),
                             rows).scalars().all()
    for row, review_id in zip(rows, ids):
        row["id"] = review_id
    record_inserts(db.session, Review, rows)
    for shop_id, spu_id in sorted({(row.shop_id, row.spu_id) for row in lines}):
        roll_up(shop_id, spu_id)
    db.session.commit()
    return len(lines)


# -- feedback ---------------------------------------------------------------------------------------

def post_feedback(member_id, topic, text) -> Feedback:
    from models.member import Member

    member = db.session.get(Member, member_id) if is_row_id(member_id) else None
    if member is None:
        raise ValidationFailed.field("member_id", "Related record not found.")
    topic = topic or "other"
    if topic not in FEEDBACK_TOPICS:
        raise ValidationFailed.field("topic", f"One of: {', '.join(FEEDBACK_TOPICS)}.")
    item = Feedback(member_id=member.id, topic=topic, text=_text(text), status="pending",
                    hits=[], created_at=now())
    db.session.add(item)
    db.session.flush()
    enqueue_after_commit(db.session, MODERATE_FEEDBACK_JOB, item.id,
                         job_id=f"feedback-{item.id}")
    return item


def moderate_feedback(feedback_id: int) -> Feedback | None:
    """The job: clean feedback waits for triage (`new`), with its hits masked; blocked
    feedback is rejected; feedback to review waits in manual review (committed)."""
    item = db.session.scalars(select(Feedback).where(Feedback.id == feedback_id)
                              .with_for_update()).one_or_none()
    if item is None or item.status != "pending":
        return item
    result = moderation.check(item.text)
    item.hits = result.as_dict()["hits"]
    item.masked_text = result.masked_text if result.hits else None
    item.status = {"pass": "new", "mask": "new", "review": "manual_review",
                   "block": "rejected"}[result.decision]
    db.session.commit()
    return item


def triage(feedback_id, action, note=None, queue_id=None) -> Feedback:
    """Staff turn feedback into a ticket (in `queue_id`) or close it."""
    from services import ticket

    if action not in ("ticket", "close"):
        raise ValidationFailed.field("action", "ticket or close.")
    item = db.session.get(Feedback, feedback_id) if is_row_id(feedback_id) else None
    if item is None:
        raise NotFoundError("Not found")
    if item.status not in ("new", "manual_review"):
        raise ConflictError("Only new feedback is triaged", {"status": [item.status]})
    if action == "ticket":
        made = ticket.open_ticket(queue_id, f"Feedback #{item.id} ({item.topic})",
                                  message=item.masked_text or item.text, source="complaint",
                                  member_id=item.member_id)
        item.ticket_id, item.status = made.id, "ticket"
    else:
        item.status = "closed"
    item.triage_note = _text(note, "note", required=False)[:255] or None
    return item
