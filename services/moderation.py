"""Moderation: the sensitive-word filter, contact details, and sensitive images.

Words are matched by a Rust Aho-Corasick automaton (`ahocorasick-rs`) over a *normalised*
copy of the text, so evasions still match: NFKC (full-width → half-width and other
compatibility forms), lower case, traditional → simplified Chinese character by character
(zhconv's table), and every space, punctuation mark, symbol, emoji or zero-width character
dropped. One precomputed table does all of it in one `str.translate`; the position of every
kept character in the original text is computed only when something matched, so masking
and the reported offsets apply to the original text.

The automaton is rebuilt when the lists change: every change bumps `ModerationVersion` in
the same transaction, and each process compares its automaton's version with the table's on
use, so web and worker processes pick up new words without restarting.

Contact details (phone numbers, URLs, WeChat and QQ ids) that pull buyers off the platform
are found by patterns on the lightly normalised text (width and case only, positions kept).

Images: a perceptual hash (pHash, `imagehash`) per image, compared with the blocklist by
Hamming distance (`IMAGE_HASH_DISTANCE`, default 10 of 64 bits), so resized, recompressed
or slightly cropped copies still match.
"""
import re
import threading
import unicodedata
import uuid
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import select, update

from app.extensions import db
from models.review import (WORD_ACTIONS, WORD_CATEGORIES, BlockedImage, ModerationVersion,
                           SensitiveWord)
from services.errors import ConflictError, ValidationFailed

SEVERITY = {"pass": 0, "mask": 1, "review": 2, "block": 3}
CONTACT_WORDS = ("<phone>", "<url>", "<wechat>", "<qq>")
MAX_TEXT = 5000
MAX_WORD = 64


# -- normalisation ----------------------------------------------------------------------------------

def _dropped(char: str) -> bool:
    """Separators an evader puts between characters: spaces, punctuation, symbols (emoji
    included), control and format characters (zero-width ones)."""
    return unicodedata.category(char)[0] in "ZPSC"


def _build_tables() -> tuple[dict, dict]:
    """(full table, light table) for str.translate: the full one normalises for matching
    (may drop or expand a character); the light one maps width and case only, one character
    to one, so positions stay."""
    from zhconv import zhconv

    to_simplified = {k: v for k, v in zhconv.getdict("zh-hans").items()
                     if len(k) == 1 and len(v) == 1}
    full, light = {}, {}
    # the Basic Multilingual Plane, and the emoji and symbol blocks beyond it
    for code in [*range(0x20, 0x10000), *range(0x1F000, 0x1FB00), *range(0xE0000, 0xE0080)]:
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        if _dropped(char):
            full[code] = None
            continue
        folded = unicodedata.normalize("NFKC", char).lower()
        simplified = "".join(to_simplified.get(c, c) for c in folded)
        kept = "".join(c for c in simplified if not _dropped(c))
        if kept != char:
            full[code] = kept or None
        if len(folded) == 1 and folded != char:
            light[code] = folded
    for code in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF):   # zero-width: always dropped
        full[code] = None
    return full, light


_TABLES: tuple[dict, dict] | None = None
_TABLES_LOCK = threading.Lock()


def tables() -> tuple[dict, dict]:
    global _TABLES
    if _TABLES is None:
        with _TABLES_LOCK:
            if _TABLES is None:
                _TABLES = _build_tables()
    return _TABLES


def normalised(text: str) -> str:
    return text.translate(tables()[0])


def positions(text: str) -> list[int]:
    """For each character of `normalised(text)`, the index of the original character it
    came from."""
    full = tables()[0]
    found = []
    for index, char in enumerate(text):
        mapped = full.get(ord(char), char)
        if mapped:
            found.extend([index] * len(mapped))
    return found


# -- the word matcher -------------------------------------------------------------------------------

@dataclass
class Matcher:
    version: str
    words: list = field(default_factory=list)     # (word, category, action) per pattern
    automaton: object = None


_MATCHER: Matcher | None = None
_MATCHER_LOCK = threading.Lock()


def current_version() -> str:
    return db.session.scalar(select(ModerationVersion.version).where(
        ModerationVersion.id == 1)) or ""


def bump_version() -> None:
    """The lists changed (called in the changing transaction): a new token."""
    token = uuid.uuid4().hex
    bumped = db.session.execute(update(ModerationVersion).where(ModerationVersion.id == 1)
                                .values(version=token)).rowcount
    if not bumped:
        db.session.add(ModerationVersion(id=1, version=token))
        db.session.flush()


def matcher() -> Matcher:
    """This process's automaton, rebuilt when the lists' version moved on."""
    global _MATCHER
    version = current_version()
    if _MATCHER is not None and _MATCHER.version == version:
        return _MATCHER
    with _MATCHER_LOCK:
        if _MATCHER is None or _MATCHER.version != version:
            _MATCHER = _build_matcher(version)
    return _MATCHER


def _build_matcher(version: str) -> Matcher:
    import ahocorasick_rs

    rows = db.session.execute(select(SensitiveWord.word, SensitiveWord.category,
                                     SensitiveWord.action)
                              .where(SensitiveWord.enabled.is_(True))
                              .order_by(SensitiveWord.id)).all()
    patterns, words = {}, []
    for word, category, action in rows:
        key = normalised(word)
        if key and key not in patterns:
            patterns[key] = len(words)
            words.append((word, category, action))
    automaton = ahocorasick_rs.AhoCorasick(
        list(patterns), matchkind=ahocorasick_rs.MatchKind.LeftmostLongest) if patterns else None
    return Matcher(version, words, automaton)


# -- contact details --------------------------------------------------------------------------------

_GAP = r"[^0-9a-z\u4e00-\u9fff]{0,3}"
CONTACT_PATTERNS = [
    ("<url>", re.compile(r"(?:https?://|www\.)[^\s\u4e00-\u9fff，。]+|"
                         r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|cn|net|org|top|xyz|cc|io)\b")),
    ("<wechat>", re.compile(r"(?:微信|威信|薇信|v信|vx|wx|weixin|wechat)" + _GAP +
                            r"[:：号]?" + _GAP + r"[a-z][-_a-z0-9]{5,19}")),
    ("<qq>", re.compile(r"(?:qq|扣扣|企鹅)" + _GAP + r"[:：号]?" + _GAP +
                        r"[1-9](?:" + _GAP + r"[0-9]){4,10}")),
    ("<phone>", re.compile(r"(?<![0-9])1" + _GAP + r"[3-9](?:" + _GAP + r"[0-9]){9}(?![0-9])")),
]


def contact_hits(text: str) -> list[dict]:
    light = text.translate(tables()[1])
    hits, taken = [], []
    for word, pattern in CONTACT_PATTERNS:
        for found in pattern.finditer(light):
            start, end = found.span()
            if any(start < e and s < end for s, e in taken):
                continue           # a phone number inside a QQ id, a URL's digits
            taken.append((start, end))
            hits.append({"word": word, "start": start, "end": end, "category": "contact",
                         "action": contact_action()})
    return hits


def contact_action() -> str:
    return current_app.config.get("MODERATION_CONTACT_ACTION", "mask")


# -- the check ---------------------------------------------------------------------------------------

@dataclass
class Result:
    decision: str
    masked_text: str
    hits: list

    def as_dict(self) -> dict:
        return {"decision": self.decision, "masked_text": self.masked_text,
                "hits": [{k: h[k] for k in ("word", "start", "end", "category")}
                         for h in self.hits]}


def check(text) -> Result:
    """The decision for a text (the most severe hit: block > review > mask > pass), the text
    with every hit masked by `*` at its original positions, and the hits."""
    if not isinstance(text, str):
        raise ValidationFailed.field("text", "Text.")
    if len(text) > MAX_TEXT:
        raise ValidationFailed.field("text", f"At most {MAX_TEXT} characters.")
    hits = word_hits(text) + contact_hits(text)
    hits.sort(key=lambda h: (h["start"], h["end"]))
    decision = max((h["action"] for h in hits), key=SEVERITY.get, default="pass")
    return Result(decision, masked(text, hits), hits)


def word_hits(text: str) -> list[dict]:
    found = matcher()
    if found.automaton is None:
        return []
    flat = normalised(text)
    matches = found.automaton.find_matches_as_indexes(flat)
    if not matches:
        return []
    where = positions(text)
    hits = []
    for pattern, start, end in matches:
        word, category, action = found.words[pattern]
        hits.append({"word": word, "start": where[start], "end": where[end - 1] + 1,
                     "category": category, "action": action})
    return hits


def masked(text: str, hits: list[dict]) -> str:
    """Every hit's characters replaced by `*`; the separators inside a hit stay."""
    chars = list(text)
    for hit in hits:
        for index in range(hit["start"], hit["end"]):
            if not _dropped(chars[index]) or chars[index] in "@.":
                chars[index] = "*"
    return "".join(chars)


# -- the managed lists -------------------------------------------------------------------------------

def check_word(word: SensitiveWord) -> SensitiveWord:
    if not isinstance(word.word, str) or not word.word.strip() or len(word.word) > MAX_WORD:
        raise ValidationFailed.field("word", f"Text of 1 to {MAX_WORD} characters.")
    word.word = word.word.strip()
    if not normalised(word.word):
        raise ValidationFailed.field("word", "Only spaces or punctuation: nothing to match.")
    word.category = word.category or "other"
    if word.category not in WORD_CATEGORIES:
        raise ValidationFailed.field("category", f"One of: {', '.join(WORD_CATEGORIES)}.")
    word.action = word.action or "mask"
    if word.action not in WORD_ACTIONS:
        raise ValidationFailed.field("action", f"One of: {', '.join(WORD_ACTIONS)}.")
    if word.enabled is None:
        word.enabled = True
    bump_version()
    return word


# -- images ------------------------------------------------------------------------------------------

def image_hash(data: bytes) -> str:
    """The 64-bit perceptual hash of an image, as 16 hex digits."""
    import io

    import imagehash
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return str(imagehash.phash(image.convert("RGB")))
    except (UnidentifiedImageError, OSError) as error:
        raise ValidationFailed.field("file", f"Not an image: {error}") from None


def distance(first: str, second: str) -> int:
    return bin(int(first, 16) ^ int(second, 16)).count("1")


def blocked_image(data: bytes) -> BlockedImage | None:
    """The blocklist entry this image is a copy of, or None."""
    found = image_hash(data)
    limit = current_app.config.get("IMAGE_HASH_DISTANCE", 10)
    best = None
    for entry in db.session.scalars(select(BlockedImage)):
        gap = distance(found, entry.phash)
        if gap <= limit and (best is None or gap < best[0]):
            best = (gap, entry)
    return best[1] if best else None


def block_image(data: bytes, label: str, file_id: int | None = None) -> BlockedImage:
    if not isinstance(label, str) or not label.strip() or len(label) > 64:
        raise ValidationFailed.field("label", "Text of 1 to 64 characters.")
    phash = image_hash(data)
    if db.session.scalar(select(BlockedImage.id).where(BlockedImage.phash == phash)):
        raise ConflictError("This image is blocked already", {"file": ["Already blocked."]})
    entry = BlockedImage(phash=phash, label=label.strip(), file_id=file_id)
    db.session.add(entry)
    bump_version()
    db.session.flush()
    return entry
