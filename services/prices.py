"""运营中心 price management: price batches (调价单). A batch picks SKUs by filter, works out
each one's new price (by percent, by amount, or a set price), waits for approval when it cuts
deeper than PRICE_CUT_APPROVAL_PERCENT, and is applied at its time by `houtai tick`, line by
line, through the product center's one price service (services/product.change_prices)."""
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from sqlalchemy import or_, select, update

from app.extensions import db
from models.prices import PRICE_BATCH_MODES, PriceBatch, PriceBatchLine
from models.product import Brand, Category, Sku, Spu
from models.shop import Shop
from services import product
from services.actor import ALL_SHOPS, Actor, acting_as, current_actor, scope_query, shop_scope
from services.clock import now
from services.errors import (REFERENCE_NOT_FOUND, ConflictError, ForbiddenError, HoutaiError,
                             NotFoundError, ValidationFailed)
from services.events import publish
from services.numbering import number
from services.scheduler import scheduled

CENT = Decimal("0.01")
MAX_VALUE = Decimal("9999999999.99")
FILTER_KEYS = ("shop_id", "category_id", "brand_id", "spu_ids", "sku_ids")
# a batch can be cancelled until it is applied
OPEN_STATUSES = ("pending_approval", "scheduled")


class BatchStateError(ConflictError):
    """The price batch's status does not allow this step."""


def max_skus() -> int:
    """PRICE_BATCH_MAX_SKUS: the most SKUs one batch may change."""
    return int(current_app.config.get("PRICE_BATCH_MAX_SKUS", 500))


# -- what a batch covers ------------------------------------------------------------------------

def _id(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise ValidationFailed.field(field, "Not a valid id.")
    return value


def _ids(value, field: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ValidationFailed.field(field, "A non-empty list of ids.")
    if len(value) > max_skus():
        raise ValidationFailed.field(field, f"At most {max_skus()} ids.")
    return sorted({_id(v, field) for v in value})


def clean_filters(raw) -> dict:
    """The filters of a batch, checked: known keys, ids of the right type, at least one."""
    if not isinstance(raw, dict):
        raise ValidationFailed.field("filters", "An object of filters.")
    unknown = [key for key in raw if key not in FILTER_KEYS]
    if unknown:
        raise ValidationFailed("Validation failed",
                               {f"filters.{key}": ["Unknown filter."] for key in unknown})
    filters = {}
    for key in ("shop_id", "category_id", "brand_id"):
        if raw.get(key) is not None:
            filters[key] = _id(raw[key], f"filters.{key}")
    for key in ("spu_ids", "sku_ids"):
        if raw.get(key) is not None:
            filters[key] = _ids(raw[key], f"filters.{key}")
    scope = shop_scope()
    if isinstance(scope, int):
        if filters.get("shop_id", scope) != scope:
            raise ValidationFailed.field("filters.shop_id", REFERENCE_NOT_FOUND)
        filters["shop_id"] = scope
    if not filters:
        raise ValidationFailed.field("filters", "Choose at least one filter.")
    return filters


def _check_references(filters: dict) -> None:
    """Every id a filter names must exist and be visible (another shop's: not found)."""
    checks = {"shop_id": Shop, "category_id": Category, "brand_id": Brand}
    for key, model in checks.items():
        if key in filters and scope_query(db.session.query(model.id), model) \
                .filter(model.id == filters[key]).first() is None:
            raise ValidationFailed.field(f"filters.{key}", REFERENCE_NOT_FOUND)
    for key, model in (("spu_ids", Spu), ("sku_ids", Sku)):
        if key in filters:
            found = {row for row, in scope_query(db.session.query(model.id), model)
                     .filter(model.id.in_(filters[key]))}
            if found != set(filters[key]):
                raise ValidationFailed.field(f"filters.{key}", REFERENCE_NOT_FOUND)


def matching_skus(filters: dict) -> list[Sku]:
    """The visible SKUs all filters match, in id order (at most PRICE_BATCH_MAX_SKUS)."""
    _check_references(filters)
    query = scope_query(db.session.query(Sku), Sku)
    if "shop_id" in filters:
        query = query.filter(Sku.shop_id == filters["shop_id"])
    if "sku_ids" in filters:
        query = query.filter(Sku.id.in_(filters["sku_ids"]))
    if "spu_ids" in filters:
        query = query.filter(Sku.spu_id.in_(filters["spu_ids"]))
    if "category_id" in filters or "brand_id" in filters:
        query = query.join(Spu, Spu.id == Sku.spu_id)
        if "category_id" in filters:
            category = db.session.get(Category, filters["category_id"])
            query = query.filter(Spu.category_id.in_(product.descendant_ids(category)))
        if "brand_id" in filters:
            query = query.filter(Spu.brand_id == filters["brand_id"])
    skus = query.order_by(Sku.id).limit(max_skus() + 1).all()
    if not skus:
        raise ValidationFailed.field("filters", "No SKU matches these filters.")
    if len(skus) > max_skus():
        raise ValidationFailed.field("filters", f"More than {max_skus()} SKUs match; "
                                                "narrow the filters or split the batch.")
    return skus


# -- the arithmetic -----------------------------------------------------------------------------

def clean_change(mode, value) -> tuple[str, Decimal]:
    if mode not in PRICE_BATCH_MODES:
        raise ValidationFailed.field("mode", f"One of {', '.join(PRICE_BATCH_MODES)}.")
    if not isinstance(value, Decimal) or not value.is_finite() or abs(value) > MAX_VALUE:
        raise ValidationFailed.field("value", "A decimal amount.")
    if value != value.quantize(CENT):
        raise ValidationFailed.field("value", "At most 2 decimals.")
    if mode == "set" and value < 0:
        raise ValidationFailed.field("value", "Must not be negative.")
    return mode, value.quantize(CENT)


def new_price(old: Decimal, mode: str, value: Decimal) -> Decimal:
    """percent: old ± value% of it; amount: old ± value; set: value. To the cent, half up."""
    if mode == "percent":
        result = old + old * value / 100
    elif mode == "amount":
        result = old + value
    else:
        result = value
    return result.quantize(CENT, rounding=ROUND_HALF_UP)


def preview(filters, mode, value) -> dict:
    """The lines a batch would have, written nowhere: each SKU whose price would change, its
    old and new price and how deep the cut is; a price below 0 is refused naming the SKU."""
    filters = clean_filters(filters)
    mode, value = clean_change(mode, value)
    lines, negative = [], []
    for sku in matching_skus(filters):
        price = new_price(sku.price, mode, value)
        if price < 0:
            negative.append(sku.code)
        elif price != sku.price:
            lines.append({"sku_id": sku.id, "sku_code": sku.code, "shop_id": sku.shop_id,
                          "old_price": sku.price, "new_price": price,
                          "cut_percent": product.cut_percent(sku.price, price),
                          "requires_approval": product.needs_approval(sku.price, price)})
    if negative:
        raise ValidationFailed("Validation failed", {"value": [
            f"The new price of {', '.join(negative)} would be below 0."]})
    if not lines:
        raise ValidationFailed.field("value", "No matching SKU's price would change.")
    return {"filters": filters, "mode": mode, "value": value, "lines": lines,
            "max_cut_percent": max(line["cut_percent"] for line in lines),
            "requires_approval": any(line["requires_approval"] for line in lines),
            "threshold_percent": product.approval_threshold()}


# -- the batch's steps --------------------------------------------------------------------------

def _due(batch: PriceBatch) -> bool:
    return batch.effective_at is None or batch.effective_at <= now()


def submit(filters, mode, value, reason, effective_at: datetime | None = None) -> PriceBatch:
    """The preview made binding: the batch with its lines. A cut beyond the threshold waits
    for approval; otherwise it is scheduled, and applied at once when its time has come."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed.field("reason", "Required.")
    if effective_at is not None and (not isinstance(effective_at, datetime)
                                     or effective_at.tzinfo is None):
        raise ValidationFailed.field("effective_at", "A time with its offset.")
    drafted = preview(filters, mode, value)
    shops = {line["shop_id"] for line in drafted["lines"]}
    scope = shop_scope()
    batch = PriceBatch(
        batch_no=number("PB"), filters=drafted["filters"], mode=drafted["mode"],
        value=drafted["value"], reason=reason.strip()[:255], effective_at=effective_at,
        # a merchant's batch is its shop's; a staff batch over one shop is that shop's
        shop_id=scope if isinstance(scope, int) else (next(iter(shops)) if len(shops) == 1
                                                      else None),
        max_cut_percent=drafted["max_cut_percent"],
        requires_approval=drafted["requires_approval"],
        status="pending_approval" if drafted["requires_approval"] else "scheduled",
        created_by=current_actor().name, created_at=now())
    batch.lines = [PriceBatchLine(sku_id=line["sku_id"], shop_id=line["shop_id"],
                                  old_price=line["old_price"], new_price=line["new_price"],
                                  status="pending") for line in drafted["lines"]]
    db.session.add(batch)
    db.session.flush()
    publish("price_batch.submitted", _payload(batch), shop_id=batch.shop_id)
    if batch.status == "scheduled" and _due(batch):
        apply_batch(batch.id)
    return batch


def _payload(batch: PriceBatch) -> dict:
    return {"price_batch_id": batch.id, "batch_no": batch.batch_no, "status": batch.status,
            "lines": len(batch.lines), "max_cut_percent": str(batch.max_cut_percent)}


def batch_for_update(batch_id) -> PriceBatch:
    """A visible batch, row-locked (404 for another shop's or an unknown one)."""
    if isinstance(batch_id, bool) or not isinstance(batch_id, int) or not 0 < batch_id < 2**31:
        raise NotFoundError("Not found")
    batch = scope_query(db.session.query(PriceBatch), PriceBatch) \
        .filter(PriceBatch.id == batch_id).with_for_update(of=PriceBatch).one_or_none()
    if batch is None:
        raise NotFoundError("Not found")
    return batch


def _ensure_status(batch: PriceBatch, allowed: tuple, action: str) -> None:
    if batch.status not in allowed:
        raise BatchStateError(f"A {batch.status} price batch cannot be {action}",
                              {"status": [batch.status]})


def _decide(batch: PriceBatch, reason: str | None) -> None:
    batch.decided_by = current_actor().name
    batch.decided_at = now()
    batch.decision_reason = reason.strip()[:255] if reason else None


def approve(batch_id: int, reason: str | None = None) -> PriceBatch:
    """Platform staff approve a deep cut; it is applied at once if its time has come."""
    if current_actor().merchant or shop_scope() is not ALL_SHOPS:
        raise ForbiddenError("Only platform staff approve price batches")
    batch = batch_for_update(batch_id)
    _ensure_status(batch, ("pending_approval",), "approved")
    _decide(batch, reason)
    batch.status = "scheduled"
    db.session.flush()
    publish("price_batch.approved", _payload(batch), shop_id=batch.shop_id)
    if _due(batch):
        apply_batch(batch.id)
    return batch


def reject(batch_id: int, reason: str) -> PriceBatch:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed.field("reason", "Required.")
    if current_actor().merchant or shop_scope() is not ALL_SHOPS:
        raise ForbiddenError("Only platform staff reject price batches")
    batch = batch_for_update(batch_id)
    _ensure_status(batch, ("pending_approval",), "rejected")
    _decide(batch, reason)
    batch.status = "rejected"
    publish("price_batch.rejected", _payload(batch), shop_id=batch.shop_id)
    return batch


def cancel(batch_id: int, reason: str | None = None) -> PriceBatch:
    """Withdraw a batch before it is applied."""
    batch = batch_for_update(batch_id)
    _ensure_status(batch, OPEN_STATUSES, "cancelled")
    _decide(batch, reason)
    batch.status = "cancelled"
    publish("price_batch.cancelled", _payload(batch), shop_id=batch.shop_id)
    return batch


# -- applying -----------------------------------------------------------------------------------

def claim_due(batch_id: int) -> bool:
    """Move a due scheduled batch to applied in one conditional UPDATE: of two ticks (or a
    tick and an approval) one wins; the other waits for the row and then matches nothing."""
    moment = now()
    claimed = db.session.execute(
        update(PriceBatch)
        .where(PriceBatch.id == batch_id, PriceBatch.status == "scheduled",
               or_(PriceBatch.effective_at.is_(None), PriceBatch.effective_at <= moment))
        .values(status="applied", applied_at=moment)
        .execution_options(synchronize_session=False))
    return claimed.rowcount == 1


def _apply_lines(batch: PriceBatch) -> None:
    """Each line through the price service; a SKU whose price moved since the batch was
    drafted keeps it (the line is skipped, with a note)."""
    lines = sorted(batch.lines, key=lambda line: line.sku_id)
    skus = {sku.id: sku for sku in db.session.query(Sku)
            .filter(Sku.id.in_([line.sku_id for line in lines]))
            .order_by(Sku.id).with_for_update(of=Sku)}
    reason = f"{batch.batch_no}: {batch.reason}"[:255]
    for line in lines:
        sku = skus.get(line.sku_id)
        if sku is None:
            line.status, line.note = "skipped", "The SKU no longer exists."
        elif sku.price != line.old_price:
            line.status = "skipped"
            line.note = (f"The price changed from {line.old_price} to {sku.price} since the "
                         f"batch was drafted.")
        else:
            product.change_prices([sku.id], line.new_price, reason, batch=batch)
            line.status = "applied"


def apply_batch(batch_id: int) -> bool:
    """Apply a due scheduled batch once; False when it is not (or no longer) due here."""
    if not claim_due(batch_id):
        return False
    batch = db.session.get(PriceBatch, batch_id)
    db.session.refresh(batch)
    _apply_lines(batch)
    db.session.flush()
    applied = sum(1 for line in batch.lines if line.status == "applied")
    publish("price_batch.applied", {**_payload(batch), "applied": applied,
                                    "skipped": len(batch.lines) - applied},
            shop_id=batch.shop_id)
    return True


@scheduled("prices.apply_scheduled")
def apply_due() -> int:
    """The tick: apply every scheduled batch whose time has come, each in its own
    transaction; returns how many it applied."""
    with acting_as(Actor.job("prices.apply_scheduled")):
        due = db.session.scalars(select(PriceBatch.id).where(
            PriceBatch.status == "scheduled",
            or_(PriceBatch.effective_at.is_(None), PriceBatch.effective_at <= now()))
            .order_by(PriceBatch.id)).all()
        db.session.rollback()
        applied = 0
        for batch_id in due:
            try:
                applied += apply_batch(batch_id)
                db.session.commit()
            except HoutaiError:
                db.session.rollback()
                current_app.logger.exception("price batch %s could not be applied", batch_id)
        return applied

