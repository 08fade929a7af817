"""库存: stock per SKU per warehouse changes only through the service, always with its ledger."""
import pytest

from app.extensions import db
from models.inventory import Stock, StockLedger
from services import inventory
from services.actor import Actor, acting_as
from tests.factories import catalog, make_spu, make_warehouse, stock_up


@pytest.fixture
def grid(app, shops):
    catalog()
    return make_spu(shops["A"], with_skus=True).skus


def adjust(client, sku, warehouse, delta, reason="count"):
    return client.post("/api/v1/stock/adjust", json={
        "sku_id": sku.id, "warehouse_id": warehouse.id, "delta": delta, "reason": reason})


def test_adjust_writes_the_ledger_and_answers_the_stock(api, grid, shops):
    warehouse = make_warehouse(shops["A"])
    merchant = api("merchant_a")
    answer = adjust(merchant, grid[0], warehouse, 12, "first delivery")
    assert answer.status_code == 200, answer.json
    assert (answer.json["result"]["on_hand"], answer.json["result"]["reserved"],
            answer.json["result"]["available"]) == (12, 0, 12)
    adjust(merchant, grid[0], warehouse, -2, "damaged")
    ledger = StockLedger.query.order_by(StockLedger.id).all()
    assert [(e.reason, e.note, e.on_hand_before, e.on_hand_after, e.actor) for e in ledger] == [
        ("adjust", "first delivery", 0, 12, "merchant_a"), ("adjust", "damaged", 12, 10, "merchant_a")]


def test_stock_never_goes_below_zero_or_below_reserved(api, grid, shops):
    warehouse = make_warehouse(shops["A"])
    stock_up(grid[0], warehouse, 5)
    with acting_as(Actor.system("test")):
        inventory.reserve([(grid[0].id, 3)], "T1")
        db.session.commit()
    answer = adjust(api("merchant_a"), grid[0], warehouse, -3)
    assert answer.status_code == 409
    db.session.expire_all()
    stock = Stock.query.one()
    assert (stock.on_hand, stock.reserved) == (5, 3)
    assert StockLedger.query.count() == 2


def test_another_shops_warehouse_is_not_found(api, grid, shops):
    theirs = make_warehouse(shops["B"])
    answer = adjust(api("merchant_a"), grid[0], theirs, 5)
    assert answer.status_code == 404
    assert Stock.query.count() == 0


@pytest.mark.parametrize("body, field", [
    ({"delta": 0}, "delta"), ({"delta": 1.5}, "delta"), ({"delta": 1, "reason": ""}, "reason"),
    ({"delta": 1, "sku_id": 987654}, "sku_id"),
])
def test_bad_adjustments_name_the_field(api, grid, shops, body, field):
    warehouse = make_warehouse(shops["A"])
    full = {"sku_id": grid[0].id, "warehouse_id": warehouse.id, "delta": 1, "reason": "x", **body}
    answer = api("merchant_a").post("/api/v1/stock/adjust", json=full)
    assert answer.status_code == 422 and field in answer.json["errors"]
    assert StockLedger.query.count() == 0


def test_reserving_many_lines_is_all_or_nothing(grid, shops):
    warehouse = make_warehouse(shops["A"])
    stock_up(grid[0], warehouse, 5)
    stock_up(grid[1], warehouse, 1)
    with acting_as(Actor.system("test")):
        with pytest.raises(inventory.ShortStockError) as short:
            inventory.reserve([(grid[0].id, 2), (grid[1].id, 3)], "T2")
        db.session.rollback()
    assert short.value.short == [{"sku_id": grid[1].id, "requested": 3, "available": 1}]
    assert [s.reserved for s in Stock.query.order_by(Stock.id)] == [0, 0]


def test_a_line_is_reserved_across_warehouses_when_one_is_not_enough(grid, shops):
    first, second = make_warehouse(shops["A"]), make_warehouse(shops["A"])
    stock_up(grid[0], first, 3)
    stock_up(grid[0], second, 4)
    with acting_as(Actor.system("test")):
        taken = inventory.reserve([(grid[0].id, 6)], "T3")
        db.session.commit()
    assert sorted((r.warehouse_id, r.quantity) for r in taken) == [(first.id, 2), (second.id, 4)]


def test_release_and_deduct_keep_the_ledger_consistent(grid, shops):
    warehouse = make_warehouse(shops["A"])
    stock_up(grid[0], warehouse, 10)
    with acting_as(Actor.system("test")):
        first = inventory.reserve([(grid[0].id, 4)], "T4")
        second = inventory.reserve([(grid[0].id, 3)], "T5")
        inventory.release(first, "T4")
        inventory.deduct(second, "T5")
        db.session.commit()
    stock = Stock.query.one()
    assert (stock.on_hand, stock.reserved) == (7, 0)
    rows = StockLedger.query.order_by(StockLedger.id).all()
    for before, after in zip(rows, rows[1:]):
        assert (after.on_hand_before, after.reserved_before) == (before.on_hand_after,
                                                                 before.reserved_after)
    assert [r.reason for r in rows] == ["adjust", "reserve", "reserve", "release", "deduct"]


def test_low_stock_raises_an_event_and_is_listed(app, grid, shops, monkeypatch):
    from models.events import OutboxEvent

    monkeypatch.setitem(app.config, "REDIS_URL", None)
    grid[0].stock_alert_qty = 5
    db.session.commit()
    warehouse = make_warehouse(shops["A"])
    stock_up(grid[0], warehouse, 10)
    assert OutboxEvent.query.filter_by(name="stock.low").count() == 0
    with acting_as(Actor.system("test")):
        inventory.reserve([(grid[0].id, 5)], "T-low")  # 10 → 5 available: crosses the alert
        inventory.reserve([(grid[0].id, 1)], "T-low2")  # still low: no second event
        db.session.commit()
    assert OutboxEvent.query.filter_by(name="stock.low").count() == 1
    with acting_as(Actor(name="merchant_b", shop_id=shops["B"].id, authenticated=True,
                         merchant=True)):
        assert inventory.low_stock() == []
    with acting_as(Actor.system("test")):
        assert [s.sku_id for s in inventory.low_stock()] == [grid[0].id]


def test_ledger_and_stock_are_read_only_over_rest(api, grid, shops):
    stock = stock_up(grid[0], make_warehouse(shops["A"]), 3)
    admin = api("Admin")
    assert admin.put(f"/api/v1/stock/{stock.id}", json={"on_hand": 99}).status_code == 405
    assert admin.post("/api/v1/stock_ledger/", json={}).status_code == 405
    assert admin.delete("/api/v1/stock_ledger/1").status_code == 405


def test_refused_first_adjustment_stores_nothing(api, grid, shops):
    warehouse = make_warehouse(shops["A"])
    answer = adjust(api("merchant_a"), grid[0], warehouse, -1)
    assert answer.status_code == 409
    assert Stock.query.count() == 0 and StockLedger.query.count() == 0


def test_disabled_warehouses_are_not_reserved_from(grid, shops):
    warehouse = make_warehouse(shops["A"])
    stock_up(grid[0], warehouse, 5)
    warehouse.enabled = False
    db.session.commit()
    with acting_as(Actor.system("test")), pytest.raises(inventory.ShortStockError):
        inventory.reserve([(grid[0].id, 1)], "T-disabled")
    db.session.rollback()


def test_merchant_warehouse_made_in_the_screen_belongs_to_its_shop(browser, shops):
    from models.inventory import Warehouse

    merchant = browser("merchant_a")
    merchant.post_form("/warehouseview/add", {"code": "BLANK", "name": "Blank", "shop": "", "enabled": "y"},
                       token_from="/warehouseview/add")
    assert {w.shop_id for w in Warehouse.query.filter_by(code="BLANK")} <= {shops["A"].id}
    merchant.post_form("/warehouseview/add", {"code": "MY", "name": "Mine", "enabled": "y",
                                              "shop": str(shops["A"].id)},
                       token_from="/warehouseview/add")
    assert Warehouse.query.filter_by(code="MY").one().shop_id == shops["A"].id
