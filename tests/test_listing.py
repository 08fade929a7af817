"""The direct list path (views/listing.py) answers exactly what FAB's path answers, and only
the requests it can answer exactly."""
from urllib.parse import quote

import pytest

from app.extensions import db
from models.order import Trade
from services import order
from services.actor import Actor, acting_as
from tests.test_order import body, cart, place  # noqa: F401  (the fixture)
from views.listing import DirectList

DIRECT = [
    "/api/v1/order/",
    "/api/v1/order/?q=(page_size:2)",
    "/api/v1/order/?q=(filters:!((col:status,opr:eq,value:pending_payment)))",
    "/api/v1/order/?q=(filters:!((col:status,opr:eq,value:paid),(col:shop_id,opr:eq,value:{A})))",
    "/api/v1/order/?q=(filters:!((col:shop_id,opr:eq,value:'{B}')),page_size:3)",
    "/api/v1/order/?q=(filters:!((col:member_id,opr:eq,value:'{A}')))",
    "/api/v1/order/?q=(keys:!(list_columns,label_columns),page_size:1)",
    "/api/v1/order/?q=(page:0,page_size:4)",
]
BY_FAB = [
    "/api/v1/order/?q=(order_column:payable,order_direction:asc)",
    "/api/v1/order/?q=(page:1,page_size:2)",
    "/api/v1/order/?q=(filters:!((col:order_no,opr:sw,value:O)))",
    "/api/v1/order/?q=(columns:!(id,status))",
    "/api/v1/order/?q=(filters:!((col:status,opr:eq,value:!(paid))))",
]
REFUSED = [
    "/api/v1/order/?q=(filters:!((col:status,opr:eq,value:nonsense)))",
    "/api/v1/order/?q=(filters:!((col:nope,opr:eq,value:1)))",
    "/api/v1/order/?q=(page_size:'x')",
    "/api/v1/order/?cursor=not-a-cursor",
    "/api/v1/order/?q=(filters:!((col:member_id,opr:eq,value:!n)))",
]


@pytest.fixture
def orders(api, cart, shops):  # noqa: F811
    """Seven orders in two shops, some paid."""
    for n in range(4):
        place(api, body(cart, 1, 0, 1), key=f"list-{n}")
    with acting_as(Actor.system("test")):
        for trade in Trade.query.order_by(Trade.id).limit(2):
            order.mark_paid(trade.id, "paid at the counter")
    db.session.commit()


@pytest.fixture
def count_direct(monkeypatch):
    """How many answers the direct path gave; `off()` sends every request to FAB's path."""
    answered = {"direct": 0}
    direct = DirectList.answer

    def counted(self, args):
        response = direct(self, args)
        answered["direct"] += response is not None
        return response

    monkeypatch.setattr(DirectList, "answer", counted)
    answered["off"] = lambda: monkeypatch.setattr(DirectList, "answer", lambda self, args: None)
    return answered


def answers(client, urls, shops):
    got = []
    for url in urls:
        response = client.get(url.format(A=shops["A"].id, B=shops["B"].id))
        got.append((url, response.status_code, response.json))
    return got


@pytest.mark.parametrize("user", ["Admin", "merchant_a", "OrderOps"])
def test_direct_answers_equal_fab_answers_page_by_page(api, orders, shops, count_direct, user):
    client = api(user)
    urls = DIRECT + REFUSED
    first = client.get("/api/v1/order/?q=(page_size:2)").json
    urls.append(f"/api/v1/order/?q=(page_size:2)&cursor={first['next_cursor']}")
    urls.append("/api/v1/order/?q=(filters:!((col:status,opr:eq,value:pending_payment)),"
                f"page_size:1)&cursor={quote(first['next_cursor'])}")
    direct = answers(client, urls, shops)
    assert count_direct["direct"] == 1 + len(DIRECT) + 2
    assert [(url, status) for url, status, _ in direct[:len(DIRECT)] if status != 200] == []
    assert any(len(payload["result"]) >= 2 for _, _, payload in direct[:len(DIRECT)])
    count_direct["off"]()
    assert answers(client, urls, shops) == direct


def test_other_requests_take_fabs_path(api, orders, shops, count_direct):
    client = api("Admin")
    for _, status, _ in answers(client, BY_FAB, shops):
        assert status == 200
    assert count_direct["direct"] == 0


def test_merchants_see_only_their_shop_on_the_direct_path(api, orders, shops, count_direct):
    payload = api("merchant_a").get(
        "/api/v1/order/?q=(filters:!((col:shop_id,opr:eq,value:{B})))".format(B=shops["B"].id)
    ).json
    assert payload["count"] == 0 and payload["result"] == []
    mine = api("merchant_a").get("/api/v1/order/").json
    assert mine["count"] == 4 and {row["shop_id"] for row in mine["result"]} == {shops["A"].id}
    assert count_direct["direct"] == 2


def test_big_lists_keep_their_count_a_few_seconds_small_ones_never(
        app, api, orders, cart, shops, monkeypatch):  # noqa: F811
    from datetime import timedelta

    from services import clock

    clock.set_now(clock.now())
    monkeypatch.setitem(app.config, "LIST_COUNT_SECONDS", 5)
    monkeypatch.setitem(app.config, "LIST_COUNT_EXACT_BELOW", 5)
    admin, merchant = api("Admin"), api("merchant_a")
    assert admin.get("/api/v1/order/").json["count"] == 8        # big: kept
    assert merchant.get("/api/v1/order/").json["count"] == 4     # small: counted every time
    place(api, body(cart, 1, 0, 0), key="one-more")
    assert admin.get("/api/v1/order/").json["count"] == 8        # a moment late
    assert len(admin.get("/api/v1/order/").json["result"]) == 9  # the rows never are
    assert merchant.get("/api/v1/order/").json["count"] == 5
    clock.set_now(clock.now() + timedelta(seconds=5))
    assert admin.get("/api/v1/order/").json["count"] == 9
    monkeypatch.setitem(app.config, "LIST_COUNT_SECONDS", 0)
    place(api, body(cart, 0, 1, 0), key="and-another")
    assert admin.get("/api/v1/order/").json["count"] == 10       # 0: counted every time
