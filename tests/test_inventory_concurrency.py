"""Zero oversell on PostgreSQL: real threads racing for the last units, with controls."""
import threading

from sqlalchemy import select, update

from app.extensions import db
from models.inventory import Stock, StockLedger
from services import inventory
from services.actor import Actor, acting_as
from tests.conftest import requires_postgres
from tests.factories import catalog, make_spu, make_warehouse, stock_up


def race(app, clients, attempts, reserve_one):
    """`attempts` reservations of one unit spread over `clients` threads started together;
    returns how many succeeded."""
    barrier = threading.Barrier(clients)
    succeeded = []
    lock = threading.Lock()

    def client(n):
        with app.app_context(), acting_as(Actor.system(f"client-{n}")):
            barrier.wait()
            for attempt in range(n, attempts, clients):
                try:
                    reserve_one(attempt)
                    db.session.commit()
                    with lock:
                        succeeded.append(attempt)
                except inventory.ShortStockError:
                    db.session.rollback()
            db.session.remove()

    failures = []

    def guarded(n):
        try:
            client(n)
        except Exception as exc:  # noqa: BLE001 - a crashed client fails the test below
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return len(succeeded)


def oversold(sold, stock_id, units) -> list[str]:
    """What is wrong after a race for `units` units (empty when nothing is)."""
    db.session.expire_all()
    stock = db.session.get(Stock, stock_id)
    reserved_in_ledger = db.session.scalar(select(db.func.count()).select_from(StockLedger)
                                           .where(StockLedger.stock_id == stock_id,
                                                  StockLedger.reason == "reserve"))
    problems = []
    if sold != units:
        problems.append(f"sold {sold} of {units}")
    if stock.reserved != sold:
        problems.append(f"reserved {stock.reserved} but sold {sold}")
    if reserved_in_ledger != sold:
        problems.append(f"ledger has {reserved_in_ledger} reservations for {sold} sales")
    return problems


def setup_stock(shops, units):
    catalog()
    sku = make_spu(shops["A"], with_skus=True).skus[0]
    return sku, stock_up(sku, make_warehouse(shops["A"]), units)


def test_200_attempts_from_32_clients_sell_exactly_the_last_50(app, shops):
    requires_postgres(app)
    sku, stock = setup_stock(shops, 50)
    sku_id, stock_id = sku.id, stock.id  # plain ids: threads must not touch this session
    sold = race(app, 32, 200, lambda n: inventory.reserve([(sku_id, 1)], f"race-{n}"))
    assert oversold(sold, stock_id, 50) == []


def naive_reserve(sku_id, gate):
    """Read, check, then write the new figure: the bug the conditional UPDATE prevents."""
    stock = db.session.scalars(select(Stock).where(Stock.sku_id == sku_id)).one()
    if stock.on_hand - stock.reserved < 1:
        raise inventory.ShortStockError([{"sku_id": sku_id, "requested": 1, "available": 0}])
    seen = stock.reserved
    gate()
    db.session.execute(update(Stock).where(Stock.id == stock.id).values(reserved=seen + 1))
    db.session.add(StockLedger(stock_id=stock.id, sku_id=sku_id, warehouse_id=stock.warehouse_id,
                               shop_id=stock.shop_id, reason="reserve", on_hand_before=0,
                               on_hand_after=0, reserved_before=seen, reserved_after=seen + 1,
                               actor="naive"))


def test_control_the_race_catches_a_read_then_write_reservation(app, shops):
    """Two clients read the last unit, then both write: the check reports the oversell."""
    requires_postgres(app)
    sku, stock = setup_stock(shops, 1)
    sku_id, stock_id = sku.id, stock.id
    both_read = threading.Barrier(2)
    sold = race(app, 2, 2, lambda n: naive_reserve(sku_id, both_read.wait))
    assert oversold(sold, stock_id, 1) != []


def test_carts_racing_in_opposite_sku_order_never_deadlock_or_half_reserve(app, shops):
    requires_postgres(app)
    catalog()
    skus = make_spu(shops["A"], with_skus=True).skus[:2]
    warehouse = make_warehouse(shops["A"])
    for sku in skus:
        stock_up(sku, warehouse, 30)
    first, second = (sku.id for sku in skus)

    def cart(n):
        lines = [(first, 1), (second, 1)] if n % 2 else [(second, 1), (first, 1)]
        inventory.reserve(lines, f"cart-{n}")

    sold = race(app, 16, 64, cart)
    db.session.expire_all()
    reserved = [db.session.get(Stock, s.id).reserved for s in
                Stock.query.order_by(Stock.sku_id)]
    assert sold == 30 and reserved == [30, 30]
