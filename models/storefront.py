"""运营中心, the storefront's page configuration: banners, icon navigation and tabs, each at a
position with its image, link target, schedule, sort order and platforms. The public read
`GET /api/v1/storefront/slots` answers what is live now."""
from sqlalchemy import JSON, Boolean, CheckConstraint, Column, ForeignKey, Integer, String
from sqlalchemy.orm import relationship

from app.extensions import db
from models.base import TimestampMixin, UTCDateTime

SLOT_KINDS = ("banner", "icon", "tab")
LINK_TYPES = ("spu", "zone", "url", "none")
PLATFORMS = ("app", "h5", "pc", "mini_program")


class StorefrontSlot(TimestampMixin, db.Model):
    """One banner, icon-navigation entry or tab (platform data) at a `position` of the
    storefront ("home_top", ...): its image, where a tap leads, when it is live, its order
    among its neighbours and the platforms that show it (empty: all of them)."""

    __tablename__ = "storefront_slot"
    __table_args__ = (
        CheckConstraint("ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at",
                        name="ck_storefront_slot_window"),
    )

    id = Column(Integer, primary_key=True)
    kind = Column(String(16), nullable=False, index=True)
    position = Column(String(32), nullable=False, index=True)
    title = Column(String(64), nullable=False)
    image_id = Column(Integer, ForeignKey("uploaded_file.id"), nullable=True)
    # an image kept elsewhere (a CDN), when no uploaded image is named
    image_url = Column(String(512), nullable=True)
    link_type = Column(String(16), nullable=False, default="none")
    # an SPU id, a zone code or an absolute URL, as `link_type` says
    link_value = Column(String(512), nullable=True)
    starts_at = Column(UTCDateTime, nullable=True)
    ends_at = Column(UTCDateTime, nullable=True)
    sort_order = Column(Integer, nullable=False, default=0)
    # a subset of PLATFORMS; empty: every platform
    platforms = Column(JSON, nullable=False, default=list)
    enabled = Column(Boolean, nullable=False, default=True)
    image = relationship("UploadedFile")

    def __repr__(self) -> str:
        return f"{self.kind} {self.position}: {self.title}"
