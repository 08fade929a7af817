"""评价中心: reviews of bought order lines (with follow-ups and the merchant's replies), their
moderation, the sensitive-word and sensitive-image lists, ratings rolled up per SPU and shop,
and buyers' feedback."""
from sqlalchemy import (JSON, Boolean, CheckConstraint, Column, ForeignKey, Integer, Numeric,
                        String, Text, UniqueConstraint)

from app.extensions import db
from models.base import UTCDateTime, utcnow

WORD_ACTIONS = ("block", "review", "mask")
WORD_CATEGORIES = ("politics", "abuse", "porn", "ads", "contact", "fraud", "other")
REVIEW_STATUSES = ("pending", "published", "masked", "manual_review", "rejected", "hidden")
REVIEW_KINDS = ("review", "follow_up", "reply")
# what buyers (and the storefront) see
VISIBLE_STATUSES = ("published", "masked")


class SensitiveWord(db.Model):
    """A word of the managed lists: its category and what a hit does."""

    __tablename__ = "sensitive_word"

    id = Column(Integer, primary_key=True)
    word = Column(String(64), nullable=False, unique=True)
    category = Column(String(16), nullable=False, default="other")
    action = Column(String(8), nullable=False, default="mask")
    enabled = Column(Boolean, nullable=False, default=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return self.word


class BlockedImage(db.Model):
    """A sensitive image, kept as its perceptual hash (64 bits, hex): a resized, recompressed
    or slightly cropped copy still matches within the configured distance."""

    __tablename__ = "blocked_image"

    id = Column(Integer, primary_key=True)
    phash = Column(String(16), nullable=False, unique=True)
    label = Column(String(64), nullable=False)
    file_id = Column(Integer, ForeignKey("uploaded_file.id"), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return self.label


class ModerationVersion(db.Model):
    """One row: a new random token whenever the word or image lists change, so every process
    rebuilds its matcher on its next use without restarting (a token, not a counter, so a
    restored or emptied table never brings back a version a process has cached)."""

    __tablename__ = "moderation_version"

    id = Column(Integer, primary_key=True)
    version = Column(String(32), nullable=False)


class Review(db.Model):
    """A buyer's review of one order line (`kind` review), its one follow-up (follow_up) or
    the merchant's reply (reply, `parent_id` the review). Each goes through moderation:
    pending until its job decides."""

    __tablename__ = "review"
    shop_column = "shop_id"
    __table_args__ = (
        UniqueConstraint("order_line_id", "kind", name="uq_review_line_kind"),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)",
                        name="ck_review_rating"),
    )

    id = Column(Integer, primary_key=True)
    kind = Column(String(12), nullable=False, default="review")
    parent_id = Column(Integer, ForeignKey("review.id"), nullable=True, index=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=False, index=True)
    order_id = Column(Integer, ForeignKey("order.id"), nullable=False, index=True)
    order_line_id = Column(Integer, ForeignKey("order_line.id"), nullable=False, index=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, index=True)
    spu_id = Column(Integer, nullable=False, index=True)
    sku_id = Column(Integer, nullable=False)
    rating = Column(Integer, nullable=True)              # reviews only, 1–5
    text = Column(Text, nullable=False, default="")
    masked_text = Column(Text, nullable=True)            # what is shown when masked
    images = Column(JSON, nullable=False, default=list)  # uploaded file ids
    status = Column(String(16), nullable=False, default="pending", index=True)
    is_default = Column(Boolean, nullable=False, default=False)   # 默认好评
    hits = Column(JSON, nullable=False, default=list)
    decision_note = Column(String(255), nullable=True)   # why: the job's or a person's
    moderated_by = Column(String(128), nullable=True)
    moderated_at = Column(UTCDateTime, nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow, index=True)


class RatingSummary(db.Model):
    """Published ratings rolled up per SPU (`spu_id`) or per shop (`spu_id` null)."""

    __tablename__ = "rating_summary"
    shop_column = "shop_id"
    __table_args__ = (UniqueConstraint("shop_id", "spu_id", name="uq_rating_summary"),)

    id = Column(Integer, primary_key=True)
    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=False, index=True)
    spu_id = Column(Integer, nullable=True)
    reviews = Column(Integer, nullable=False, default=0)
    rating_total = Column(Integer, nullable=False, default=0)
    average = Column(Numeric(3, 2), nullable=False, default=0)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow)


class Feedback(db.Model):
    """用户反馈: what a buyer tells the platform outside reviews; moderated like reviews, then
    triaged by staff into a ticket or closed."""

    __tablename__ = "feedback"

    id = Column(Integer, primary_key=True)
    member_id = Column(Integer, ForeignKey("member.id"), nullable=False, index=True)
    topic = Column(String(16), nullable=False, default="other")
    text = Column(Text, nullable=False)
    masked_text = Column(Text, nullable=True)
    status = Column(String(16), nullable=False, default="pending", index=True)
    hits = Column(JSON, nullable=False, default=list)
    ticket_id = Column(Integer, ForeignKey("ticket.id"), nullable=True)
    triage_note = Column(String(255), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
