"""Members and addresses: masked for merchants and customer service, revealed with a reason."""
import pytest

from models.audit import AuditLog
from models.member import MemberAddress
from tests.factories import address_body, make_member


@pytest.fixture
def buyer(app, users):
    return make_member("wang")


def test_customer_service_sees_masked_phone_and_address(api, buyer):
    api("Operations").post("/api/v1/member_address/", json=address_body(buyer.id))
    service = api("CustomerService")
    shown = service.get(f"/api/v1/member/{buyer.id}").json["result"]
    assert shown["phone"] == "138****5678"
    address = service.get("/api/v1/member_address/").json["result"][0]
    assert address["phone"] == "138****5678"
    assert address["detail"].startswith("漕溪") and "88" not in address["detail"]
    assert api("OrderOps").get(f"/api/v1/member/{buyer.id}").json["result"]["phone"] == "13812345678"


def test_screens_mask_too(browser, buyer):
    page = browser("CustomerService").get("/memberview/list/").get_data(as_text=True)
    assert "138****5678" in page and "13812345678" not in page


def test_reveal_needs_the_permission_and_a_reason_and_is_audited(api, buyer):
    api("Operations").post("/api/v1/member_address/", json=address_body(buyer.id))
    service = api("CustomerService")
    assert service.post(f"/api/v1/member/{buyer.id}/reveal", json={}).status_code == 422
    answer = service.post(f"/api/v1/member/{buyer.id}/reveal",
                          json={"reason": "ticket 42: courier cannot reach buyer"})
    assert answer.status_code == 200
    assert answer.json["result"]["phone"] == "13812345678"
    assert answer.json["result"]["addresses"][0]["detail"].startswith("漕溪北路 88 号")
    entry = AuditLog.query.filter_by(model="Member", action="reveal").one()
    assert (entry.actor, entry.reason) == ("customerservice", "ticket 42: courier cannot reach buyer")
    assert api("Marketing").post(f"/api/v1/member/{buyer.id}/reveal",
                                 json={"reason": "x"}).status_code == 403


def test_merchants_do_not_reach_the_member_center(api, buyer):
    assert api("merchant_a").get("/api/v1/member/").status_code == 403


@pytest.mark.parametrize("override, field", [({"district_code": "31010"}, "district_code"),
                                             ({"phone": "call me"}, "phone"),
                                             ({"detail": " "}, "detail")])
def test_bad_addresses_name_the_field(api, buyer, override, field):
    answer = api("Operations").post("/api/v1/member_address/",
                                    json=address_body(buyer.id, **override))
    assert answer.status_code == 422 and field in answer.json["errors"]


def test_one_default_address_per_member(api, buyer):
    ops = api("Operations")
    first = ops.post("/api/v1/member_address/", json=address_body(buyer.id)).json["id"]
    second = ops.post("/api/v1/member_address/",
                      json=address_body(buyer.id, is_default=True)).json["id"]
    defaults = {a.id: a.is_default for a in MemberAddress.query.filter_by(member_id=buyer.id)}
    assert defaults == {first: False, second: True}


def test_member_status_and_phone_are_checked(api, users):
    ops = api("Operations")
    answer = ops.post("/api/v1/member/", json={"account": "x1", "name": "X", "status": "whatever"})
    assert answer.status_code == 422 and "status" in answer.json["errors"]
    answer = ops.post("/api/v1/member/", json={"account": "x2", "name": "X", "phone": "call me"})
    assert answer.status_code == 422 and "phone" in answer.json["errors"]


def test_names_are_masked_to_their_first_character(api, buyer):
    api("Operations").post("/api/v1/member_address/", json=address_body(buyer.id, recipient="李雷"))
    address = api("CustomerService").get("/api/v1/member_address/").json["result"][0]
    assert address["recipient"] == "李*"
