"""Users of the console and the API: FAB's user with the shop a merchant belongs to."""
from flask_appbuilder.security.sqla.models import User as FabUser
from sqlalchemy import Column, ForeignKey, Integer
from sqlalchemy.orm import relationship


class UserAccount(FabUser):
    """A console or API user; `shop_id` set means a merchant user, scoped to that shop."""

    __tablename__ = "ab_user"
    __table_args__ = {"extend_existing": True}

    shop_id = Column(Integer, ForeignKey("shop.id"), nullable=True, index=True)
    shop = relationship("Shop")
