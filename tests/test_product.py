"""商品中心: the category tree, attributes, the SPU listing workflow, the SKU grid and prices."""
from decimal import Decimal

import pytest

from app.extensions import db
from models.product import Category, PriceChange, Sku, Spu
from tests.factories import catalog, make_spu, spu_body


@pytest.fixture
def parts(app, shops):
    return catalog()


def colour_size(parts, colours=("red", "blue"), sizes=("S", "M")):
    attributes = parts["attributes"]
    return {str(attributes["Colour"].id): list(colours), str(attributes["Size"].id): list(sizes)}


def new_spu(merchant, parts, **overrides):
    answer = merchant.post("/api/v1/spu/", json=spu_body(None, **overrides))
    assert answer.status_code == 201, answer.json
    return answer.json["id"]


# -- the category tree -----------------------------------------------------------------------------

def test_moving_a_category_under_its_own_descendant_is_refused(api, parts):
    ops = api("ProductOps")
    answer = ops.put(f"/api/v1/category/{parts['root'].id}", json={"parent_id": parts["leaf"].id})
    assert answer.status_code == 422
    assert "parent_id" in answer.json["errors"]
    assert ops.put(f"/api/v1/category/{parts['root'].id}",
                   json={"parent_id": parts["root"].id}).status_code == 422
    db.session.expire_all()
    assert db.session.get(Category, parts["root"].id).parent_id is None


def test_moving_a_subtree_keeps_every_path_right(api, parts):
    ops = api("ProductOps")
    other = ops.post("/api/v1/category/", json={"name": "Sale"}).json["id"]
    assert ops.put(f"/api/v1/category/{parts['middle'].id}", json={"parent_id": other}).status_code == 200
    db.session.expire_all()
    leaf = db.session.get(Category, parts["leaf"].id)
    assert leaf.path == f"/{other}/{parts['middle'].id}/{leaf.id}/"


def test_only_leaves_hold_products(api, parts, shops):
    merchant = api("merchant_a")
    answer = merchant.post("/api/v1/spu/", json=spu_body(None, category_id=parts["middle"].id))
    assert answer.status_code == 422
    assert answer.json["errors"] == {"category_id": ["Only leaf categories hold products."]}
    make_spu(shops["A"])
    child = api("ProductOps").post("/api/v1/category/", json={"name": "Kids",
                                                             "parent_id": parts["leaf"].id})
    assert child.status_code == 422 and "parent_id" in child.json["errors"]


def test_disabled_category_is_not_selectable_but_keeps_its_products(api, parts, shops):
    spu = make_spu(shops["A"])
    api("ProductOps").put(f"/api/v1/category/{parts['leaf'].id}", json={"enabled": False})
    answer = api("merchant_a").post("/api/v1/spu/", json=spu_body(None))
    assert answer.json["errors"] == {"category_id": ["Category is disabled."]}
    assert api("merchant_a").get(f"/api/v1/spu/{spu.id}").status_code == 200


def test_unknown_or_disabled_brand_and_brand_outside_its_categories(api, parts, shops):
    merchant, ops = api("merchant_a"), api("ProductOps")
    assert merchant.post("/api/v1/spu/", json=spu_body(None, brand_id=987654)).json["errors"] == {
        "brand_id": ["Related record not found."]}
    limited = ops.post("/api/v1/brand/", json={"name": "Shoes only", "categories": []}).json["id"]
    shoes = ops.post("/api/v1/category/", json={"name": "Shoes"}).json["id"]
    ops.put(f"/api/v1/brand/{limited}", json={"categories": [shoes]})
    answer = merchant.post("/api/v1/spu/", json=spu_body(None, brand_id=limited))
    assert answer.json["errors"] == {"brand_id": ["Brand is not sold in this category."]}
    ops.put(f"/api/v1/brand/{parts['brand'].id}", json={"enabled": False})
    answer = merchant.post("/api/v1/spu/", json=spu_body(None))
    assert answer.json["errors"] == {"brand_id": ["Brand is disabled."]}


# -- attributes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("values, error", [
    ({}, {"attribute_values.Model": ["Required."]}),
    ({"Model": "T-1", "Material": "silk"}, {"attribute_values.Material": ["Not one of the options."]}),
    ({"Model": 5}, {"attribute_values.Model": ["Must be text."]}),
    ({"Model": "T-1", "999": "x"}, {"attribute_values.999": ["Not an attribute of this category."]}),
])
def test_attribute_values_are_checked_against_the_category(api, parts, values, error):
    ids = {name: str(a.id) for name, a in parts["attributes"].items()}
    body = spu_body(None, attribute_values={ids.get(k, k): v for k, v in values.items()})
    answer = api("merchant_a").post("/api/v1/spu/", json=body)
    assert answer.status_code == 422
    assert answer.json["errors"] == error
    assert Spu.query.count() == 0


def test_inherited_attributes_apply_to_subcategories(api, parts):
    material = str(parts["attributes"]["Material"].id)  # defined on the root
    spu_id = new_spu(api("merchant_a"), parts, attribute_values={
        str(parts["attributes"]["Model"].id): "T-1", material: "linen"})
    assert api("merchant_a").get(f"/api/v1/spu/{spu_id}").json["result"]["attribute_values"][
        material] == "linen"


def test_select_attribute_needs_options_and_sales_attributes_are_single_select(api, parts):
    ops = api("ProductOps")
    answer = ops.post("/api/v1/attribute/", json={
        "category_id": parts["leaf"].id, "name": "Fit", "kind": "non_key",
        "input_type": "single_select", "options": []})
    assert answer.json["errors"] == {"options": ["Select attributes need options."]}
    answer = ops.post("/api/v1/attribute/", json={
        "category_id": parts["leaf"].id, "name": "Pack", "kind": "sales", "input_type": "text"})
    assert answer.json["errors"] == {"input_type": ["Sales attributes are single select."]}


def test_description_is_sanitised(api, parts):
    spu_id = new_spu(api("merchant_a"), parts, description=(
        '<p onclick="steal()">Soft <b>cotton</b></p><script>alert(1)</script>'
        '<img src="javascript:alert(1)"><a href="https://shop.example/x">more</a>'))
    description = api("merchant_a").get(f"/api/v1/spu/{spu_id}").json["result"]["description"]
    assert "script" not in description and "onclick" not in description
    assert "javascript:" not in description
    assert "<b>cotton</b>" in description and 'href="https://shop.example/x"' in description


# -- the listing workflow -----------------------------------------------------------------------------

def test_the_whole_listing_workflow(api, parts):
    merchant, ops = api("merchant_a"), api("ProductOps")
    spu_id = new_spu(merchant, parts)
    answer = merchant.post(f"/api/v1/spu/{spu_id}/submit")
    assert answer.status_code == 422 and "skus" in answer.json["errors"]

    grid = merchant.post(f"/api/v1/spu/{spu_id}/generate-skus",
                         json={"choices": colour_size(parts), "price": "99.00"})
    assert grid.status_code == 201 and len(grid.json["result"]) == 4
    assert merchant.post(f"/api/v1/spu/{spu_id}/submit").json["result"]["status"] == "pending_review"
    assert merchant.post(f"/api/v1/spu/{spu_id}/approve").status_code == 403
    assert merchant.put(f"/api/v1/spu/{spu_id}", json={"title": "edited"}).status_code == 409

    rejected = ops.post(f"/api/v1/spu/{spu_id}/reject", json={"reason": "blurry photos"})
    assert rejected.json["result"]["status"] == "rejected"
    assert rejected.json["result"]["reject_reason"] == "blurry photos"
    assert merchant.put(f"/api/v1/spu/{spu_id}", json={"title": "better"}).status_code == 200
    merchant.post(f"/api/v1/spu/{spu_id}/submit")
    assert ops.post(f"/api/v1/spu/{spu_id}/approve").json["result"]["status"] == "on_sale"

    assert merchant.post(f"/api/v1/spu/{spu_id}/off-sale").json["result"]["status"] == "off_sale"
    assert merchant.post(f"/api/v1/spu/{spu_id}/on-sale").json["result"]["status"] == "on_sale"
    merchant.post(f"/api/v1/spu/{spu_id}/off-sale")
    merchant.put(f"/api/v1/spu/{spu_id}", json={"subtitle": "now with pockets"})
    again = merchant.post(f"/api/v1/spu/{spu_id}/on-sale")
    assert again.json["result"]["status"] == "pending_review"

    history = merchant.get(f"/api/v1/spu/{spu_id}").json["result"]["history"]
    assert [(h["from"], h["to"]) for h in history] == [
        (None, "draft"), ("draft", "pending_review"), ("pending_review", "rejected"),
        ("rejected", "pending_review"), ("pending_review", "on_sale"), ("on_sale", "off_sale"),
        ("off_sale", "on_sale"), ("on_sale", "off_sale"), ("off_sale", "pending_review")]
    assert history[2]["actor"] == "productops" and history[2]["reason"] == "blurry photos"


@pytest.mark.parametrize("step", ["approve", "reject", "off-sale", "on-sale"])
def test_illegal_transitions_answer_409_and_change_nothing(api, parts, step):
    spu_id = new_spu(api("merchant_a"), parts)
    answer = api("ProductOps").post(f"/api/v1/spu/{spu_id}/{step}", json={"reason": "x"})
    assert answer.status_code == 409
    assert set(answer.json) == {"message", "errors"}
    db.session.expire_all()
    spu = db.session.get(Spu, spu_id)
    assert spu.status == "draft" and len(spu.transitions) == 1


def test_reject_needs_a_reason(api, parts, shops):
    spu = make_spu(shops["A"], with_skus=True)
    api("merchant_a").post(f"/api/v1/spu/{spu.id}/submit")
    answer = api("ProductOps").post(f"/api/v1/spu/{spu.id}/reject", json={})
    assert answer.status_code == 422 and "reason" in answer.json["errors"]


def test_only_drafts_are_deleted_and_take_their_grid_along(api, parts, shops):
    draft = make_spu(shops["A"], with_skus=True)
    assert api("merchant_a").delete(f"/api/v1/spu/{draft.id}").status_code == 200
    assert Sku.query.count() == 0
    submitted = make_spu(shops["A"], with_skus=True)
    api("merchant_a").post(f"/api/v1/spu/{submitted.id}/submit")
    assert api("merchant_a").delete(f"/api/v1/spu/{submitted.id}").status_code == 409


# -- the SKU grid -------------------------------------------------------------------------------------

def test_regenerating_the_grid_adds_only_missing_combinations(api, parts):
    merchant = api("merchant_a")
    spu_id = new_spu(merchant, parts)
    merchant.post(f"/api/v1/spu/{spu_id}/generate-skus", json={"choices": colour_size(parts)})
    again = merchant.post(f"/api/v1/spu/{spu_id}/generate-skus",
                          json={"choices": colour_size(parts, sizes=("S", "M", "L"))})
    assert len(again.json["result"]) == 2
    assert {tuple(sorted(s["sales_values"].values())) for s in again.json["result"]} == {
        ("L", "red"), ("L", "blue")}
    assert Sku.query.filter_by(spu_id=spu_id).count() == 6
    assert merchant.post(f"/api/v1/spu/{spu_id}/generate-skus",
                         json={"choices": colour_size(parts)}).json["result"] == []


@pytest.mark.parametrize("choices, field", [
    ({"Colour": ["purple"], "Size": ["S"]}, "choices.Colour"),
    ({"Colour": ["red"]}, "choices.Size"),
    ({"Colour": ["red"], "Size": ["S"], "Model": ["x"]}, None),
])
def test_grid_values_must_be_options_of_every_sales_attribute(api, parts, choices, field):
    ids = {name: str(a.id) for name, a in parts["attributes"].items()}
    spu_id = new_spu(api("merchant_a"), parts)
    answer = api("merchant_a").post(f"/api/v1/spu/{spu_id}/generate-skus",
                                    json={"choices": {ids[k]: v for k, v in choices.items()}})
    assert answer.status_code == 422
    if field:
        assert field in answer.json["errors"]
    assert Sku.query.count() == 0


def test_sku_codes_are_unique_per_shop_and_editable(api, parts, shops):
    spu_a = make_spu(shops["A"], with_skus=True)
    spu_b = make_spu(shops["B"], with_skus=True)
    first, second = spu_a.skus[0], spu_a.skus[1]
    merchant = api("merchant_a")
    answer = merchant.put(f"/api/v1/sku/{second.id}", json={"code": first.code})
    assert answer.status_code == 422 and answer.json["errors"] == {"code": ["Already exists."]}
    assert merchant.put(f"/api/v1/sku/{second.id}", json={"code": "TEE-RED-M"}).status_code == 200
    # the same code in another shop is fine
    assert api("merchant_b").put(f"/api/v1/sku/{spu_b.skus[0].id}",
                                 json={"code": "TEE-RED-M"}).status_code == 200


def test_outer_ids_are_unique_per_shop_and_found_by_filter(api, parts, shops):
    merchant = api("merchant_a")
    spu_id = new_spu(merchant, parts, outer_id="ERP-1")
    duplicate = merchant.post("/api/v1/spu/", json=spu_body(None, outer_id="ERP-1"))
    assert duplicate.status_code in (409, 422)
    found = merchant.get("/api/v1/spu/?q=(filters:!((col:outer_id,opr:eq,value:ERP-1)))")
    assert found.json["ids"] == [spu_id]


# -- prices ---------------------------------------------------------------------------------------------

def test_price_is_read_only_in_the_generic_put(api, parts, shops):
    sku = make_spu(shops["A"], with_skus=True).skus[0]
    answer = api("merchant_a").put(f"/api/v1/sku/{sku.id}", json={"price": "1.00"})
    assert answer.status_code == 422 and "price" in answer.json["errors"]
    db.session.expire_all()
    assert db.session.get(Sku, sku.id).price == Decimal("99.00")


def test_price_changes_go_through_the_price_service_with_history(api, parts, shops):
    sku = make_spu(shops["A"], with_skus=True).skus[0]
    answer = api("merchant_a").post(f"/api/v1/sku/{sku.id}/price",
                                    json={"price": "89.90", "reason": "double eleven"})
    assert answer.status_code == 200 and answer.json["result"]["price"] == "89.90"
    history = PriceChange.query.filter_by(sku_id=sku.id).order_by(PriceChange.id).all()
    assert [(h.old_price, h.new_price, h.reason, h.actor) for h in history][-1] == (
        Decimal("99.00"), Decimal("89.90"), "double eleven", "merchant_a")


@pytest.mark.parametrize("price, field", [("-1", "price"), ("12.345", "price"), ("abc", "price"),
                                          ("5.00", None)])
def test_bad_prices_are_refused(api, parts, shops, price, field):
    sku = make_spu(shops["A"], with_skus=True).skus[0]
    body = {"price": price} if field else {"price": price, "reason": ""}
    answer = api("merchant_a").post(f"/api/v1/sku/{sku.id}/price", json=body)
    assert answer.status_code == 422
    assert (field or "reason") in answer.json["errors"]
    db.session.expire_all()
    assert db.session.get(Sku, sku.id).price == Decimal("99.00")


def test_bulk_edit_changes_a_whole_grid(api, parts, shops):
    spu = make_spu(shops["A"], with_skus=True)
    ids = [sku.id for sku in spu.skus]
    answer = api("merchant_a").post("/api/v1/sku/bulk", json={
        "ids": ids, "price": "79.00", "stock_alert_qty": 5, "reason": "clearance"})
    assert answer.status_code == 200
    db.session.expire_all()
    assert {(s.price, s.stock_alert_qty) for s in Sku.query.filter(Sku.id.in_(ids))} == {
        (Decimal("79.00"), 5)}
    assert PriceChange.query.filter_by(reason="clearance").count() == 4


def test_bulk_edit_with_another_shops_sku_changes_nothing(api, parts, shops):
    mine = make_spu(shops["A"], with_skus=True).skus[0]
    theirs = make_spu(shops["B"], with_skus=True).skus[0]
    answer = api("merchant_a").post("/api/v1/sku/bulk", json={
        "ids": [mine.id, theirs.id], "price": "1.00", "reason": "x"})
    assert answer.status_code == 404
    db.session.expire_all()
    assert db.session.get(Sku, mine.id).price == Decimal("99.00")


# -- search ---------------------------------------------------------------------------------------------

def test_search_by_category_includes_descendants_and_by_title_text(api, parts, shops):
    spu = make_spu(shops["A"], title="Linen summer tee")
    merchant = api("merchant_a")
    in_tree = merchant.get(
        f"/api/v1/spu/?q=(filters:!((col:category_id,opr:in_tree,value:{parts['root'].id})))")
    assert in_tree.json["ids"] == [spu.id]
    text = merchant.get("/api/v1/spu/?q=(filters:!((col:title,opr:ct,value:summer)))")
    assert text.json["ids"] == [spu.id]
    by_status = merchant.get("/api/v1/spu/?q=(filters:!((col:status,opr:eq,value:on_sale)))")
    assert by_status.json["count"] == 0


# -- screens ----------------------------------------------------------------------------------------------

def test_merchant_lists_generates_and_submits_in_the_screens_and_staff_approves(
        app, browser, parts, shops):
    merchant = browser("merchant_a")
    created = merchant.post_form("/spuview/add", {
        "title": "Screen tee", "category": str(parts["leaf"].id), "brand": str(parts["brand"].id),
        "shop": str(shops["A"].id),
        "attribute_values": f'{{"{parts["attributes"]["Model"].id}": "S-1"}}'},
        token_from="/spuview/add")
    assert created.status_code == 302
    spu = Spu.query.filter_by(title="Screen tee").one()
    attributes = parts["attributes"]
    grid = merchant.post_form(f"/spuview/grid/{spu.id}", {
        f"attr-{attributes['Colour'].id}": ["red", "black"],
        f"attr-{attributes['Size'].id}": ["M"], "price": "59.00"},
        token_from=f"/spuview/grid/{spu.id}")
    assert grid.status_code == 302
    assert Sku.query.filter_by(spu_id=spu.id).count() == 2
    merchant.post_form("/spuview/action_post", {"action": "submit", "rowid": [str(spu.id)]},
                       token_from="/spuview/list/")
    staff = browser("ProductOps")
    staff.post_form("/spuview/action_post", {"action": "approve", "rowid": [str(spu.id)]},
                    token_from="/spuview/list/")
    db.session.expire_all()
    assert db.session.get(Spu, spu.id).status == "on_sale"
    page = merchant.get(f"/spuview/show/{spu.id}").get_data(as_text=True)
    assert "productops" in page


def test_merchants_cannot_approve_in_the_screens(browser, parts, shops):
    spu = make_spu(shops["A"], with_skus=True)
    merchant = browser("merchant_a")
    merchant.post_form("/spuview/action_post", {"action": "submit", "rowid": [str(spu.id)]},
                       token_from="/spuview/list/")
    merchant.post_form("/spuview/action_post", {"action": "approve", "rowid": [str(spu.id)]},
                       token_from="/spuview/list/")
    db.session.expire_all()
    assert db.session.get(Spu, spu.id).status == "pending_review"


def test_bulk_price_screen_records_history(browser, parts, shops):
    spu = make_spu(shops["A"], with_skus=True)
    ids = ",".join(str(s.id) for s in spu.skus)
    answer = browser("merchant_a").post_form(f"/skuview/bulk?ids={ids}", {
        "ids": ids, "price": "88.00", "stock_alert_qty": "3", "reason": "screen bulk"},
        token_from=f"/skuview/bulk?ids={ids}")
    assert answer.status_code == 302
    assert PriceChange.query.filter_by(reason="screen bulk").count() == 4


def test_product_form_offers_only_enabled_leaf_categories_and_brands(api, browser, parts):
    api("ProductOps").put(f"/api/v1/brand/{parts['brand'].id}", json={"enabled": False})
    page = browser("merchant_a").get("/spuview/add").get_data(as_text=True)
    assert f'<option value="{parts["leaf"].id}">T-shirts' in page
    assert "Tops</option>" not in page and ">Clothing" not in page
    assert ">Acme" not in page


def test_category_in_use_cannot_be_deleted(api, parts, shops):
    make_spu(shops["A"])
    ops = api("ProductOps")
    for category in ("root", "middle", "leaf"):
        answer = ops.delete(f"/api/v1/category/{parts[category].id}")
        assert answer.status_code == 409, category
    db.session.expire_all()
    assert db.session.get(Category, parts["leaf"].id).path.count("/") == 4


def test_negative_stock_alert_or_weight_is_refused(api, parts, shops):
    sku = make_spu(shops["A"], with_skus=True).skus[0]
    for body in ({"stock_alert_qty": -3}, {"weight_kg": "-0.5"}):
        answer = api("merchant_a").put(f"/api/v1/sku/{sku.id}", json=body)
        assert answer.status_code == 422 and set(body) <= set(answer.json["errors"])


def test_unknown_filter_operation_is_400_not_every_row(api, parts, shops):
    make_spu(shops["A"])
    for q in ("(filters:!((col:title,opr:zz,value:x)))",
              "(filters:!((col:title,opr:in_tree,value:1)))"):
        answer = api("merchant_a").get(f"/api/v1/spu/?q={q}")
        assert answer.status_code == 400 and "q" in answer.json["errors"]


def test_submit_checks_values_against_the_category_as_it_is_now(api, parts, shops):
    spu = make_spu(shops["A"], with_skus=True)
    api("ProductOps").post("/api/v1/attribute/", json={
        "category_id": parts["leaf"].id, "name": "Care", "kind": "non_key",
        "input_type": "text", "required": True})
    answer = api("merchant_a").post(f"/api/v1/spu/{spu.id}/submit")
    assert answer.status_code == 422
    assert answer.json["errors"] == {"attribute_values.Care": ["Required."]}


def test_values_of_a_deleted_attribute_do_not_block_edits(api, parts, shops):
    spu = make_spu(shops["A"], attribute_values={
        str(parts["attributes"]["Model"].id): "T-1",
        str(parts["attributes"]["Material"].id): "cotton"})
    assert api("ProductOps").delete(
        f"/api/v1/attribute/{parts['attributes']['Material'].id}").status_code == 200
    answer = api("merchant_a").put(f"/api/v1/spu/{spu.id}", json={"title": "still editable"})
    assert answer.status_code == 200, answer.json
    assert str(parts["attributes"]["Material"].id) not in answer.json["result"]["attribute_values"]


def test_an_spu_names_only_its_own_shops_supplier_and_freight_template(api, shops):
    """A consignor or drop-ship supplier and a freight template are set on the SPU, and only
    the SPU's own shop's: another shop's id answers 422 naming the field and changes nothing."""
    from tests.factories import make_freight_template, make_supplier, spu_body

    mine = make_supplier(shops["A"], status="active", code="MINE")
    theirs = make_supplier(shops["B"], status="active", code="THEIRS")
    my_template = make_freight_template(shops["A"])
    their_template = make_freight_template(shops["B"])
    db.session.commit()
    ids = (mine.id, theirs.id, my_template.id, their_template.id)
    merchant = api("merchant_a")
    for field, value in (("supplier_id", ids[1]), ("freight_template_id", ids[3]),
                         ("supplier_id", 999999)):
        answer = merchant.post("/api/v1/spu/", json={**spu_body(shops["A"]), field: value})
        assert answer.status_code == 422, answer.json
        assert field in answer.json["errors"]
    answer = merchant.post("/api/v1/spu/", json={
        **spu_body(shops["A"]), "fulfilment": "dropship", "supplier_id": ids[0],
        "freight_template_id": ids[2]})
    assert answer.status_code == 201, answer.json
    assert (answer.json["result"]["supplier_id"], answer.json["result"]["freight_template_id"]) \
        == (ids[0], ids[2])
    spu_id = answer.json["id"]
    answer = merchant.put(f"/api/v1/spu/{spu_id}", json={"freight_template_id": ids[3]})
    assert answer.status_code == 422 and "freight_template_id" in answer.json["errors"]
    assert db.session.get(Spu, spu_id).freight_template_id == ids[2]


def test_the_spu_screen_offers_only_the_shops_own_suppliers_and_refuses_anothers(
        browser, parts, shops):
    """The screen's supplier field lists the merchant's own suppliers only; staff naming a
    supplier of another shop than the SPU's get the form error, nothing saved."""
    from tests.factories import make_supplier

    mine = make_supplier(shops["A"], status="active", code="MINE")
    theirs = make_supplier(shops["B"], status="active", code="THEIRS")
    db.session.commit()
    theirs_id, mine_id = theirs.id, mine.id
    page = browser("merchant_a").get("/spuview/add").get_data(as_text=True)
    assert "MINE" in page and "THEIRS" not in page

    def add(title, supplier_id):
        return browser("admin").post_form("/spuview/add", {
            "title": title, "category": str(parts["leaf"].id),
            "brand": str(parts["brand"].id), "shop": str(shops["A"].id),
            "attribute_values": f'{{"{parts["attributes"]["Model"].id}": "S-1"}}',
            "fulfilment": "dropship", "supplier": str(supplier_id)}, token_from="/spuview/add")

    add("Theirs tee", theirs_id)        # the form's error: "supplier_id: Not a record …"
    assert Spu.query.filter_by(title="Theirs tee").count() == 0
    assert add("Mine tee", mine_id).status_code == 302
    assert Spu.query.filter_by(title="Mine tee").one().supplier_id == mine_id
