"""运营中心 storefront page configuration: the rules a banner, icon-navigation entry or tab
must meet to be saved, and the public read of what is live now.

The read is cached and the cache is never wrong for longer than an instant:
- any committed change to a slot bumps a generation number (in Redis when REDIS_URL is set,
  so every web process sees it; in the process otherwise), and cached answers are keyed by
  generation, platform, position and kind;
- an answer is kept only until the next schedule boundary of the rows it was made from (the
  earliest `starts_at`/`ends_at` after now), so a slot goes live or ends at its time without
  any change, and at most STOREFRONT_CACHE_SECONDS;
- boundaries are judged by services.clock, so they follow a clock set by tests or `tick`.
"""
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from sqlalchemy import event as sa_event
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, object_session

from app.extensions import db
from models.product import Spu
from models.storage import UploadedFile
from models.storefront import LINK_TYPES, PLATFORMS, SLOT_KINDS, StorefrontSlot
from services import clock
from services.actor import is_row_id
from services.errors import REFERENCE_NOT_FOUND, ValidationFailed

log = logging.getLogger(__name__)

CODE = re.compile(r"^[a-z0-9_]{1,32}$")
ZONE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
KINDS_WITH_IMAGE = ("banner", "icon")
MAX_SORT_ORDER = 1_000_000
REDIS_PREFIX = "houtai:storefront:"
IMAGE_PATH = "/api/v1/storefront/images/{id}"


# -- the rules of a slot ---------------------------------------------------------------------

def check_slot(slot: StorefrontSlot) -> StorefrontSlot:
    """What a slot must say to be saved (normalised in place): 422 naming the field."""
    if slot.kind not in SLOT_KINDS:
        raise ValidationFailed.field("kind", f"One of: {', '.join(SLOT_KINDS)}.")
    slot.position = _text(slot.position, "position")
    if not CODE.match(slot.position):
        raise ValidationFailed.field(
            "position", "A code of 1 to 32 lowercase letters, digits or _ (e.g. home_top).")
    slot.title = _text(slot.title, "title")
    if len(slot.title) > 64:
        raise ValidationFailed.field("title", "At most 64 characters.")
    _check_link(slot)
    _check_image(slot)
    _check_window(slot)
    if slot.sort_order is None:
        slot.sort_order = 0
    if isinstance(slot.sort_order, bool) or not isinstance(slot.sort_order, int) \
            or abs(slot.sort_order) > MAX_SORT_ORDER:
        raise ValidationFailed.field("sort_order",
                                     f"A whole number from -{MAX_SORT_ORDER} to {MAX_SORT_ORDER}.")
    slot.platforms = check_platforms(slot.platforms)
    if slot.enabled is None:
        slot.enabled = True
    if not isinstance(slot.enabled, bool):
        raise ValidationFailed.field("enabled", "true or false.")
    return slot


def _text(value, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed.field(field, "Required.")
    if not value.isprintable():
        raise ValidationFailed.field(field, "Printable characters only.")
    return value.strip()


def _check_link(slot: StorefrontSlot) -> None:
    slot.link_type = slot.link_type or "none"
    if slot.link_type not in LINK_TYPES:
        raise ValidationFailed.field("link_type", f"One of: {', '.join(LINK_TYPES)}.")
    value = slot.link_value.strip() if isinstance(slot.link_value, str) else slot.link_value
    if slot.link_type == "none":
        slot.link_value = None
        return
    if value is None or value == "":
        raise ValidationFailed.field("link_value", f"Required for a {slot.link_type} link.")
    if not isinstance(value, str):
        raise ValidationFailed.field("link_value", "Text.")
    if slot.link_type == "spu":
        if not (value.isascii() and value.isdigit() and is_row_id(int(value))) or \
                db.session.get(Spu, int(value)) is None:
            raise ValidationFailed.field("link_value", "The id of an existing SPU.")
        value = str(int(value))
    elif slot.link_type == "zone" and not ZONE_CODE.match(value):
        raise ValidationFailed.field("link_value",
                                     "A zone code of 1 to 32 letters, digits, _ or -.")
    elif slot.link_type == "url" and not is_web_url(value):
        raise ValidationFailed.field("link_value", "An absolute http(s) URL.")
    slot.link_value = value


def is_web_url(value) -> bool:
    """An absolute http(s) URL with a host, of at most 512 printable characters."""
    if not isinstance(value, str) or len(value) > 512 or not value.isprintable() or " " in value:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _check_image(slot: StorefrontSlot) -> None:
    url = slot.image_url.strip() if isinstance(slot.image_url, str) else slot.image_url
    slot.image_url = url or None
    if slot.image_id is not None and slot.image_url is not None:
        raise ValidationFailed.field("image_url",
                                     "Either an uploaded image or an image URL, not both.")
    if slot.image_id is not None:
        record = db.session.get(UploadedFile, slot.image_id) if is_row_id(slot.image_id) \
            else None
        if record is None:
            raise ValidationFailed.field("image_id", REFERENCE_NOT_FOUND)
        if not (record.content_type or "").startswith("image/"):
            raise ValidationFailed.field("image_id", "Not an image.")
        slot.image = record
    else:
        slot.image = None
    if slot.image_url is not None and not is_web_url(slot.image_url):
        raise ValidationFailed.field("image_url", "An absolute http(s) URL.")
    if slot.kind in KINDS_WITH_IMAGE and slot.image_id is None and slot.image_url is None:
        raise ValidationFailed.field("image_id",
                                     f"A {slot.kind} needs an image: an uploaded image or an "
                                     "image URL.")


def _check_window(slot: StorefrontSlot) -> None:
    for field in ("starts_at", "ends_at"):
        if getattr(slot, field) is not None and not isinstance(getattr(slot, field), datetime):
            raise ValidationFailed.field(field, "A time.")
    if slot.starts_at is not None and slot.ends_at is not None and \
            _aware(slot.ends_at) <= _aware(slot.starts_at):
        raise ValidationFailed.field("ends_at", "Must be after starts_at.")


def _aware(moment: datetime) -> datetime:
    """A time as stored: a naive one was typed in the business zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=clock.business_zone())


def check_platforms(platforms) -> list[str]:
    """A subset of PLATFORMS, in their order, without repeats; None or empty: all."""
    if platforms is None:
        return []
    if not isinstance(platforms, list) or not all(isinstance(p, str) for p in platforms) \
            or set(platforms) - set(PLATFORMS):
        raise ValidationFailed.field("platforms",
                                     f"A list of: {', '.join(PLATFORMS)} (empty: all).")
    return [p for p in PLATFORMS if p in platforms]


# -- the public read -------------------------------------------------------------------------

@dataclass(frozen=True)
class LiveAnswer:
    """What is live now on a platform, with its entity tag and how long it stays right."""

    slots: list
    etag: str
    made_at: datetime
    valid_until: datetime

    def max_age(self) -> int:
        """Seconds a client may keep the answer: until the next boundary, at most the
        configured cache time."""
        left = (self.valid_until - clock.now()).total_seconds()
        return max(0, min(int(left), _cache_seconds()))


def check_query(platform, position=None, kind=None) -> None:
    if platform not in PLATFORMS:
        raise ValidationFailed.field("platform", f"One of: {', '.join(PLATFORMS)}.")
    if position is not None and not (isinstance(position, str) and CODE.match(position)):
        raise ValidationFailed.field("position", "A position code (e.g. home_top).")
    if kind is not None and kind not in SLOT_KINDS:
        raise ValidationFailed.field("kind", f"One of: {', '.join(SLOT_KINDS)}.")


def live_slots(platform: str, position: str | None = None, kind: str | None = None) -> list:
    """The slots live now on `platform` (optionally at one position, of one kind), ordered
    by position, sort order and id, as the public endpoint answers them."""
    return live_answer(platform, position, kind).slots


def live_answer(platform: str, position: str | None = None,
                kind: str | None = None) -> LiveAnswer:
    """`live_slots` with its entity tag and lifetime, from the cache when it is right."""
    check_query(platform, position, kind)
    now = clock.now()
    cache = _cache()
    generation = cache.generation()
    key = f"{generation}:{platform}:{position or ''}:{kind or ''}"
    kept = cache.get(key)
    if kept is not None and kept.made_at <= now < kept.valid_until:
        return kept
    answer = _read_live(platform, position, kind, now)
    if _cache_seconds():
        cache.put(key, answer)
    return answer


def _read_live(platform, position, kind, now: datetime) -> LiveAnswer:
    """One statement: the enabled rows concerned that have not ended; the live ones are
    answered, the others only tell when the answer changes."""
    table = StorefrontSlot.__table__
    query = select(table.c.id, table.c.kind, table.c.position, table.c.title,
                   table.c.image_id, table.c.image_url, table.c.link_type, table.c.link_value,
                   table.c.starts_at, table.c.ends_at, table.c.sort_order, table.c.platforms) \
        .where(table.c.enabled.is_(True), or_(table.c.ends_at.is_(None), table.c.ends_at > now)) \
        .order_by(table.c.position, table.c.sort_order, table.c.id)
    if position is not None:
        query = query.where(table.c.position == position)
    if kind is not None:
        query = query.where(table.c.kind == kind)
    rows = db.session.execute(query).all()
    valid_until = now + timedelta(seconds=_cache_seconds())
    slots = []
    for row in rows:
        if row.platforms and platform not in row.platforms:
            continue
        for boundary in (row.starts_at, row.ends_at):
            if boundary is not None and boundary > now:
                valid_until = min(valid_until, boundary)
        if row.starts_at is None or row.starts_at <= now:
            slots.append(_public(row))
    etag = hashlib.sha256(json.dumps([platform, slots], sort_keys=True).encode()) \
        .hexdigest()[:32]
    return LiveAnswer(slots, f'"{etag}"', now, valid_until)


def _public(row) -> dict:
    image = image_url(row.image_id) if row.image_id is not None else row.image_url
    return {"id": row.id, "kind": row.kind, "position": row.position, "title": row.title,
            "image_url": image, "link": {"type": row.link_type, "value": row.link_value},
            "sort_order": row.sort_order,
            "starts_at": row.starts_at.isoformat() if row.starts_at else None,
            "ends_at": row.ends_at.isoformat() if row.ends_at else None}


def image_url(image_id: int) -> str:
    """The public address of a slot's uploaded image (served while an enabled slot uses it)."""
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + IMAGE_PATH.format(id=image_id)


def public_image(image_id: int) -> UploadedFile | None:
    """An uploaded image that an enabled slot shows (None otherwise: uploads are private)."""
    if not is_row_id(image_id):
        return None
    used = db.session.execute(
        select(StorefrontSlot.id).where(StorefrontSlot.image_id == image_id,
                                        StorefrontSlot.enabled.is_(True)).limit(1)).first()
    return db.session.get(UploadedFile, image_id) if used is not None else None


def _cache_seconds() -> int:
    return current_app.config.get("STOREFRONT_CACHE_SECONDS", 30)


# -- the cache: in Redis when there is one, else in the process ------------------------------

class _LocalCache:
    """One process's answers (no Redis: a single web process)."""

    def __init__(self):
        self.number = 0
        self.answers: dict[str, LiveAnswer] = {}

    def generation(self) -> int:
        return self.number

    def get(self, key: str) -> LiveAnswer | None:
        return self.answers.get(key)

    def put(self, key: str, answer: LiveAnswer) -> None:
        if len(self.answers) > 1000:
            self.answers.clear()
        self.answers[key] = answer

    def bump(self) -> None:
        self.number += 1
        self.answers.clear()


class _RedisCache:
    """Answers shared by every process: a generation key bumped on change, answers keyed by
    generation and expiring after STOREFRONT_CACHE_SECONDS. Redis out of reach: no cache."""

    def __init__(self, connection):
        self.redis = connection

    def generation(self) -> str | None:
        try:
            value = self.redis.get(REDIS_PREFIX + "generation")
        except Exception as exc:  # noqa: BLE001 - any Redis failure: read the database
            log.warning("storefront cache: Redis unavailable: %s", exc)
            return None
        return (value or b"0").decode()

    def get(self, key: str) -> LiveAnswer | None:
        if key.startswith("None:"):
            return None
        try:
            raw = self.redis.get(REDIS_PREFIX + "answer:" + key)
        except Exception as exc:  # noqa: BLE001
            log.warning("storefront cache: Redis unavailable: %s", exc)
            return None
        if raw is None:
            return None
        kept = json.loads(raw)
        return LiveAnswer(kept["slots"], kept["etag"], datetime.fromisoformat(kept["made_at"]),
                          datetime.fromisoformat(kept["valid_until"]))

    def put(self, key: str, answer: LiveAnswer) -> None:
        if key.startswith("None:"):
            return
        payload = json.dumps({"slots": answer.slots, "etag": answer.etag,
                              "made_at": answer.made_at.isoformat(),
                              "valid_until": answer.valid_until.isoformat()})
        try:
            self.redis.set(REDIS_PREFIX + "answer:" + key, payload, ex=max(1, _cache_seconds()))
        except Exception as exc:  # noqa: BLE001
            log.warning("storefront cache: Redis unavailable: %s", exc)

    def bump(self) -> None:
        try:
            self.redis.incr(REDIS_PREFIX + "generation")
        except Exception as exc:  # noqa: BLE001
            log.error("storefront cache: could not invalidate (Redis): %s", exc)


def _local() -> _LocalCache:
    return current_app.extensions.setdefault("houtai_storefront_cache", _LocalCache())


def _cache():
    from app.queue import redis_connection

    connection = redis_connection()
    return _RedisCache(connection) if connection is not None else _local()


def forget_slots() -> None:
    """Drop every cached answer (a new generation), e.g. after tables were emptied."""
    if has_app_context():
        _local().bump()
        cache = _cache()
        if isinstance(cache, _RedisCache):
            cache.bump()


# Any committed change to a slot makes a new generation (after the commit, so no process
# can cache what is about to be rolled back, nor keep what was there before).
CHANGED = "houtai_storefront_changed"


@sa_event.listens_for(StorefrontSlot, "after_insert")
@sa_event.listens_for(StorefrontSlot, "after_update")
@sa_event.listens_for(StorefrontSlot, "after_delete")
def _mark_changed(_mapper, _connection, target) -> None:
    session = object_session(target)
    if session is not None:
        session.info[CHANGED] = True


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session) -> None:
    if session.info.pop(CHANGED, False):
        forget_slots()


@sa_event.listens_for(Session, "after_rollback")
def _after_rollback(session) -> None:
    session.info.pop(CHANGED, None)
