"""Demo data of tracking and customs (once): the sandbox carrier, a queue for shipping
exceptions, a shipment tracked through sandbox scans to signed (its order delivered), and a
bonded (cross-border) warehouse whose shipment is declared, cleared by the sandbox customs and
shipped. Everything goes through the services, as in production."""
import logging

from flask import current_app

from app.extensions import db
from models.inventory import Warehouse
from models.logistics import Carrier, TrackingEvent
from models.member import Member
from models.order import ShippingNotice, Trade
from models.ticket import TicketQueue
from services import customs, customs_adapters, inventory, order
from services.actor import Actor, acting_as
from services.carriers import WsgiTransport, sandbox

log = logging.getLogger(__name__)

CARRIER_CODE = "sandbox"      # the logistics demo adds it with its rate card
TRACKING_PREFIX = "SBX"
BONDED_CODE = "BONDED-BJ"
# the sample number of GB 11643-1999 (its check digit is X)
DEMO_ID_NUMBER = "11010519491231002X"


def load_tracking() -> bool:
    """Once: returns False when the sandbox carrier already has scans."""
    carrier = Carrier.query.filter_by(code=CARRIER_CODE).one_or_none()
    if carrier is not None and TrackingEvent.query.filter_by(carrier_id=carrier.id).first():
        return False
    if not current_app.config.get("SANDBOX_CARRIER_SECRET") or \
            Member.query.filter_by(account="buyer_wang").first() is None:
        return False
    with acting_as(Actor.system("demo")):
        if carrier is None:
            carrier = Carrier(code=CARRIER_CODE, name="沙箱快递 Sandbox carrier",
                              adapter="sandbox", supports_cod=False, enabled=True)
            db.session.add(carrier)
        if TicketQueue.query.filter_by(skill="logistics").first() is None:
            db.session.add(TicketQueue(name="Shipping exceptions", skill="logistics",
                                       response_minutes=60, resolve_minutes=1440,
                                       enabled=True))
        db.session.commit()
        _tracked_to_signed()
        _cleared_cross_border()
    return True


def _place_paid(account: str, sku_id: int, key: str) -> Trade:
    member = Member.query.filter_by(account=account).one()
    with acting_as(Actor(name="storefront", authenticated=True)):
        placed = order.place({"member_id": member.id, "address_id": member.addresses[0].id,
                              "lines": [{"sku_id": sku_id, "quantity": 1}]}, key)
        db.session.commit()
    trade = order.mark_paid(placed.trade_id, "demo offline payment")
    db.session.commit()
    return trade


def _demo_sku():
    from services.demo_product import _demo_skus

    return _demo_skus()[1]


def _tracked_to_signed() -> None:
    """A paid order shipped with the sandbox carrier, scanned to signed (pushed to the
    webhook through the application itself, so no server need run)."""
    trade = _place_paid("buyer_li", _demo_sku().id, "demo-tracking-1")
    extensions = current_app.extensions
    previous = extensions.get(sandbox.TRANSPORT_KEY)
    extensions[sandbox.TRANSPORT_KEY] = WsgiTransport()
    try:
        for notice in [n for o in trade.orders for n in o.notices]:
            tracking_no = f"{TRACKING_PREFIX}{notice.id:010d}"
            order.ship_notice(notice.id, CARRIER_CODE, tracking_no)
            db.session.commit()
            sandbox.book().register(CARRIER_CODE, tracking_no)
            for status, text, place in (("collected", "快件已揽收", "上海"),
                                        ("in_transit", "快件已到达上海转运中心", "上海"),
                                        ("out_for_delivery", "快件派送中", "上海徐汇"),
                                        ("signed", "已签收，签收人：本人", "上海徐汇")):
                sandbox.advance(tracking_no, status, text, place)
    finally:
        if previous is None:
            extensions.pop(sandbox.TRANSPORT_KEY, None)
        else:
            extensions[sandbox.TRANSPORT_KEY] = previous


def _cleared_cross_border() -> None:
    """A bonded warehouse in Beijing stocking one SKU; an order of a Beijing buyer ships from
    it once its declaration is cleared (decided by the sandbox customs, as the tick asks)."""
    sku = _demo_sku()
    warehouse = Warehouse.query.filter_by(code=BONDED_CODE, shop_id=None).one_or_none()
    if warehouse is None:
        warehouse = Warehouse(code=BONDED_CODE, name="北京保税仓 Bonded warehouse",
                              region="110000", priority=0, cross_border=True)
        db.session.add(warehouse)
        db.session.commit()
    inventory.adjust(sku.id, warehouse.id, 10, "demo bonded stock")
    db.session.commit()
    trade = _place_paid("buyer_wang", sku.id, "demo-customs-1")
    notices = [n for o in trade.orders for n in o.notices if n.warehouse_id == warehouse.id]
    if not notices:      # dispatch chose another warehouse: nothing to declare
        log.info("demo: the bonded warehouse ships no demo order; no declaration made")
        return
    notice = notices[0]
    declaration = customs.declare({
        "notice_id": notice.id, "buyer_name": "王小明", "buyer_id_number": DEMO_ID_NUMBER,
        "items": [{"sku_id": line["sku_id"], "hs_code": "6109100010", "origin": "JP"}
                  for line in notice.lines]})
    db.session.commit()
    customs.submit(declaration.id)
    db.session.commit()
    customs.apply_decision(customs_adapters.in_use().query(declaration.customs_no))
    db.session.commit()
    if db.session.get(ShippingNotice, notice.id) and declaration.status == "cleared":
        order.ship_notice(notice.id, CARRIER_CODE, f"{TRACKING_PREFIX}{notice.id:010d}")
        db.session.commit()
