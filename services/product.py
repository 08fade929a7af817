"""商品中心 rules: the category tree, attribute validation, the SPU listing workflow, the SKU
grid and the one price service every price change goes through."""
import itertools
from decimal import ROUND_HALF_UP, Decimal

import nh3
from flask import current_app
from sqlalchemy import func, literal, select, update

from app.extensions import db
from models.logistics import FreightTemplate
from models.product import (Attribute, AttributeKind, Brand, Category, Fulfilment, GoodsKind,
                            InputType, PriceChange, Sku, Spu, SpuStatus, SpuTransition)
from models.purchasing import Supplier
from models.storage import UploadedFile
from services.actor import current_actor, scope_query, visible_row
from services.errors import (REFERENCE_NOT_FOUND, ConflictError, NotFoundError,
                             ValidationFailed)
from services.events import publish

DESCRIPTION_TAGS = {"p", "br", "b", "strong", "i", "em", "u", "ul", "ol", "li", "h2", "h3",
                    "h4", "blockquote", "img", "a", "span", "table", "thead", "tbody", "tr",
                    "td", "th"}
DESCRIPTION_ATTRIBUTES = {"img": {"src", "alt", "width", "height"}, "a": {"href", "title"}}
MAX_IMAGES = 9
EDITABLE_STATUSES = {SpuStatus.draft, SpuStatus.rejected, SpuStatus.off_sale}


class IllegalTransitionError(ConflictError):
    """The SPU's status does not allow this step of the listing workflow."""


# -- the category tree ------------------------------------------------------------------------

def _path_for(parent: Category | None, category_id: int) -> str:
    return f"{parent.path if parent else '/'}{category_id}/"


def descendant_ids(category: Category) -> list[int]:
    """The category and every category below it."""
    return list(db.session.scalars(
        select(Category.id).where(Category.path.startswith(category.path))))


def is_leaf(category: Category) -> bool:
    return not db.session.scalar(select(func.count(Category.id))
                                 .where(Category.parent_id == category.id))


def place_category(category: Category) -> None:
    """Validate a new or moved category's parent and keep `path` of its subtree right."""
    parent = None
    parent_id = _reference(category, "parent")
    if parent_id is not None:
        parent = db.session.get(Category, parent_id)
        if parent is None:
            raise ValidationFailed.field("parent_id", REFERENCE_NOT_FOUND)
        if category.id is not None and (parent.id == category.id or
                                        parent.path.startswith(category.path or "\0")):
            raise ValidationFailed.field("parent_id",
                                         "Cannot move a category under itself or its descendant.")
        if _holds_products(parent):
            raise ValidationFailed.field("parent_id",
                                         "That category holds products: only leaves hold products.")
    if category.id is None:
        db.session.add(category)
        db.session.flush()
    old_path = category.path
    new_path = _path_for(parent, category.id)
    if old_path != new_path:
        category.path = new_path
        if old_path and old_path != "/":
            db.session.execute(
                update(Category).where(Category.path.startswith(old_path), Category.id != category.id)
                .values(path=literal(new_path).concat(
                    func.substr(Category.path, len(old_path) + 1)))
                .execution_options(synchronize_session=False))


def check_category_deletable(category: Category) -> None:
    """A category goes only when nothing hangs on it: subcategories, products, attributes."""
    children = db.session.scalar(select(func.count(Category.id))
                                 .where(Category.parent_id == category.id))
    attributes = db.session.scalar(select(func.count(Attribute.id))
                                   .where(Attribute.category_id == category.id))
    if children or attributes or _holds_products(category):
        raise ConflictError("The category is in use", {"id": [
            f"{children} subcategories, {attributes} attributes"
            + (", products" if _holds_products(category) else "")]})


def _holds_products(category: Category) -> bool:
    return bool(db.session.scalar(select(func.count(Spu.id)).where(Spu.category_id == category.id)))


def selectable_category(category_id) -> Category:
    """A category a product may be placed in: known, enabled, a leaf."""
    category = db.session.get(Category, category_id) if isinstance(category_id, int) else None
    if category is None:
        raise ValidationFailed.field("category_id", REFERENCE_NOT_FOUND)
    if not category.enabled:
        raise ValidationFailed.field("category_id", "Category is disabled.")
    if not is_leaf(category):
        raise ValidationFailed.field("category_id", "Only leaf categories hold products.")
    return category


def ancestor_ids(category: Category) -> list[int]:
    return [int(part) for part in category.path.strip("/").split("/") if part]


def attributes_of(category: Category, kinds=None) -> list[Attribute]:
    """The category's attributes and those it inherits, in sort order."""
    query = select(Attribute).where(Attribute.category_id.in_(ancestor_ids(category)))
    if kinds:
        query = query.where(Attribute.kind.in_(list(kinds)))
    return list(db.session.scalars(query.order_by(Attribute.sort_order, Attribute.id)))


# -- brands and attributes ------------------------------------------------------------------------

def usable_brand(brand_id, category: Category | None) -> Brand:
    """A brand a product may use: known, enabled, allowed in the category."""
    brand = db.session.get(Brand, brand_id) if isinstance(brand_id, int) else None
    if brand is None:
        raise ValidationFailed.field("brand_id", REFERENCE_NOT_FOUND)
    if not brand.enabled:
        raise ValidationFailed.field("brand_id", "Brand is disabled.")
    if category is not None and brand.categories:
        allowed = {c.id for c in brand.categories}
        if not allowed & set(ancestor_ids(category)):
            raise ValidationFailed.field("brand_id", "Brand is not sold in this category.")
    return brand


def check_attribute_definition(attribute: Attribute) -> None:
    """Select types need options; options are distinct non-empty strings."""
    options = attribute.options or []
    if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options):
        raise ValidationFailed.field("options", "A list of non-empty texts.")
    if len(set(options)) != len(options):
        raise ValidationFailed.field("options", "Options must be distinct.")
    selects = (InputType.single_select, InputType.multi_select)
    if InputType(attribute.input_type) in selects and not options:
        raise ValidationFailed.field("options", "Select attributes need options.")
    if AttributeKind(attribute.kind) == AttributeKind.sales and \
            InputType(attribute.input_type) != InputType.single_select:
        raise ValidationFailed.field("input_type", "Sales attributes are single select.")


def _clean_value(attribute: Attribute, value):
    """The value in its stored form, or a reason it is refused."""
    kind = InputType(attribute.input_type)
    if kind == InputType.text:
        if not isinstance(value, str):
            return None, "Must be text."
        return value.strip(), None
    if kind == InputType.number:
        if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
            return None, "Must be a number."
        try:
            number = Decimal(str(value))
        except ArithmeticError:
            return None, "Must be a number."
        return (str(number), None) if number.is_finite() else (None, "Must be a number.")
    if kind == InputType.single_select:
        if value not in attribute.options:
            return None, "Not one of the options."
        return value, None
    if not isinstance(value, list) or not all(v in attribute.options for v in value):
        return None, "Must be a list of the options."
    return sorted(set(value), key=attribute.options.index), None


def clean_attribute_values(category: Category, values) -> dict:
    """Key and non-key attribute values checked against the category: {attribute id: value}.
    Errors name the attribute: `attribute_values.<name>`."""
    if not isinstance(values, dict):
        raise ValidationFailed.field("attribute_values", "An object of attribute id → value.")
    attributes = attributes_of(category, kinds=(AttributeKind.key, AttributeKind.non_key))
    by_id = {str(a.id): a for a in attributes}
    errors, cleaned = {}, {}
    for key in values:
        if str(key) not in by_id and _attribute_exists(key):
            errors[f"attribute_values.{key}"] = ["Not an attribute of this category."]
        elif str(key) not in by_id:
            errors.update(_unknown_attribute(key))
    for attribute_id, attribute in by_id.items():
        value = values.get(attribute_id, values.get(int(attribute_id)))
        if value in (None, "", []):
            if attribute.required:
                errors[f"attribute_values.{attribute.name}"] = ["Required."]
            continue
        stored, reason = _clean_value(attribute, value)
        if reason:
            errors[f"attribute_values.{attribute.name}"] = [reason]
        else:
            cleaned[attribute_id] = stored
    if errors:
        raise ValidationFailed("Validation failed", errors)
    return cleaned


def describe_values(values: dict | None) -> str:
    """Attribute values as people read them: "Material: cotton; Model: T-100"."""
    if not values:
        return ""
    names = dict(db.session.execute(select(Attribute.id, Attribute.name).where(
        Attribute.id.in_([int(k) for k in values if str(k).isdigit()]))).all())
    shown = []
    for key, value in values.items():
        text = "、".join(value) if isinstance(value, list) else str(value)
        shown.append(f"{names.get(int(key), key) if str(key).isdigit() else key}: {text}")
    return "; ".join(shown)


def _attribute_exists(key) -> bool:
    return str(key).isdigit() and db.session.get(Attribute, int(key)) is not None


def _unknown_attribute(key) -> dict:
    """A value for an attribute id that never existed is refused; one for an attribute that
    was deleted since is dropped (stored values outlive their definitions)."""
    from models.audit import AuditLog

    deleted = str(key).isdigit() and AuditLog.query.filter_by(
        model="Attribute", record_pk=str(key), action="delete").first() is not None
    return {} if deleted else {f"attribute_values.{key}": ["Not an attribute of this category."]}


def sanitise_description(html: str | None) -> str | None:
    """Rich text with only safe tags and attributes (no script, no event handlers)."""
    if html is None:
        return None
    return nh3.clean(html, tags=DESCRIPTION_TAGS, attributes=DESCRIPTION_ATTRIBUTES,
                     url_schemes={"http", "https"})


def check_images(image_ids) -> list[int]:
    """Uploaded images the actor may use, at most nine."""
    if not isinstance(image_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                  for i in image_ids):
        raise ValidationFailed.field("image_ids", "A list of uploaded file ids.")
    if len(image_ids) > MAX_IMAGES:
        raise ValidationFailed.field("image_ids", f"At most {MAX_IMAGES} images.")
    found = {row[0] for row in scope_query(db.session.query(UploadedFile.id), UploadedFile)
             .filter(UploadedFile.id.in_(image_ids)).all()} if image_ids else set()
    if set(image_ids) - found:
        raise ValidationFailed.field("image_ids", REFERENCE_NOT_FOUND)
    return image_ids


# -- SPUs ---------------------------------------------------------------------------------------

def prepare_spu(spu: Spu, *, creating: bool, changed: set[str] | None = None) -> Spu:
    """Validate an SPU before it is stored (REST and screens call this from pre_add/pre_update).
    Content may change only in draft, rejected or off sale; an off-sale edit needs a new review."""
    if not creating:
        status = SpuStatus(spu.status)
        if status not in EDITABLE_STATUSES:
            raise ConflictError("Take the product off sale (or wait for the review) to edit it",
                                {"status": [f"Not editable while {status.value}."]})
        if status == SpuStatus.off_sale:
            spu.changed_since_review = True
    else:
        spu.status = SpuStatus.draft
    category = selectable_category(_reference(spu, "category"))
    usable_brand(_reference(spu, "brand"), category)
    values = {} if spu.attribute_values is None else spu.attribute_values
    spu.attribute_values = clean_attribute_values(category, values)
    spu.outer_id = (spu.outer_id or "").strip() or None
    spu.description = sanitise_description(spu.description)
    spu.image_ids = check_images(spu.image_ids or [])
    if not (spu.title or "").strip():
        raise ValidationFailed.field("title", "Required.")
    check_selling_terms(spu)
    return spu


def check_selling_terms(spu: Spu) -> None:
    """Goods kind and fulfilment route orders; a pre-sale needs its shipping day, and its
    deposit (per unit, optional: without one the buyer pays in full) must be positive.
    Services are redeemed, never shipped, so they cannot be drop-shipped."""
    spu.goods_kind = GoodsKind(spu.goods_kind or GoodsKind.physical)
    spu.fulfilment = Fulfilment(spu.fulfilment or Fulfilment.own)
    if GoodsKind(spu.goods_kind) == GoodsKind.service and \
            Fulfilment(spu.fulfilment) != Fulfilment.own:
        raise ValidationFailed.field("fulfilment", "A service is fulfilled by its own shop.")
    if spu.presale_deposit is not None:
        if spu.presale_ships_on is None:
            raise ValidationFailed.field("presale_ships_on", "A pre-sale deposit needs the day "
                                                             "the goods ship.")
        if spu.presale_deposit <= 0:
            raise ValidationFailed.field("presale_deposit", "Must be positive.")
    if spu.presale_ships_on is not None and GoodsKind(spu.goods_kind) == GoodsKind.service:
        raise ValidationFailed.field("presale_ships_on", "Services are not sold ahead.")
    _check_shop_reference(spu, "supplier", Supplier)
    _check_shop_reference(spu, "freight_template", FreightTemplate)


def _check_shop_reference(spu: Spu, relationship: str, model) -> None:
    """The consignor / drop-ship supplier and the freight template of an SPU are its own
    shop's (a merchant never names another shop's rows)."""
    value = _reference(spu, relationship)
    if value is None:
        return
    row = visible_row(model, value)
    if row is None or row.shop_id != _reference(spu, "shop"):
        raise ValidationFailed.field(f"{relationship}_id", "Not a record of this shop.")


def _reference(row, relationship: str):
    """The id a row refers to, whether a screen set the related object or an API the id."""
    related = getattr(row, relationship)
    return related.id if related is not None else getattr(row, f"{relationship}_id")


def spu_for_update(spu_id: int) -> Spu:
    """The SPU, row-locked, if the actor may see it."""
    query = scope_query(db.session.query(Spu), Spu).filter(Spu.id == spu_id)
    spu = query.with_for_update(of=Spu).one_or_none()
    if spu is None:
        raise NotFoundError("Not found")
    return spu


# The listing workflow: action → (statuses it starts from, status it leads to).
WORKFLOW = {
    "submit": ({SpuStatus.draft, SpuStatus.rejected}, SpuStatus.pending_review),
    "approve": ({SpuStatus.pending_review}, SpuStatus.on_sale),
    "reject": ({SpuStatus.pending_review}, SpuStatus.rejected),
    "off_sale": ({SpuStatus.on_sale}, SpuStatus.off_sale),
    "on_sale": ({SpuStatus.off_sale}, SpuStatus.on_sale),
}


ACTION_WORDS = {"submit": "submit", "approve": "approve", "reject": "reject",
                "off_sale": "take off sale", "on_sale": "put on sale"}


def _move(spu: Spu, action: str, target: SpuStatus, reason: str | None = None) -> Spu:
    sources, _ = WORKFLOW[action]
    current = SpuStatus(spu.status)
    if current not in sources:
        raise IllegalTransitionError(f"Cannot {ACTION_WORDS[action]} a product that is "
                                     f"{current.value}", {"status": [current.value]})
    spu.status = target
    spu.transitions.append(SpuTransition(shop_id=spu.shop_id, from_status=current.value,
                                         to_status=target.value, actor=current_actor().name,
                                         reason=reason))
    publish("spu.status_changed", {"spu_id": spu.id, "from": current.value, "to": target.value},
            shop_id=spu.shop_id)
    return spu


def submit_spu(spu_id: int) -> Spu:
    """Send a draft or rejected SPU to review; it needs at least one enabled SKU and values
    valid for the category as it is now."""
    spu = spu_for_update(spu_id)
    spu.attribute_values = clean_attribute_values(db.session.get(Category, spu.category_id),
                                                  spu.attribute_values or {})
    if not any(sku.enabled for sku in spu.skus):
        if SpuStatus(spu.status) in WORKFLOW["submit"][0]:
            raise ValidationFailed.field("skus", "Generate the SKU grid before submitting.")
    return _move(spu, "submit", SpuStatus.pending_review)


def approve_spu(spu_id: int) -> Spu:
    spu = _move(spu_for_update(spu_id), "approve", SpuStatus.on_sale)
    spu.changed_since_review = False
    spu.reject_reason = None
    return spu


def reject_spu(spu_id: int, reason: str) -> Spu:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed.field("reason", "Required.")
    spu = _move(spu_for_update(spu_id), "reject", SpuStatus.rejected, reason.strip()[:255])
    spu.reject_reason = reason.strip()[:255]
    return spu


def take_off_sale(spu_id: int, reason: str | None = None) -> Spu:
    return _move(spu_for_update(spu_id), "off_sale", SpuStatus.off_sale, reason)


def put_on_sale(spu_id: int) -> Spu:
    """Back on sale; if its content changed while off sale, it goes to review instead."""
    spu = spu_for_update(spu_id)
    if SpuStatus(spu.status) == SpuStatus.off_sale and spu.changed_since_review:
        return _move(spu, "on_sale", SpuStatus.pending_review, "content changed")
    return _move(spu, "on_sale", SpuStatus.on_sale)


def discard_draft(spu: Spu) -> None:
    """Remove what belongs to a draft SPU before the SPU itself is deleted; only drafts go."""
    if SpuStatus(spu.status) != SpuStatus.draft:
        raise ConflictError("Only drafts can be deleted", {"status": [SpuStatus(spu.status).value]})
    sku_ids = [sku.id for sku in spu.skus]
    for row in db.session.scalars(select(PriceChange).where(PriceChange.sku_id.in_(sku_ids))):
        db.session.delete(row)
    db.session.flush()


def discard_sku(sku: Sku) -> None:
    """A SKU of a draft may be removed (with its price history and its lines in price
    batches); later, disable it instead."""
    spu = db.session.get(Spu, sku.spu_id)
    if SpuStatus(spu.status) != SpuStatus.draft:
        raise ConflictError("Disable the SKU instead: it has been submitted",
                            {"status": [SpuStatus(spu.status).value]})
    from models.prices import PriceBatchLine

    for model in (PriceChange, PriceBatchLine):
        for row in db.session.scalars(select(model).where(model.sku_id == sku.id)):
            db.session.delete(row)
    db.session.flush()


def record_creation(spu: Spu) -> None:
    """The first line of an SPU's history."""
    spu.transitions.append(SpuTransition(shop_id=spu.shop_id, from_status=None,
                                         to_status=SpuStatus.draft.value,
                                         actor=current_actor().name))


# -- the SKU grid -------------------------------------------------------------------------------

def combination_key(values: dict) -> str:
    """Canonical text of sales values: "attribute id=value" pairs sorted by attribute id."""
    return "|".join(f"{k}={values[k]}" for k in sorted(values, key=int))


def _grid_choices(spu: Spu, choices) -> list[tuple[Attribute, list[str]]]:
    if not isinstance(choices, dict):
        raise ValidationFailed.field("choices", "An object of sales attribute id → values.")
    category = db.session.get(Category, spu.category_id)
    sales = attributes_of(category, kinds=(AttributeKind.sales,))
    by_id = {str(a.id): a for a in sales}
    errors, axes = {}, []
    for key in choices:
        if str(key) not in by_id:
            errors[f"choices.{key}"] = ["Not a sales attribute of this category."]
    for attribute_id, attribute in by_id.items():
        chosen = choices.get(attribute_id, choices.get(int(attribute_id)))
        if not chosen:
            errors[f"choices.{attribute.name}"] = ["Choose at least one value."]
            continue
        if not isinstance(chosen, list) or not all(v in attribute.options for v in chosen):
            errors[f"choices.{attribute.name}"] = ["Values must be among the options."]
            continue
        axes.append((attribute, sorted(set(chosen), key=attribute.options.index)))
    if errors:
        raise ValidationFailed("Validation failed", errors)
    return axes


def _free_code(shop_id: int, wanted: str) -> str:
    taken = set(db.session.scalars(select(Sku.code).where(Sku.shop_id == shop_id,
                                                          Sku.code.startswith(wanted))))
    if wanted not in taken:
        return wanted
    return next(f"{wanted}-{n}" for n in itertools.count(2) if f"{wanted}-{n}" not in taken)


def generate_skus(spu_id: int, choices: dict, price=None) -> list[Sku]:
    """One SKU per combination of the chosen sales values; existing combinations are kept,
    so running it again adds only what is missing. Returns the SKUs it added."""
    if price is not None and (not isinstance(price, Decimal) or price < 0):
        raise ValidationFailed.field("price", "Must not be negative.")
    spu = spu_for_update(spu_id)
    if SpuStatus(spu.status) not in EDITABLE_STATUSES:
        raise ConflictError("Take the product off sale (or wait for the review) to change its SKUs",
                            {"status": [f"Not editable while {SpuStatus(spu.status).value}."]})
    axes = _grid_choices(spu, choices)
    existing = {sku.combination for sku in spu.skus}
    added = []
    for values in itertools.product(*[[(str(a.id), v) for v in vs] for a, vs in axes]):
        sales_values = dict(values)
        key = combination_key(sales_values)
        if key in existing:
            continue
        existing.add(key)
        code = _free_code(spu.shop_id, f"{spu.id}-{len(spu.skus) + 1:03d}")
        sku = Sku(shop_id=spu.shop_id, code=code, sales_values=sales_values, combination=key,
                  price=price if price is not None else Decimal("0.00"))
        spu.skus.append(sku)
        db.session.flush()
        added.append(sku)
        _record_price(sku, None, sku.price, "SKU created")
    if SpuStatus(spu.status) == SpuStatus.off_sale and added:
        spu.changed_since_review = True
    return added


# -- prices: the one way a price changes ------------------------------------------------------

def _record_price(sku: Sku, old, new, reason: str) -> None:
    db.session.add(PriceChange(sku_id=sku.id, shop_id=sku.shop_id, old_price=old, new_price=new,
                               reason=reason, actor=current_actor().name))


def skus_for_update(sku_ids: list[int]) -> list[Sku]:
    """Visible SKUs, row-locked in id order (no deadlock between two bulk edits)."""
    ids = sorted(set(sku_ids))
    rows = scope_query(db.session.query(Sku), Sku).filter(Sku.id.in_(ids)) \
        .order_by(Sku.id).with_for_update(of=Sku).all()
    if len(rows) != len(ids):
        raise NotFoundError("Not found")
    return rows


def change_price(sku_id: int, price: Decimal, reason: str) -> Sku:
    """Set one SKU's price, keeping the history."""
    return change_prices([sku_id], price, reason)[0]


PERCENT = Decimal("0.01")


def cut_percent(old: Decimal, new: Decimal) -> Decimal:
    """How deep a change cuts, in percent of the old price (0 for a rise or a free SKU)."""
    if old is None or old <= 0 or new >= old:
        return Decimal("0.00")
    return ((old - new) * 100 / old).quantize(PERCENT, rounding=ROUND_HALF_UP)


def approval_threshold() -> Decimal:
    """PRICE_CUT_APPROVAL_PERCENT: a deeper cut needs an approved price batch."""
    return Decimal(current_app.config.get("PRICE_CUT_APPROVAL_PERCENT", Decimal("30")))


def needs_approval(old: Decimal, new: Decimal) -> bool:
    """A cut strictly deeper than the threshold (a cut exactly at it passes)."""
    if old is None or old <= 0 or new >= old:
        return False
    return (old - new) * 100 > approval_threshold() * old


def _batch_covers(batch, sku: Sku, price: Decimal) -> bool:
    """An approved price batch (scheduled or being applied, approved if it had to be) that
    sets exactly this SKU to exactly this price."""
    if batch is None or batch.status not in ("scheduled", "applied"):
        return False
    if batch.requires_approval and not batch.decided_by:
        return False
    return any(line.sku_id == sku.id and line.new_price == price for line in batch.lines)


def change_prices(sku_ids: list[int], price: Decimal, reason: str, *,
                  batch=None) -> list[Sku]:
    """Set the price of SKUs (locked in id order), keeping the history. A cut deeper than
    PRICE_CUT_APPROVAL_PERCENT is refused (409, nothing changes) unless `batch`, an approved
    price batch (services/prices), covers it; nothing else passes one."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed.field("reason", "Required.")
    if not isinstance(price, Decimal) or price < 0:
        raise ValidationFailed.field("price", "Must not be negative.")
    skus = skus_for_update(sku_ids)
    deep = [sku for sku in skus if needs_approval(sku.price, price)
            and not _batch_covers(batch, sku, price)]
    if deep:
        raise ConflictError(
            "A cut this deep needs approval: submit it as a price batch",
            {"price": [f"Cuts {', '.join(sku.code for sku in deep)} by more than "
                       f"{approval_threshold()}% of the current price; approval is needed "
                       f"through a price batch."]})
    for sku in skus:
        if sku.price != price:
            _record_price(sku, sku.price, price, reason.strip()[:255])
            sku.price = price
    return skus


def set_stock_alert(sku_ids: list[int], quantity: int) -> list[Sku]:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise ValidationFailed.field("stock_alert_qty", "A whole number, not negative.")
    skus = skus_for_update(sku_ids)
    for sku in skus:
        sku.stock_alert_qty = quantity
    return skus


def spus_by_status() -> dict:
    rows = scope_query(db.session.query(Spu.status, func.count(Spu.id)), Spu) \
        .group_by(Spu.status).all()
    return {SpuStatus(status): count for status, count in rows}


def spus_by_top_category() -> dict:
    """SPU counts per top-level category (the first id of each category's path)."""
    rows = scope_query(db.session.query(Category.path, func.count(Spu.id))
                       .join(Spu, Spu.category_id == Category.id), Spu) \
        .group_by(Category.path).all()
    counts: dict[int, int] = {}
    for path, count in rows:
        top = int(path.strip("/").split("/")[0])
        counts[top] = counts.get(top, 0) + count
    names = dict(db.session.execute(select(Category.id, Category.name)
                                    .where(Category.id.in_(counts))).all()) if counts else {}
    return {names[top]: count for top, count in sorted(counts.items())}
