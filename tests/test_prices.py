"""运营中心 price management: price batches (preview math, filters, merchant scope, the
approval threshold, scheduled application by `houtai tick`, skipped lines, history), the
threshold enforced inside the one price service for every direct change, and two ticks
racing for one batch on PostgreSQL."""
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from app.extensions import db
from models.events import OutboxEvent
from models.prices import PriceBatch, PriceBatchLine
from models.product import Brand, Category, PriceChange, Sku
from services import clock, prices, product
from services.actor import Actor, acting_as
from tests.conftest import requires_postgres
from tests.factories import catalog, make_spu
from tests.race import met_or_blocked

NOON = datetime(2026, 11, 25, 4, 0, tzinfo=timezone.utc)   # 12:00 in Shanghai


@pytest.fixture
def parts(app, shops):
    return catalog()


def priced(shop, *amounts, **overrides):
    """A draft SPU of `shop` whose SKUs (in id order) cost `amounts` (99.00 by default)."""
    spu = make_spu(shop, with_skus=True, **overrides)
    skus = sorted(spu.skus, key=lambda s: s.id)
    with acting_as(Actor.system("test")):
        for sku, amount in zip(skus, amounts):
            sku.price = Decimal(amount)      # set up data; not a price change under test
        db.session.commit()
    return skus


def prices_of(skus):
    db.session.expire_all()
    return [db.session.get(Sku, s.id).price for s in skus]


def history(sku):
    return [(h.old_price, h.new_price, h.reason) for h in PriceChange.query.filter_by(
        sku_id=sku.id).order_by(PriceChange.id) if h.old_price is not None]


def houtai(app, *args):
    from app.cli import houtai as group

    return app.test_cli_runner().invoke(group, list(args))


def body(skus, mode="percent", value="-10.00", **extra):
    return {"filters": {"sku_ids": [s.id for s in skus]}, "mode": mode, "value": value,
            "reason": "Double eleven", **extra}


# -- preview ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, value, expected", [
    # 10.30 × 0.95 = 9.785 → 9.79 (half up; half-even would say 9.78); 99.99 × 0.95 = 94.9905
    ("percent", "-5.00", ["9.79", "94.99", "0.95", "190.00"]),
    ("percent", "12.50", ["11.59", "112.49", "1.13", "225.00"]),
    ("amount", "-0.50", ["9.80", "99.49", "0.50", "199.50"]),
    ("set", "8.88", ["8.88", "8.88", "8.88", "8.88"]),
])
def test_preview_works_out_each_line_to_the_cent_and_writes_nothing(api, parts, shops, mode,
                                                                     value, expected):
    skus = priced(shops["A"], "10.30", "99.99", "1.00", "200.00")
    answer = api("ProductOps").post("/api/v1/price_batch/preview", json={
        "filters": {"sku_ids": [s.id for s in skus]}, "mode": mode, "value": value})
    assert answer.status_code == 200, answer.json
    lines = answer.json["result"]["lines"]
    assert [line["new_price"] for line in lines] == expected
    assert [line["old_price"] for line in lines] == ["10.30", "99.99", "1.00", "200.00"]
    assert lines[0]["sku_code"] == skus[0].code and lines[0]["shop_id"] == shops["A"].id
    assert PriceBatch.query.count() == 0 and PriceBatchLine.query.count() == 0
    assert prices_of(skus) == [Decimal("10.30"), Decimal("99.99"), Decimal("1.00"),
                               Decimal("200.00")]


def test_preview_reports_the_cut_percent_and_whether_approval_is_needed(api, parts, shops):
    skus = priced(shops["A"], "100.00", "80.00")[:2]
    result = api("ProductOps").post("/api/v1/price_batch/preview", json={
        "filters": {"sku_ids": [s.id for s in skus]}, "mode": "amount",
        "value": "-30.00"}).json["result"]
    assert [(line["cut_percent"], line["requires_approval"]) for line in result["lines"]] == [
        ("30.00", False), ("37.50", True)]
    assert (result["max_cut_percent"], result["requires_approval"],
            result["threshold_percent"]) == ("37.50", True, "30")


def test_a_new_price_below_zero_is_refused_naming_the_sku(api, parts, shops):
    skus = priced(shops["A"], "99.00", "200.00")
    answer = api("ProductOps").post("/api/v1/price_batch/", json=body(skus, "amount", "-150.00"))
    assert answer.status_code == 422
    assert skus[0].code in answer.json["errors"]["value"][0]
    assert skus[1].code not in answer.json["errors"]["value"][0]
    assert PriceBatch.query.count() == 0 and prices_of(skus)[0] == Decimal("99.00")


@pytest.mark.parametrize("change, field", [
    ({"mode": "set", "value": "-1.00"}, "value"),
    ({"mode": "set", "value": "1.234"}, "value"),
    ({"mode": "percent", "value": "abc"}, "value"),
    ({"mode": "double", "value": "1.00"}, "mode"),
    ({"filters": {}}, "filters"),
    ({"filters": {"colour": "red"}}, "filters"),
    ({"filters": {"sku_ids": []}}, "filters"),
    ({"filters": {"category_id": 999999}}, "filters.category_id"),
    ({"effective_at": "2026-12-01T10:00:00"}, "effective_at"),
    ({"reason": ""}, "reason"),
])
def test_bad_batches_are_refused_naming_the_field(api, parts, shops, change, field):
    skus = priced(shops["A"])
    answer = api("ProductOps").post("/api/v1/price_batch/", json={**body(skus), **change})
    assert answer.status_code == 422, answer.json
    assert any(key == field or key.startswith(field) for key in answer.json["errors"]), \
        answer.json
    assert PriceBatch.query.count() == 0


def test_a_batch_is_capped_in_skus(app, api, parts, shops, monkeypatch):
    skus = priced(shops["A"])
    monkeypatch.setitem(app.config, "PRICE_BATCH_MAX_SKUS", 3)
    answer = api("ProductOps").post("/api/v1/price_batch/preview", json={
        "filters": {"shop_id": shops["A"].id}, "mode": "percent", "value": "-1.00"})
    assert answer.status_code == 422 and "3" in answer.json["errors"]["filters"][0]
    narrow = api("ProductOps").post("/api/v1/price_batch/preview", json={
        "filters": {"sku_ids": [s.id for s in skus[:3]]}, "mode": "percent", "value": "-1.00"})
    assert narrow.status_code == 200 and len(narrow.json["result"]["lines"]) == 3


# -- filters ---------------------------------------------------------------------------------------

def _polos(parts):
    """A second leaf under Tops (sales attribute: Colour only)."""
    with acting_as(Actor.system("test")):
        polos = Category(name="Polos", parent_id=parts["middle"].id)
        db.session.add(polos)
        product.place_category(polos)
        db.session.commit()
    return polos


def _ids_for(ops, filters):
    answer = ops.post("/api/v1/price_batch/preview", json={
        "filters": filters, "mode": "amount", "value": "1.00"})
    assert answer.status_code == 200, answer.json
    return sorted(line["sku_id"] for line in answer.json["result"]["lines"])


def test_filters_by_category_with_descendants_brand_spu_sku_and_shop(api, parts, shops):
    tees = priced(shops["A"])
    polos = _polos(parts)
    with acting_as(Actor.system("test")):
        other_brand = Brand(name="Zenith", enabled=True)
        db.session.add(other_brand)
        db.session.commit()
    polo_spu = make_spu(shops["A"], category_id=polos.id, brand_id=other_brand.id,
                        attribute_values={})
    with acting_as(Actor.system("test")):
        polo_skus = product.generate_skus(polo_spu.id, {
            str(parts["attributes"]["Colour"].id): ["red", "blue"]}, Decimal("50.00"))
        db.session.commit()
    theirs = priced(shops["B"])
    ops = api("ProductOps")
    tee_ids, polo_ids, their_ids = ([s.id for s in group] for group in (tees, polo_skus, theirs))
    assert _ids_for(ops, {"category_id": parts["middle"].id}) == sorted(
        tee_ids + polo_ids + their_ids)
    assert _ids_for(ops, {"category_id": parts["leaf"].id}) == sorted(tee_ids + their_ids)
    assert _ids_for(ops, {"category_id": polos.id}) == sorted(polo_ids)
    assert _ids_for(ops, {"brand_id": other_brand.id}) == sorted(polo_ids)
    assert _ids_for(ops, {"brand_id": parts["brand"].id, "shop_id": shops["A"].id}) == tee_ids
    assert _ids_for(ops, {"spu_ids": [polo_spu.id]}) == sorted(polo_ids)
    assert _ids_for(ops, {"sku_ids": [tee_ids[0], their_ids[1]]}) == [tee_ids[0], their_ids[1]]
    assert _ids_for(ops, {"shop_id": shops["B"].id}) == their_ids
    empty = ops.post("/api/v1/price_batch/preview", json={
        "filters": {"shop_id": shops["B"].id, "spu_ids": [polo_spu.id]}, "mode": "amount",
        "value": "1.00"})
    assert empty.status_code == 422 and "filters" in empty.json["errors"]


# -- merchants -------------------------------------------------------------------------------------

def test_merchants_batch_their_own_shop_only(api, parts, shops):
    mine, theirs = priced(shops["A"]), priced(shops["B"])
    merchant = api("merchant_a")
    for filters, field in (({"sku_ids": [theirs[0].id]}, "filters.sku_ids"),
                           ({"sku_ids": [mine[0].id, theirs[0].id]}, "filters.sku_ids"),
                           ({"spu_ids": [theirs[0].spu_id]}, "filters.spu_ids"),
                           ({"shop_id": shops["B"].id}, "filters.shop_id")):
        answer = merchant.post("/api/v1/price_batch/", json={**body(mine), "filters": filters})
        assert answer.status_code == 422 and field in answer.json["errors"], answer.json
    # a category covers every shop's SKUs: a merchant's batch takes only its own
    made = merchant.post("/api/v1/price_batch/", json={
        **body(mine), "filters": {"category_id": parts["root"].id}})
    assert made.status_code == 201, made.json
    result = made.json["result"]
    assert result["shop_id"] == shops["A"].id
    assert sorted(line["sku_id"] for line in result["line_items"]) == [s.id for s in mine]
    assert prices_of(theirs) == [Decimal("99.00")] * 4
    assert prices_of(mine) == [Decimal("89.10")] * 4
    assert api("merchant_b").get(f"/api/v1/price_batch/{made.json['id']}").status_code == 404


def test_a_merchants_deep_cut_waits_and_only_platform_staff_approve_it(api, parts, shops):
    skus = priced(shops["A"])
    merchant = api("merchant_a")
    made = merchant.post("/api/v1/price_batch/", json=body(skus, "percent", "-50.00"))
    assert made.status_code == 201
    assert (made.json["result"]["status"], made.json["result"]["requires_approval"],
            made.json["result"]["max_cut_percent"]) == ("pending_approval", True, "50.00")
    batch_id = made.json["id"]
    assert merchant.post(f"/api/v1/price_batch/{batch_id}/approve").status_code == 403
    assert api("Marketing").post(f"/api/v1/price_batch/{batch_id}/approve").status_code == 403
    with acting_as(Actor(name="merchant_a", shop_id=shops["A"].id, authenticated=True,
                         merchant=True)):
        with pytest.raises(prices.ForbiddenError):
            prices.approve(batch_id)
    db.session.rollback()
    assert prices_of(skus) == [Decimal("99.00")] * 4
    approved = api("ProductOps").post(f"/api/v1/price_batch/{batch_id}/approve", json={})
    assert approved.status_code == 200, approved.json
    assert (approved.json["result"]["status"], approved.json["result"]["decided_by"]) == (
        "applied", "productops")
    assert prices_of(skus) == [Decimal("49.50")] * 4


def test_reject_needs_a_reason_and_cancel_works_until_applied(api, parts, shops):
    skus = priced(shops["A"])
    ops = api("ProductOps")
    deep = ops.post("/api/v1/price_batch/", json=body(skus, "percent", "-60.00")).json["id"]
    assert ops.post(f"/api/v1/price_batch/{deep}/reject", json={}).status_code == 422
    rejected = ops.post(f"/api/v1/price_batch/{deep}/reject", json={"reason": "Too deep"})
    assert (rejected.status_code, rejected.json["result"]["status"],
            rejected.json["result"]["decision_reason"]) == (200, "rejected", "Too deep")
    assert ops.post(f"/api/v1/price_batch/{deep}/approve").status_code == 409
    later = clock.now() + timedelta(days=1)
    scheduled = api("merchant_a").post("/api/v1/price_batch/", json=body(
        skus, effective_at=later.isoformat())).json["id"]
    assert api("merchant_a").post(f"/api/v1/price_batch/{scheduled}/cancel").json[
        "result"]["status"] == "cancelled"
    now_batch = ops.post("/api/v1/price_batch/", json=body(skus)).json
    assert now_batch["result"]["status"] == "applied"
    answer = ops.post(f"/api/v1/price_batch/{now_batch['id']}/cancel")
    assert answer.status_code == 409 and answer.json["errors"]["status"] == ["applied"]
    assert prices_of(skus) == [Decimal("89.10")] * 4


# -- the approval threshold ------------------------------------------------------------------------

def test_a_cut_exactly_at_the_threshold_needs_no_approval_one_cent_more_does(api, parts, shops):
    skus = priced(shops["A"], "100.00", "100.00")
    ops = api("ProductOps")
    at = ops.post("/api/v1/price_batch/", json=body(skus[:1], "percent", "-30.00")).json
    over = ops.post("/api/v1/price_batch/", json=body(skus[1:2], "percent", "-30.01")).json
    assert (at["result"]["status"], at["result"]["requires_approval"]) == ("applied", False)
    assert (over["result"]["status"], over["result"]["requires_approval"]) == (
        "pending_approval", True)
    assert prices_of(skus[:2]) == [Decimal("70.00"), Decimal("100.00")]


def test_the_threshold_is_a_setting(app, api, parts, shops, monkeypatch):
    skus = priced(shops["A"], "100.00")
    monkeypatch.setitem(app.config, "PRICE_CUT_APPROVAL_PERCENT", Decimal("10"))
    made = api("ProductOps").post("/api/v1/price_batch/", json=body(skus[:1], "amount", "-11.00"))
    assert made.json["result"]["status"] == "pending_approval"


def test_a_direct_cut_beyond_the_threshold_is_refused_by_the_api(api, parts, shops):
    skus = priced(shops["A"])
    merchant = api("merchant_a")
    one = merchant.post(f"/api/v1/sku/{skus[0].id}/price",
                        json={"price": "69.29", "reason": "clearance"})
    assert one.status_code == 409 and "price batch" in one.json["errors"]["price"][0]
    bulk = merchant.post("/api/v1/sku/bulk", json={"ids": [s.id for s in skus],
                                                   "price": "10.00", "reason": "clearance",
                                                   "stock_alert_qty": 7})
    assert bulk.status_code == 409 and "price" in bulk.json["errors"]
    assert prices_of(skus) == [Decimal("99.00")] * 4
    assert {db.session.get(Sku, s.id).stock_alert_qty for s in skus} == {0}
    assert all(history(s) == [] for s in skus)
    # the threshold itself (99.00 → 69.30 is exactly 30%) and rises pass
    assert merchant.post(f"/api/v1/sku/{skus[0].id}/price",
                         json={"price": "69.30", "reason": "sale"}).status_code == 200
    assert merchant.post(f"/api/v1/sku/{skus[1].id}/price",
                         json={"price": "500.00", "reason": "premium"}).status_code == 200
    assert prices_of(skus[:2]) == [Decimal("69.30"), Decimal("500.00")]


def test_a_direct_cut_beyond_the_threshold_is_refused_on_the_screen(browser, parts, shops):
    skus = priced(shops["A"])
    ids = ",".join(str(s.id) for s in skus)
    page = browser("merchant_a").post_form(f"/skuview/bulk?ids={ids}", {
        "ids": ids, "price": "50.00", "stock_alert_qty": "3", "reason": "screen bulk"},
        token_from=f"/skuview/bulk?ids={ids}")
    assert page.status_code == 200 and "price batch" in page.get_data(as_text=True)
    assert prices_of(skus) == [Decimal("99.00")] * 4
    assert PriceChange.query.filter_by(reason="screen bulk").count() == 0


def test_only_the_batch_that_covers_a_cut_lets_it_through(app, parts, shops):
    skus = priced(shops["A"])
    with acting_as(Actor.system("test")):
        batch = prices.submit({"sku_ids": [skus[0].id]}, "percent", Decimal("-50"), "x",
                              clock.now() + timedelta(days=1))
        db.session.commit()
        for sku, price in ((skus[0], Decimal("1.00")), (skus[1], Decimal("49.50"))):
            with pytest.raises(product.ConflictError):       # pending, or another price/SKU
                product.change_prices([sku.id], price, "sneak", batch=batch)
        db.session.rollback()
    assert prices_of(skus[:2]) == [Decimal("99.00")] * 2


# -- scheduled application -------------------------------------------------------------------------

def test_a_scheduled_batch_is_applied_by_the_tick_at_its_time_and_only_once(app, api, parts,
                                                                             shops):
    skus = priced(shops["A"])
    clock.set_now(NOON - timedelta(hours=3))
    made = api("merchant_a").post("/api/v1/price_batch/", json=body(
        skus, "amount", "-9.00", effective_at="2026-11-25T12:00:00+08:00"))
    assert made.json["result"]["status"] == "scheduled"
    early = houtai(app, "tick", "--now", "2026-11-25T11:59:59+08:00")
    assert "prices.apply_scheduled: 0" in early.output
    assert prices_of(skus) == [Decimal("99.00")] * 4
    first = houtai(app, "tick", "--now", "2026-11-25T12:00:00+08:00")
    again = houtai(app, "tick", "--now", "2026-11-25T12:05:00+08:00")
    assert "prices.apply_scheduled: 1" in first.output, first.output
    assert "prices.apply_scheduled: 0" in again.output
    assert prices_of(skus) == [Decimal("90.00")] * 4
    batch = db.session.get(PriceBatch, made.json["id"])
    assert (batch.status, batch.applied_at) == ("applied", NOON)
    assert [line.status for line in batch.lines] == ["applied"] * 4
    for sku in skus:
        assert history(sku) == [(Decimal("99.00"), Decimal("90.00"),
                                 f"{batch.batch_no}: Double eleven")]
    assert OutboxEvent.query.filter_by(name="price_batch.applied").count() == 1


def test_a_line_whose_price_changed_meanwhile_is_skipped_with_a_note(app, api, parts, shops):
    skus = priced(shops["A"])
    later = (clock.now() + timedelta(hours=1))
    made = api("ProductOps").post("/api/v1/price_batch/", json=body(
        skus, "percent", "-10.00", effective_at=later.isoformat())).json
    assert api("merchant_a").post(f"/api/v1/sku/{skus[1].id}/price", json={
        "price": "95.00", "reason": "moved"}).status_code == 200
    with clock.frozen_at(later):
        assert prices.apply_due() == 1
    batch = db.session.get(PriceBatch, made["id"])
    assert [(line.status, line.note is not None) for line in batch.lines] == [
        ("applied", False), ("skipped", True), ("applied", False), ("applied", False)]
    assert "95.00" in batch.lines[1].note
    assert prices_of(skus) == [Decimal("89.10"), Decimal("95.00"), Decimal("89.10"),
                               Decimal("89.10")]
    assert [h[2] for h in history(skus[1])] == ["moved"]


def test_an_approved_batch_due_later_waits_for_its_time(app, api, parts, shops):
    skus = priced(shops["A"])
    later = clock.now() + timedelta(hours=2)
    made = api("merchant_a").post("/api/v1/price_batch/", json=body(
        skus, "set", "9.90", effective_at=later.isoformat())).json
    approved = api("ProductOps").post(f"/api/v1/price_batch/{made['id']}/approve").json
    assert approved["result"]["status"] == "scheduled"
    assert prices_of(skus) == [Decimal("99.00")] * 4
    with clock.frozen_at(later + timedelta(seconds=1)):
        assert prices.apply_due() == 1
    assert prices_of(skus) == [Decimal("9.90")] * 4


# -- history ---------------------------------------------------------------------------------------

def test_price_history_is_listed_per_sku_in_the_api_and_on_the_skus_page(api, browser, parts,
                                                                        shops):
    skus = priced(shops["A"])
    batch = api("ProductOps").post("/api/v1/price_batch/", json=body(skus[:2])).json["result"]
    found = api("merchant_a").get(
        f"/api/v1/price_change/?q=(filters:!((col:sku_id,opr:eq,value:{skus[0].id})))").json
    assert [(r["old_price"], r["new_price"], r["reason"]) for r in found["result"]][0] == (
        "99.00", "89.10", f"{batch['batch_no']}: Double eleven")
    assert {r["sku_id"] for r in found["result"]} == {skus[0].id}
    page = browser("merchant_a").get(f"/skuview/show/{skus[0].id}").get_data(as_text=True)
    assert batch["batch_no"] in page


# -- screens ---------------------------------------------------------------------------------------

def test_the_batch_form_previews_then_submits(browser, parts, shops):
    skus = priced(shops["A"], "10.30")
    merchant = browser("merchant_a")
    form = {"sku_ids": str(skus[0].id), "mode": "percent", "value": "-5",
            "reason": "Screen sale", "effective_at": ""}
    preview = merchant.post_form("/pricebatchview/new", {**form, "step": "preview"},
                                 token_from="/pricebatchview/new")
    text = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "9.79" in text and skus[0].code in text
    assert PriceBatch.query.count() == 0
    done = merchant.post_form("/pricebatchview/new", {**form, "step": "submit"},
                              token_from="/pricebatchview/new")
    assert done.status_code == 302
    batch = PriceBatch.query.one()
    assert (batch.status, batch.shop_id, batch.created_by) == ("applied", shops["A"].id,
                                                               "merchant_a")
    assert prices_of(skus[:1]) == [Decimal("9.79")]
    listing = merchant.get("/pricebatchview/list/").get_data(as_text=True)
    assert batch.batch_no in listing
    bad = merchant.post_form("/pricebatchview/new", {**form, "value": "-500", "mode": "amount",
                                                     "step": "submit"},
                             token_from="/pricebatchview/new")
    assert bad.status_code == 200 and "below 0" in bad.get_data(as_text=True)


def test_approve_and_reject_on_the_screens_are_the_platforms(browser, parts, shops):
    skus = priced(shops["A"])
    with acting_as(Actor.system("test")):
        first = prices.submit({"sku_ids": [skus[0].id]}, "percent", Decimal("-50"), "a")
        second = prices.submit({"sku_ids": [skus[1].id]}, "percent", Decimal("-50"), "b")
        db.session.commit()
    first_id, second_id = first.id, second.id
    merchant = browser("merchant_a")
    merchant.post_form("/pricebatchview/action_post", {"action": "approve",
                                                       "rowid": [str(first_id)]},
                       token_from="/pricebatchview/list/")
    merchant.post_form(f"/pricebatchview/reject/{second_id}", {"reason": "no"},
                       token_from="/pricebatchview/list/")
    db.session.expire_all()
    assert [db.session.get(PriceBatch, i).status for i in (first_id, second_id)] == [
        "pending_approval", "pending_approval"]
    ops = browser("ProductOps")
    ops.post_form("/pricebatchview/action_post", {"action": "approve", "rowid": [str(first_id)]},
                  token_from="/pricebatchview/list/")
    ops.post_form(f"/pricebatchview/reject/{second_id}", {"reason": "Too deep"},
                  token_from=f"/pricebatchview/reject/{second_id}")
    db.session.expire_all()
    assert [db.session.get(PriceBatch, i).status for i in (first_id, second_id)] == [
        "applied", "rejected"]
    assert prices_of(skus[:2]) == [Decimal("49.50"), Decimal("99.00")]
    page = ops.get(f"/pricebatchview/show/{first_id}").get_data(as_text=True)
    assert skus[0].code in page and "49.50" in page


# -- the race --------------------------------------------------------------------------------------

@pytest.mark.parametrize("claimed", [True, False], ids=["conditional_update", "control_read"])
def test_two_ticks_apply_a_due_batch_once(app, shops, parts, monkeypatch, claimed):
    """Both ticks find the batch due; the conditional UPDATE lets one apply it and the other
    match nothing. The control reads the status and then writes (no claim): both apply it,
    each publishing `price_batch.applied`."""
    requires_postgres(app)
    skus = priced(shops["A"])
    with acting_as(Actor.system("test")):
        batch = prices.submit({"sku_ids": [s.id for s in skus]}, "percent", Decimal("-10"),
                              "race", clock.now() + timedelta(minutes=5))
        db.session.commit()
    batch_id = batch.id
    if not claimed:
        monkeypatch.setattr(prices, "claim_due", lambda pk: db.session.get(
            PriceBatch, pk).status == "scheduled")
    real_apply, arrived, lock = prices._apply_lines, [], threading.Lock()

    def meeting(batch):        # reached only by a tick that claimed the batch
        met_or_blocked(arrived, lock, threading.current_thread().name)
        return real_apply(batch)

    monkeypatch.setattr(prices, "_apply_lines", meeting)
    barrier, results, errors = threading.Barrier(2), [], []

    def tick():
        with app.app_context(), acting_as(Actor.job("prices.apply_scheduled")):
            barrier.wait(timeout=10)
            try:
                results.append(prices.apply_batch(batch_id))
                db.session.commit()
            except Exception as exc:  # noqa: BLE001 - asserted below
                db.session.rollback()
                errors.append(exc)
            finally:
                db.session.remove()

    later = clock.now() + timedelta(minutes=6)
    with clock.frozen_at(later):
        threads = [threading.Thread(target=tick, name=f"t{n}") for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    db.session.expire_all()
    applied_events = OutboxEvent.query.filter_by(name="price_batch.applied").count()
    assert applied_events == (1 if claimed else 2)
    assert sorted(results) == ([False, True] if claimed else [True, True])
    if claimed:
        assert prices_of(skus) == [Decimal("89.10")] * 4
        assert all(len(history(s)) == 1 for s in skus)


# -- demo ------------------------------------------------------------------------------------------

def test_demo_has_an_applied_a_scheduled_and_a_pending_batch(app, parts, shops):
    from services import demo_prices

    priced(shops["A"]), priced(shops["A"]), priced(shops["B"])
    assert demo_prices.load_prices() is True
    assert demo_prices.load_prices() is False
    batches = PriceBatch.query.order_by(PriceBatch.id).all()
    assert [b.status for b in batches] == ["applied", "scheduled", "pending_approval"]
    assert [b.shop_id for b in batches] == [shops["A"].id, shops["B"].id, shops["A"].id]
    applied = batches[0].lines
    assert {line.new_price for line in applied} == {Decimal("89.10")}
    assert all(history(line.sku)[-1][2].startswith(batches[0].batch_no) for line in applied)
    with clock.frozen_at(clock.now() + timedelta(days=3, minutes=1)):
        assert prices.apply_due() == 1
    assert {line.sku.price for line in batches[1].lines} == {Decimal("94.00")}


def test_a_draft_sku_in_a_batch_can_still_be_discarded(app, shops, parts):
    skus = priced(shops["A"], "100.00", "100.00")
    with acting_as(Actor.system("test")):
        batch = prices.submit({"sku_ids": [s.id for s in skus]}, "percent", Decimal("-10.00"),
                              "Spring", clock.now() + timedelta(days=30))
        db.session.commit()
        product.discard_sku(db.session.get(Sku, skus[0].id))
        db.session.delete(db.session.get(Sku, skus[0].id))
        db.session.commit()
    lines = PriceBatchLine.query.filter_by(batch_id=batch.id).order_by(PriceBatchLine.sku_id)
    assert [line.sku_id for line in lines] == [s.id for s in skus[1:]]
