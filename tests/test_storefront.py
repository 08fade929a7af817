"""运营中心 storefront slots: what the public endpoint answers (schedule, platforms, order,
disabled), what staff may save (each bad input refused naming the field, nothing written),
the cache (a second read issues no SQL; any change and any schedule boundary end it; in Redis
it is shared by two application instances), the screens, and who reaches them."""
import io
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event

from app.extensions import db
from models.storefront import StorefrontSlot
from services import clock, storefront
from services.actor import Actor, acting_as
from tests.conftest import make_test_config, requires_redis
from tests.factories import make_spu, png_bytes

T0 = datetime(2027, 6, 1, 4, 0, tzinfo=timezone.utc)
SLOTS = "/api/v1/storefront/slots"


def make_slot(**values) -> StorefrontSlot:
    """A slot saved through the same rules as the screens and the API."""
    fields = {"kind": "banner", "position": "home_top", "title": "Summer sale",
              "image_url": "https://cdn.example.com/summer.jpg", "link_type": "none"}
    fields.update(values)
    with acting_as(Actor.system("test")):
        slot = storefront.check_slot(StorefrontSlot(**fields))
        db.session.add(slot)
        db.session.commit()
    return slot


def titles(answer) -> list[str]:
    return [slot["title"] for slot in answer]


@contextmanager
def counted_slot_reads(engine):
    """Counts the statements that read the slot table while the block runs."""
    seen = []

    def count(_conn, _cursor, statement, *_):
        if "storefront_slot" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.fixture(params=["process", "redis"])
def backend(request, app, monkeypatch):
    """The cache in the process (no REDIS_URL) and, when Redis answers, in Redis."""
    if request.param == "redis":
        requires_redis(app)
    else:
        monkeypatch.setitem(app.config, "REDIS_URL", None)
    storefront.forget_slots()
    return request.param


@pytest.fixture
def anonymous(app):
    return app.test_client()


# -- what is live ------------------------------------------------------------------------------

def test_only_slots_inside_their_window_are_live(app, anonymous):
    clock.set_now(T0)
    make_slot(title="Not yet", starts_at=T0 + timedelta(hours=1))
    make_slot(title="Live", starts_at=T0 - timedelta(hours=1), ends_at=T0 + timedelta(hours=1))
    make_slot(title="Ended", starts_at=T0 - timedelta(days=2), ends_at=T0 - timedelta(minutes=1))
    make_slot(title="Always")
    answer = anonymous.get(SLOTS, query_string={"platform": "app"})
    assert answer.status_code == 200
    assert answer.json["platform"] == "app"
    assert titles(answer.json["slots"]) == ["Live", "Always"]
    live = answer.json["slots"][0]
    assert live == {"id": live["id"], "kind": "banner", "position": "home_top", "title": "Live",
                    "image_url": "https://cdn.example.com/summer.jpg",
                    "link": {"type": "none", "value": None}, "sort_order": 0,
                    "starts_at": "2027-06-01T03:00:00+00:00",
                    "ends_at": "2027-06-01T05:00:00+00:00"}


def test_platforms_position_kind_and_sort_order(app):
    make_slot(title="App only", platforms=["app"], sort_order=1)
    make_slot(title="Everywhere", platforms=[], sort_order=2)
    make_slot(title="PC and H5", platforms=["pc", "h5"], sort_order=0)
    make_slot(title="First icon", kind="icon", position="home_icons", sort_order=5)
    make_slot(title="Second icon", kind="icon", position="home_icons", sort_order=5)
    make_slot(title="Earlier icon", kind="icon", position="home_icons", sort_order=-1)
    make_slot(title="Tab", kind="tab", position="home_tabs", image_url=None)
    assert titles(storefront.live_slots("app")) == [
        "Earlier icon", "First icon", "Second icon", "Tab", "App only", "Everywhere"]
    assert titles(storefront.live_slots("pc", position="home_top")) == ["PC and H5",
                                                                         "Everywhere"]
    assert titles(storefront.live_slots("mini_program", kind="banner")) == ["Everywhere"]
    assert titles(storefront.live_slots("h5", position="home_tabs", kind="tab")) == ["Tab"]


def test_disabled_slots_are_not_shown(app):
    make_slot(title="Off", enabled=False)
    make_slot(title="On")
    assert titles(storefront.live_slots("h5")) == ["On"]


def test_links_to_a_product_a_zone_and_a_page(app, shops):
    spu = make_spu(shops["A"])
    make_slot(title="Product", link_type="spu", link_value=f" {spu.id} ", sort_order=1)
    make_slot(title="Zone", link_type="zone", link_value="summer-2027", sort_order=2)
    make_slot(title="Page", link_type="url", link_value="https://m.example.com/sale?x=1",
              sort_order=3)
    make_slot(title="Nowhere", link_type="none", link_value="ignored", sort_order=4)
    assert [s["link"] for s in storefront.live_slots("app")] == [
        {"type": "spu", "value": str(spu.id)}, {"type": "zone", "value": "summer-2027"},
        {"type": "url", "value": "https://m.example.com/sale?x=1"},
        {"type": "none", "value": None}]


def test_the_public_endpoint_needs_no_login_and_answers_304_to_its_etag(app, anonymous):
    clock.set_now(T0)
    make_slot(title="Hello")
    first = anonymous.get(SLOTS, query_string={"platform": "h5"})
    assert first.status_code == 200 and titles(first.json["slots"]) == ["Hello"]
    assert first.headers["Cache-Control"] == "public, max-age=30"
    again = anonymous.get(SLOTS, query_string={"platform": "h5"},
                          headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    other = anonymous.get(SLOTS, query_string={"platform": "pc"},
                          headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


@pytest.mark.parametrize("query, field", [
    ({}, "platform"), ({"platform": "tv"}, "platform"),
    ({"platform": "app", "kind": "popup"}, "kind"),
    ({"platform": "app", "position": "Home Top!"}, "position"),
    ({"platform": "app", "position": "x" * 40}, "position"),
])
def test_the_public_endpoint_refuses_bad_arguments(app, anonymous, query, field):
    answer = anonymous.get(SLOTS, query_string=query)
    assert answer.status_code == 422
    assert list(answer.json["errors"]) == [field]


def test_an_uploaded_image_is_served_publicly_only_while_a_slot_shows_it(app, api, anonymous):
    ops = api("Operations")
    uploads = [ops.post("/api/v1/uploaded_file/image",
                        data={"file": (io.BytesIO(png_bytes((6, 4))), "banner.png")},
                        content_type="multipart/form-data").json["id"] for _ in range(2)]
    made = ops.post("/api/v1/storefront_slot/", json={
        "kind": "banner", "position": "home_top", "title": "Uploaded", "image_id": uploads[0]})
    assert made.status_code == 201, made.json
    slot = anonymous.get(SLOTS, query_string={"platform": "app"}).json["slots"][0]
    assert slot["image_url"] == f"http://127.0.0.1:5000/api/v1/storefront/images/{uploads[0]}"
    image = anonymous.get(f"/api/v1/storefront/images/{uploads[0]}")
    assert image.status_code == 200 and image.data == png_bytes((6, 4))
    assert image.mimetype == "image/png"
    assert anonymous.get(f"/api/v1/storefront/images/{uploads[1]}").status_code == 404
    assert anonymous.get(f"/api/v1/uploaded_file/{uploads[1]}/content").status_code == 401
    ops.put(f"/api/v1/storefront_slot/{made.json['id']}", json={"enabled": False})
    assert anonymous.get(f"/api/v1/storefront/images/{uploads[0]}").status_code == 404


# -- what may be saved -------------------------------------------------------------------------

def valid_body(**changes) -> dict:
    body = {"kind": "banner", "position": "home_top", "title": "Summer sale",
            "image_url": "https://cdn.example.com/summer.jpg", "link_type": "url",
            "link_value": "https://m.example.com/summer", "sort_order": 3,
            "platforms": ["app", "h5"], "starts_at": "2027-06-01T00:00:00+08:00",
            "ends_at": "2027-06-30T00:00:00+08:00", "enabled": True}
    body.update(changes)
    return body


BAD_BODIES = [
    ({"kind": "popup"}, "kind"),
    ({"kind": None}, "kind"),
    ({"position": "Home Top"}, "position"),
    ({"position": ""}, "position"),
    ({"title": "  "}, "title"),
    ({"title": "x" * 65}, "title"),
    ({"link_type": "app"}, "link_type"),
    ({"link_type": "spu", "link_value": "987654"}, "link_value"),
    ({"link_type": "spu", "link_value": "abc"}, "link_value"),
    ({"link_type": "url", "link_value": "ftp://files.example.com/a"}, "link_value"),
    ({"link_type": "url", "link_value": "/relative/page"}, "link_value"),
    ({"link_type": "url", "link_value": "javascript:alert(1)"}, "link_value"),
    ({"link_type": "url", "link_value": None}, "link_value"),
    ({"link_type": "zone", "link_value": "summer sale!"}, "link_value"),
    ({"image_url": None}, "image_id"),
    ({"kind": "icon", "image_url": ""}, "image_id"),
    ({"image_url": "javascript:alert(1)"}, "image_url"),
    ({"image_url": "cdn.example.com/a.jpg"}, "image_url"),
    ({"image_url": None, "image_id": 987654}, "image_id"),
    ({"ends_at": "2027-05-01T00:00:00+08:00"}, "ends_at"),
    ({"ends_at": "2027-06-01T00:00:00+08:00"}, "ends_at"),
    ({"sort_order": "1"}, "sort_order"),
    ({"sort_order": 1.5}, "sort_order"),
    ({"sort_order": 10**7}, "sort_order"),
    ({"platforms": ["app", "tv"]}, "platforms"),
    ({"platforms": "app"}, "platforms"),
    ({"platforms": [1]}, "platforms"),
]


@pytest.mark.parametrize("changes, field", BAD_BODIES)
def test_each_bad_input_is_refused_naming_the_field_and_nothing_is_written(api, changes, field):
    answer = api("Operations").post("/api/v1/storefront_slot/", json=valid_body(**changes))
    assert answer.status_code == 422, answer.json
    assert field in answer.json["errors"], answer.json
    assert StorefrontSlot.query.count() == 0


def test_a_bad_change_leaves_the_slot_as_it_was(api):
    ops = api("Operations")
    made = ops.post("/api/v1/storefront_slot/", json=valid_body())
    assert made.status_code == 201, made.json
    slot_id = made.json["id"]
    for changes, field in [({"link_type": "spu"}, "link_value"),
                           ({"ends_at": "2027-05-01T00:00:00+08:00"}, "ends_at"),
                           ({"image_url": None}, "image_id")]:
        answer = ops.put(f"/api/v1/storefront_slot/{slot_id}", json=changes)
        assert answer.status_code == 422 and field in answer.json["errors"], answer.json
    db.session.expire_all()
    slot = db.session.get(StorefrontSlot, slot_id)
    assert (slot.link_type, slot.image_url, slot.ends_at) == (
        "url", "https://cdn.example.com/summer.jpg", datetime(2027, 6, 29, 16, tzinfo=timezone.utc))
    assert made.json["result"]["platforms"] == ["app", "h5"]


def test_a_tab_needs_no_image(api):
    answer = api("Operations").post("/api/v1/storefront_slot/", json=valid_body(
        kind="tab", position="home_tabs", image_url=None, link_type="zone",
        link_value="new-arrivals", platforms=["h5", "app", "app"]))
    assert answer.status_code == 201, answer.json
    assert answer.json["result"]["platforms"] == ["app", "h5"]


# -- the cache ---------------------------------------------------------------------------------

def test_a_second_read_issues_no_sql(app, backend):
    make_slot(title="Cached")
    with counted_slot_reads(db.engine) as reads:
        assert titles(storefront.live_slots("app")) == ["Cached"]
        assert len(reads) == 1
        assert titles(storefront.live_slots("app")) == ["Cached"]
        assert len(reads) == 1
        # another platform or position is another answer
        storefront.live_slots("pc")
        storefront.live_slots("app", position="home_top")
        assert len(reads) == 3


def test_the_endpoint_answers_from_the_cache(app, backend, anonymous):
    make_slot(title="Cached")
    anonymous.get(SLOTS, query_string={"platform": "app"})
    with counted_slot_reads(db.engine) as reads:
        again = anonymous.get(SLOTS, query_string={"platform": "app"})
    assert titles(again.json["slots"]) == ["Cached"] and reads == []


def test_create_update_and_delete_end_the_cached_answer(app, api, backend):
    ops = api("Operations")
    assert storefront.live_slots("app") == []
    made = ops.post("/api/v1/storefront_slot/", json=valid_body(starts_at=None, ends_at=None))
    assert made.status_code == 201
    assert titles(storefront.live_slots("app")) == ["Summer sale"]
    with counted_slot_reads(db.engine) as reads:      # kept again until the next change
        storefront.live_slots("app")
    assert reads == []
    ops.put(f"/api/v1/storefront_slot/{made.json['id']}", json={"title": "Autumn sale"})
    assert titles(storefront.live_slots("app")) == ["Autumn sale"]
    ops.put(f"/api/v1/storefront_slot/{made.json['id']}", json={"platforms": ["pc"]})
    assert storefront.live_slots("app") == []
    assert titles(storefront.live_slots("pc")) == ["Autumn sale"]
    ops.delete(f"/api/v1/storefront_slot/{made.json['id']}")
    assert storefront.live_slots("pc") == []


def test_a_refused_or_rolled_back_change_keeps_the_cached_answer(app, api, backend):
    make_slot(title="Kept")
    storefront.live_slots("app")
    api("Operations").post("/api/v1/storefront_slot/", json=valid_body(kind="popup"))
    with acting_as(Actor.system("test")):
        db.session.add(storefront.check_slot(StorefrontSlot(
            kind="tab", position="home_tabs", title="Rolled back")))
        db.session.flush()
        db.session.rollback()
    with counted_slot_reads(db.engine) as reads:
        assert titles(storefront.live_slots("app")) == ["Kept"]
    assert reads == []


def test_a_slot_starts_and_ends_at_its_time_without_any_change(app, backend, monkeypatch,
                                                                anonymous):
    monkeypatch.setitem(app.config, "STOREFRONT_CACHE_SECONDS", 3600)
    clock.set_now(T0)
    make_slot(title="Always", sort_order=0)
    make_slot(title="Flash sale", sort_order=1, starts_at=T0 + timedelta(minutes=10),
              ends_at=T0 + timedelta(minutes=25))
    make_slot(title="Elsewhere", position="home_icons", kind="icon",
              starts_at=T0 + timedelta(minutes=2))
    first = anonymous.get(SLOTS, query_string={"platform": "app", "position": "home_top"})
    assert titles(first.json["slots"]) == ["Always"]
    # right until the flash sale starts (the icon elsewhere does not concern this answer)
    assert first.headers["Cache-Control"] == "public, max-age=600"
    with counted_slot_reads(db.engine) as reads:
        clock.set_now(T0 + timedelta(minutes=9, seconds=59))
        assert titles(storefront.live_slots("app", position="home_top")) == ["Always"]
        assert reads == []
        clock.set_now(T0 + timedelta(minutes=10))
        assert titles(storefront.live_slots("app", position="home_top")) == \
            ["Always", "Flash sale"]
        assert len(reads) == 1
        clock.set_now(T0 + timedelta(minutes=24))
        assert titles(storefront.live_slots("app", position="home_top")) == \
            ["Always", "Flash sale"]
        assert len(reads) == 1
        clock.set_now(T0 + timedelta(minutes=25))
        assert titles(storefront.live_slots("app", position="home_top")) == ["Always"]
        assert len(reads) == 2
    # no boundary ahead: kept for STOREFRONT_CACHE_SECONDS
    late = anonymous.get(SLOTS, query_string={"platform": "app", "position": "home_top"})
    assert late.headers["Cache-Control"] == "public, max-age=3600"


def test_a_clock_set_back_is_not_answered_from_a_later_answer(app, backend):
    clock.set_now(T0 + timedelta(hours=2))
    make_slot(title="Started", starts_at=T0 + timedelta(hours=1))
    assert titles(storefront.live_slots("app")) == ["Started"]
    clock.set_now(T0)
    assert storefront.live_slots("app") == []


def test_zero_cache_seconds_reads_every_time(app, backend, monkeypatch):
    monkeypatch.setitem(app.config, "STOREFRONT_CACHE_SECONDS", 0)
    make_slot(title="Fresh")
    with counted_slot_reads(db.engine) as reads:
        storefront.live_slots("app")
        storefront.live_slots("app")
    assert len(reads) == 2


def test_two_application_instances_share_the_redis_cache_and_its_invalidation(app, tmp_path):
    requires_redis(app)
    from app import create_app

    storefront.forget_slots()
    second = create_app(make_test_config(
        tmp_path, SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=app.config["REDIS_URL"]), instance_path=str(tmp_path))
    slot = make_slot(title="Shared")
    assert titles(storefront.live_slots("app")) == ["Shared"]   # cached by the first
    try:
        with second.app_context():
            with counted_slot_reads(db.engine) as reads:
                assert titles(storefront.live_slots("app")) == ["Shared"]
            assert reads == []          # the first instance's answer, from Redis
        with acting_as(Actor.system("test")):
            slot.title = "Changed in the first"
            db.session.commit()
        with second.app_context():
            with counted_slot_reads(db.engine) as reads:
                assert titles(storefront.live_slots("app")) == ["Changed in the first"]
            assert len(reads) == 1
            with acting_as(Actor.system("test")):
                db.session.delete(db.session.get(StorefrontSlot, slot.id))
                db.session.commit()
            db.session.remove()
        assert storefront.live_slots("app") == []     # and the other way round
    finally:
        with second.app_context():
            db.session.remove()
            db.engine.dispose()


# -- screens and who reaches them --------------------------------------------------------------

def test_operations_adds_a_slot_in_the_screen_and_a_bad_form_is_refused(app, browser, shops):
    spu = make_spu(shops["A"])
    screen = browser("Operations")
    form = {"kind": "banner", "position": "home_top", "title": "首页大促", "image_url": "",
            "link_type": "spu", "link_value": str(spu.id), "sort_order": "2",
            "platforms": ["app", "mini_program"], "starts_at": "2027-06-01 00:00:00",
            "ends_at": "", "enabled": "y"}
    refused = screen.post_form("/storefrontslotview/add", form,
                               token_from="/storefrontslotview/add")
    assert refused.status_code == 302
    assert StorefrontSlot.query.count() == 0
    assert "image_id: A banner needs an image" in \
        screen.get("/storefrontslotview/list/").get_data(as_text=True)
    screen.post_form("/storefrontslotview/add",
                     {**form, "image_url": "https://cdn.example.com/618.jpg"},
                     token_from="/storefrontslotview/add")
    slot = StorefrontSlot.query.one()
    assert (slot.title, slot.link_value, slot.platforms, slot.sort_order, slot.starts_at) == (
        "首页大促", str(spu.id), ["app", "mini_program"], 2,
        datetime(2027, 5, 31, 16, tzinfo=timezone.utc))
    listing = screen.get("/storefrontslotview/list/").get_data(as_text=True)
    assert "首页大促" in listing
    assert screen.get(f"/storefrontslotview/edit/{slot.id}").status_code == 200
    screen.post_form(f"/storefrontslotview/edit/{slot.id}", {**form, "title": "大促",
                     "image_url": "https://cdn.example.com/618.jpg", "platforms": []},
                     token_from="/storefrontslotview/add")
    db.session.expire_all()
    assert (slot.title, slot.platforms) == ("大促", [])


def test_merchants_and_other_staff_cannot_reach_the_slots(app, api, browser, shops):
    make_slot(title="Platform data")
    for who in ("merchant_a", "Marketing", "Storefront"):
        client = api(who)
        assert client.get("/api/v1/storefront_slot/").status_code == 403, who
        assert client.post("/api/v1/storefront_slot/", json=valid_body()).status_code == 403
    assert StorefrontSlot.query.count() == 1
    page = browser("merchant_a").get("/storefrontslotview/list/")
    assert page.status_code in (302, 403)
    assert "Platform data" not in page.get_data(as_text=True)
    assert api("Admin").get("/api/v1/storefront_slot/").json["count"] == 1
    assert browser("Admin").get("/storefrontslotview/list/").status_code == 200


def test_demo_slots_include_one_that_starts_later(app, shops):
    from services import demo_storefront

    from models.product import SpuStatus

    spu = make_spu(shops["A"])
    with acting_as(Actor.system("test")):     # listed (the demo links an on-sale product)
        spu.status = SpuStatus.on_sale
        db.session.commit()
    assert demo_storefront.load_storefront() is True
    assert demo_storefront.load_storefront() is False
    live = storefront.live_slots("app", position="home_top")
    assert titles(live) == ["夏日大促 Summer sale", "本周新品 New this week"]
    assert live[1]["link"] == {"type": "spu", "value": str(spu.id)}
    clock.set_now(clock.now() + timedelta(days=8))
    assert titles(storefront.live_slots("app", position="home_top"))[0] == "618 预热 618 warm-up"
    assert titles(storefront.live_slots("mini_program", kind="banner"))[-1] == \
        "小程序专享 Mini program only"
    assert len(storefront.live_slots("h5", kind="icon")) == 3
