"""物流中心: carriers with their rate cards and selection rules, the shops' freight templates,
tracking events per shipment, signed carrier pushes (for replay protection), and customs
declarations of cross-border shipments."""
from sqlalchemy import (JSON, Boolean, CheckConstraint, Column, ForeignKey, Integer, Numeric,
                        String, UniqueConstraint)
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import Money, ShopOwnedMixin, TimestampMixin, UTCDateTime, utcnow

TRACKING_STATUSES = ("collected", "in_transit", "out_for_delivery", "signed", "exception",
                     "returned")
CUSTOMS_STATUSES = ("draft", "submitted", "cleared", "held", "cancelled")


class Carrier(TimestampMixin, db.Model):
    """A carrier (platform data): its tracking adapter and whether it collects cash on
    delivery. What it charges is its rate card (CarrierRate rows)."""

    __tablename__ = "carrier"

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False, unique=True)
    name = Column(String(64), nullable=False)
    # the tracking adapter: sandbox | kuaidi100
    adapter = Column(String(32), nullable=False, default="sandbox")
    # the carrier's own code at the tracking service (e.g. Kuaidi100's "shunfeng")
    adapter_code = Column(String(32), nullable=True)
    supports_cod = Column(Boolean, nullable=False, default=False)
    enabled = Column(Boolean, nullable=False, default=True)
    rates = relationship("CarrierRate", back_populates="carrier", order_by="CarrierRate.id",
                         cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"{self.code} {self.name}"


class CarrierRate(db.Model):
    """One line of a carrier's rate card: for parcels to `regions` (province codes; empty =
    everywhere else), the first `first_kg` cost `first_fee`, each further `step_kg` or part
    of it `step_fee`; remote provinces add `remote_surcharge`."""

    __tablename__ = "carrier_rate"
    __table_args__ = (CheckConstraint("first_kg > 0 AND step_kg > 0", name="ck_carrier_rate_kg"),)

    id = Column(Integer, primary_key=True)
    carrier_id = Column(Integer, ForeignKey("carrier.id"), nullable=False, index=True)
    regions = Column(JSON, nullable=False, default=list)
    first_kg = Column(Numeric(10, 3), nullable=False, default=1)
    first_fee = Column(Money, nullable=False)
    step_kg = Column(Numeric(10, 3), nullable=False, default=1)
    step_fee = Column(Money, nullable=False)
    remote_surcharge = Column(Money, nullable=False, default=0)
    carrier = relationship("Carrier", back_populates="rates")

    def __repr__(self) -> str:
        return f"{self.carrier_id} {','.join(self.regions or []) or '*'}"


class CarrierRule(TimestampMixin, db.Model):
    """A selection rule (platform data), tried by priority (lower first): a shipping notice to
    one of `regions` (empty = any), weighing within the bounds, from `warehouse_id` (empty =
    any), with cash on delivery when `cod` says so, goes by `carrier_id` — or, when the rule
    names no carrier, by the cheapest enabled carrier for the parcel."""

    __tablename__ = "carrier_rule"

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False)
    priority = Column(Integer, nullable=False, default=100)
    regions = Column(JSON, nullable=False, default=list)
    warehouse_id = Column(Integer, ForeignKey("warehouse.id"), nullable=True)
    min_weight_kg = Column(Numeric(10, 3), nullable=True)
    max_weight_kg = Column(Numeric(10, 3), nullable=True)
    # None: any; True: only cash-on-delivery shipments; False: only prepaid
    cod = Column(Boolean, nullable=True)
    carrier_id = Column(Integer, ForeignKey("carrier.id"), nullable=True)
    enabled = Column(Boolean, nullable=False, default=True)
    carrier = relationship("Carrier")
    warehouse = relationship("Warehouse")

    def __repr__(self) -> str:
        return self.name


class FreightTemplate(ShopOwnedMixin, TimestampMixin, db.Model):
    """运费模板 of a shop: by piece or by weight; per-region first-unit and additional-unit fees
    (FreightRule rows); free shipping over an amount or a number of pieces; a surcharge for
    remote provinces. A shop's default template prices SPUs that name none."""

    __tablename__ = "freight_template"
    __table_args__ = (UniqueConstraint("shop_id", "name", name="uq_freight_template_shop_name"),)

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False)
    # piece | weight
    basis = Column(String(8), nullable=False, default="piece")
    free_over_amount = Column(Money, nullable=True)
    free_over_pieces = Column(Integer, nullable=True)
    remote_regions = Column(JSON, nullable=False, default=list)
    remote_surcharge = Column(Money, nullable=False, default=0)
    is_default = Column(Boolean, nullable=False, default=False)
    enabled = Column(Boolean, nullable=False, default=True)
    rules = relationship("FreightRule", back_populates="template", order_by="FreightRule.id",
                         cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return self.name


class FreightRule(ShopOwnedMixin, db.Model):
    """One region line of a template: the first `first_units` (pieces or kg) cost `first_fee`,
    each further `step_units` or part of it `step_fee`. Empty `regions`: every province no
    other line names."""

    __tablename__ = "freight_rule"
    __table_args__ = (CheckConstraint("first_units > 0 AND step_units > 0",
                                      name="ck_freight_rule_units"),)

    id = Column(Integer, primary_key=True)
    template_id = Column(Integer, ForeignKey("freight_template.id"), nullable=False, index=True)
    regions = Column(JSON, nullable=False, default=list)
    first_units = Column(Numeric(10, 3), nullable=False, default=1)
    first_fee = Column(Money, nullable=False)
    step_units = Column(Numeric(10, 3), nullable=False, default=1)
    step_fee = Column(Money, nullable=False)
    template = relationship("FreightTemplate", back_populates="rules")

    def __repr__(self) -> str:
        return f"{self.template_id} {','.join(self.regions or []) or '*'}"


class TrackingEvent(ShopOwnedMixin, db.Model):
    """One carrier scan of a shipment (pushed or polled); the same scan twice is kept once."""

    __tablename__ = "tracking_event"
    __table_args__ = (UniqueConstraint("notice_id", "external_id",
                                       name="uq_tracking_event_notice_external"),)

    id = Column(Integer, primary_key=True)
    notice_id = Column(Integer, ForeignKey("shipping_notice.id"), nullable=False, index=True)
    carrier_id = Column(Integer, ForeignKey("carrier.id"), nullable=True)
    tracking_no = Column(String(64), nullable=False, index=True)
    # the carrier's id of the scan (or a digest of it), for de-duplication
    external_id = Column(String(64), nullable=False)
    status = Column(String(20), nullable=False)
    description = Column(String(255), nullable=True)
    location = Column(String(64), nullable=True)
    occurred_at = Column(UTCDateTime, nullable=False)
    received_at = Column(UTCDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return f"{self.tracking_no} {self.status}"


class CarrierPush(db.Model):
    """A signed push a carrier sent (its nonce): a replay of the same push is refused."""

    __tablename__ = "carrier_push"
    __table_args__ = (UniqueConstraint("carrier_id", "nonce", name="uq_carrier_push_nonce"),)

    id = Column(Integer, primary_key=True)
    carrier_id = Column(Integer, ForeignKey("carrier.id"), nullable=False)
    nonce = Column(String(64), nullable=False)
    received_at = Column(UTCDateTime, nullable=False, default=utcnow)
    events = Column(Integer, nullable=False, default=0)


class CustomsDeclaration(ShopOwnedMixin, db.Model):
    """报关单 of a cross-border shipment: declared items with HS codes and values, the buyer's
    checked identity (kept as a hint and a digest, never in full), and its status at customs
    (draft → submitted → cleared / held)."""

    __tablename__ = "customs_declaration"

    id = Column(Integer, primary_key=True)
    declaration_no = Column(String(32), nullable=False, unique=True)
    notice_id = Column(Integer, ForeignKey("shipping_notice.id"), nullable=False, unique=True)
    order_id = Column(Integer, ForeignKey("order.id"), nullable=False, index=True)
    # [{"sku_id", "name", "hs_code", "quantity", "unit_value", "origin"}]
    items = Column(JSON, nullable=False, default=list)
    total_value = Column(Money, nullable=False, default=0)
    currency = Column(String(3), nullable=False, default="CNY")
    buyer_name = Column(String(64), nullable=False)
    buyer_id_hint = Column(String(32), nullable=False)
    buyer_id_digest = Column(String(64), nullable=False)
    status = Column(String(16), nullable=False, default="draft")
    customs_no = Column(String(64), nullable=True)
    message = Column(String(255), nullable=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    submitted_at = Column(UTCDateTime, nullable=True)
    decided_at = Column(UTCDateTime, nullable=True)

    def __repr__(self) -> str:
        return self.declaration_no


class SandboxShipment(db.Model):
    """The sandbox carrier's book: what a real carrier keeps on its side — the shipments it
    was told about and the scans it made of each (pushed to us, or answered when polled)."""

    __tablename__ = "sandbox_shipment"

    id = Column(Integer, primary_key=True)
    tracking_no = Column(String(64), nullable=False, unique=True)
    carrier_code = Column(String(32), nullable=False)
    # [{"id", "status", "description", "location", "occurred_at"}], oldest first
    scans = Column(JSON, nullable=False, default=list)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return self.tracking_no
