"""商品中心: categories, brands, attributes, SPUs with their listing workflow, SKUs, prices."""
import enum

from flask_babel import lazy_gettext as _l
from sqlalchemy import (JSON, Boolean, Column, Date, Enum, ForeignKey, Index, Integer, Numeric,
                        String, Table, Text, UniqueConstraint)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import Money, ShopOwnedMixin, TimestampMixin, UTCDateTime, utcnow


class Category(TimestampMixin, db.Model):
    """A node of the platform's category tree; only leaves hold products.

    `path` is the chain of ids from the root ("/1/4/9/"), so a category and its descendants are
    one indexed prefix query."""

    __tablename__ = "category"

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False)
    parent_id = Column(Integer, ForeignKey("category.id"), nullable=True, index=True)
    sort_order = Column(Integer, nullable=False, default=0)
    enabled = Column(Boolean, nullable=False, default=True)
    path = Column(String(255), nullable=False, default="/", index=True)
    # goods of this category (or a category below it) are not returnable without a reason
    # (七天无理由退货 does not apply: fresh food, made to order, opened software, ...)
    no_reason_return_exempt = Column(Boolean, nullable=False, default=False,
                                     server_default="0")
    parent = relationship("Category", remote_side=[id], backref="children")

    def __repr__(self) -> str:
        return self.name


brand_category = Table(
    "brand_category", db.Model.metadata,
    Column("brand_id", Integer, ForeignKey("brand.id", ondelete="CASCADE"), primary_key=True),
    Column("category_id", Integer, ForeignKey("category.id", ondelete="CASCADE"),
           primary_key=True),
)


class Brand(TimestampMixin, db.Model):
    """A brand; limited to some categories (and their descendants), or to none (all)."""

    __tablename__ = "brand"

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False, unique=True)
    logo_id = Column(Integer, ForeignKey("uploaded_file.id"), nullable=True)
    enabled = Column(Boolean, nullable=False, default=True)
    logo = relationship("UploadedFile")
    categories = relationship("Category", secondary=brand_category)

    def __repr__(self) -> str:
        return self.name


class AttributeKind(str, enum.Enum):
    key = "key"
    non_key = "non_key"
    sales = "sales"


class InputType(str, enum.Enum):
    text = "text"
    number = "number"
    single_select = "single_select"
    multi_select = "multi_select"


ATTRIBUTE_KIND_LABELS = {AttributeKind.key: _l("Key attribute"),
                         AttributeKind.non_key: _l("Non-key attribute"),
                         AttributeKind.sales: _l("Sales attribute")}


class Attribute(TimestampMixin, db.Model):
    """An attribute defined on a category and inherited by all its subcategories."""

    __tablename__ = "attribute"
    __table_args__ = (UniqueConstraint("category_id", "name", name="uq_attribute_category_name"),)

    id = Column(Integer, primary_key=True)
    category_id = Column(Integer, ForeignKey("category.id"), nullable=False, index=True)
    name = Column(String(64), nullable=False)
    kind = Column(Enum(AttributeKind, native_enum=False, length=16, validate_strings=True),
                  nullable=False)
    input_type = Column(Enum(InputType, native_enum=False, length=16, validate_strings=True),
                        nullable=False, default=InputType.text)
    options = Column(JSON, nullable=False, default=list)
    required = Column(Boolean, nullable=False, default=False)
    sort_order = Column(Integer, nullable=False, default=0)
    category = relationship("Category")

    def __repr__(self) -> str:
        return self.name


class SpuStatus(str, enum.Enum):
    draft = "draft"
    pending_review = "pending_review"
    on_sale = "on_sale"
    off_sale = "off_sale"
    rejected = "rejected"


SPU_STATUS_LABELS = {SpuStatus.draft: _l("Draft"), SpuStatus.pending_review: _l("Pending review"),
                     SpuStatus.on_sale: _l("On sale"), SpuStatus.off_sale: _l("Off sale"),
                     SpuStatus.rejected: _l("Rejected")}


class GoodsKind(str, enum.Enum):
    """What the buyer gets: goods shipped, a redeemable service code, or both."""
    physical = "physical"
    service = "service"
    service_physical = "service_physical"


class Fulfilment(str, enum.Enum):
    """Who ships: our (or the merchant's) warehouse from own stock, a consignor's goods held
    in our warehouse (代销, settled after sale), or the supplier directly (代发)."""
    own = "own"
    consignment = "consignment"
    dropship = "dropship"


GOODS_KIND_LABELS = {GoodsKind.physical: _l("Physical goods"), GoodsKind.service: _l("Service"),
                     GoodsKind.service_physical: _l("Service + physical")}
FULFILMENT_LABELS = {Fulfilment.own: _l("Own stock"), Fulfilment.consignment: _l("Consignment"),
                     Fulfilment.dropship: _l("Drop-shipping")}


class Spu(ShopOwnedMixin, TimestampMixin, db.Model):
    """One product page of a shop, in a leaf category, with its listing status."""

    __tablename__ = "spu"
    __table_args__ = (
        UniqueConstraint("shop_id", "outer_id", name="uq_spu_shop_outer_id"),
        Index("ix_spu_shop_status_created", "shop_id", "status", "created_at"),
    )

    id = Column(Integer, primary_key=True)
    title = Column(String(128), nullable=False)
    subtitle = Column(String(255), nullable=True)
    description = Column(Text, nullable=True)
    category_id = Column(Integer, ForeignKey("category.id"), nullable=False, index=True)
    brand_id = Column(Integer, ForeignKey("brand.id"), nullable=False, index=True)
    status = Column(Enum(SpuStatus, native_enum=False, length=16, validate_strings=True),
                    nullable=False, default=SpuStatus.draft)
    # {attribute id (str): value} for the category's key and non-key attributes
    attribute_values = Column(JSON, nullable=False, default=dict)
    image_ids = Column(JSON, nullable=False, default=list)
    outer_id = Column(String(64), nullable=True)
    # content edited since the last approval: going back on sale needs a new review
    changed_since_review = Column(Boolean, nullable=False, default=False)
    reject_reason = Column(String(255), nullable=True)
    goods_kind = Column(Enum(GoodsKind, native_enum=False, length=20, validate_strings=True),
                        nullable=False, default=GoodsKind.physical)
    fulfilment = Column(Enum(Fulfilment, native_enum=False, length=16, validate_strings=True),
                        nullable=False, default=Fulfilment.own)
    # 预售: set → sold before it can ship; orders ship from this date, deposit per unit
    presale_ships_on = Column(Date, nullable=True)
    presale_deposit = Column(Money, nullable=True)
    # the supplier of consigned (代销) or drop-shipped (代发) goods
    supplier_id = Column(Integer, ForeignKey("supplier.id"), nullable=True, index=True)
    # the shop's freight template pricing its shipping (empty: the shop's default template)
    freight_template_id = Column(Integer, ForeignKey("freight_template.id"), nullable=True)
    category = relationship("Category")
    brand = relationship("Brand")
    supplier = relationship("Supplier")
    freight_template = relationship("FreightTemplate")
    # a draft SPU is deleted with its grid and history (only drafts may be deleted)
    skus = relationship("Sku", back_populates="spu", order_by="Sku.id",
                        cascade="all, delete-orphan")
    transitions = relationship("SpuTransition", order_by="SpuTransition.id",
                               cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return self.title

    @property
    def history(self) -> list[dict]:
        """The listing workflow's steps, oldest first."""
        return [{"from": t.from_status, "to": t.to_status, "actor": t.actor, "reason": t.reason,
                 "at": t.created_at.isoformat()} for t in self.transitions]


class SpuTransition(ShopOwnedMixin, db.Model):
    """One step of an SPU's listing workflow: who, when, from, to, why."""

    __tablename__ = "spu_transition"

    id = Column(Integer, primary_key=True)
    spu_id = Column(Integer, ForeignKey("spu.id"), nullable=False, index=True)
    from_status = Column(String(16), nullable=True)
    to_status = Column(String(16), nullable=False)
    actor = Column(String(128), nullable=False)
    reason = Column(String(255), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    spu = relationship("Spu", overlaps="transitions")

    def __repr__(self) -> str:
        return f"{self.from_status or '-'} → {self.to_status}"


class Sku(ShopOwnedMixin, TimestampMixin, db.Model):
    """One combination of an SPU's sales-attribute values: what is priced and stocked."""

    __tablename__ = "sku"
    __table_args__ = (
        UniqueConstraint("shop_id", "code", name="uq_sku_shop_code"),
        UniqueConstraint("shop_id", "outer_id", name="uq_sku_shop_outer_id"),
        UniqueConstraint("spu_id", "combination", name="uq_sku_spu_combination"),
    )

    id = Column(Integer, primary_key=True)
    spu_id = Column(Integer, ForeignKey("spu.id"), nullable=False, index=True)
    code = Column(String(64), nullable=False)
    barcode = Column(String(64), nullable=True)
    # {attribute id (str): value} for the category's sales attributes
    sales_values = Column(JSON, nullable=False, default=dict)
    # canonical text of sales_values, so a combination exists once per SPU
    combination = Column(String(255), nullable=False)
    price = Column(Money, nullable=False, default=0)
    market_price = Column(Money, nullable=True)
    cost_price = Column(Money, nullable=True)
    weight_kg = Column(Numeric(10, 3), nullable=True)
    stock_alert_qty = Column(Integer, nullable=False, default=0)
    enabled = Column(Boolean, nullable=False, default=True)
    outer_id = Column(String(64), nullable=True)
    spu = relationship("Spu", back_populates="skus")

    def __repr__(self) -> str:
        return self.code


class PriceChange(ShopOwnedMixin, db.Model):
    """The price history of a SKU: every change, by whom, why."""

    __tablename__ = "price_change"

    id = Column(Integer, primary_key=True)
    sku_id = Column(Integer, ForeignKey("sku.id"), nullable=False, index=True)
    old_price = Column(Money, nullable=True)
    new_price = Column(Money, nullable=False)
    reason = Column(String(255), nullable=False)
    actor = Column(String(128), nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    sku = relationship("Sku")

    def __repr__(self) -> str:
        return f"{self.old_price} → {self.new_price}"
