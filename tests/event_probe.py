"""Subscribers used by the event tests; importable by `rq worker` processes through
HOUTAI_EXTENSIONS=tests.event_probe."""
from app.extensions import db
from models.shop import Shop
from services.events import subscribe

EVENT = "probe.happened"


def _shop(payload) -> Shop:
    return db.session.get(Shop, payload["shop_id"])


@subscribe(EVENT, name="probe.bang")
def bang(payload):
    """Each run appends one "!" to the shop's name: the count shows how often it ran."""
    shop = _shop(payload)
    shop.name = shop.name + "!"


@subscribe(EVENT, name="probe.flaky")
def flaky(payload):
    """Fails while the shop's settlement account says "fail"; appends "?" once it works."""
    shop = _shop(payload)
    if shop.settlement_account == "fail":
        raise RuntimeError("downstream unavailable")
    shop.name = shop.name + "?"
