"""发票: one invoice per paid order, issued through the e-invoice sandbox; a refund after issue
voids it (same month, issued again for the rest) or reverses it with a red invoice."""
from datetime import timedelta
from decimal import Decimal

import pytest

from app.extensions import db
from models.invoice import Invoice
from services import clock
from tests.factories import make_order, paid_order, refund_through_after_sale


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", None)


def ask(api, order_id, **extra):
    return api("Storefront").post("/api/v1/invoice/", json={
        "order_id": order_id, "kind": "personal", "title": "王小明", **extra})


def test_request_and_issue_one_invoice_per_order(app, api, shops, users):
    placed = paid_order(shops["A"], quantity=2)
    made = ask(api, placed.id)
    assert made.status_code == 201 and made.json["result"]["amount"] == "198.00"
    assert ask(api, placed.id).status_code == 409                  # one per order
    issued = api("merchant_a").post(f"/api/v1/invoice/{made.json['id']}/issue", json={})
    result = issued.json["result"]
    assert result["status"] == "issued" and result["e_invoice_code"].startswith("SBXINV")
    assert api("merchant_b").post(f"/api/v1/invoice/{made.json['id']}/issue",
                                  json={}).status_code == 404
    assert api("merchant_a").post(f"/api/v1/invoice/{made.json['id']}/issue",
                                  json={}).status_code == 409


def test_bad_requests_are_refused(app, api, shops, users):
    unpaid = make_order(shops["A"])
    assert ask(api, unpaid.id).status_code == 409
    paid = paid_order(shops["A"])
    assert ask(api, paid.id, kind="company").status_code == 422    # a company needs a tax id
    assert ask(api, paid.id, kind="company", tax_id="91310000MA1FL8XQ2B").status_code == 201
    assert ask(api, 999999).status_code == 422
    assert api("Storefront").post("/api/v1/invoice/", json={"order_id": paid.id}
                                  ).status_code == 422


def test_a_refund_this_month_voids_and_issues_again_for_the_rest(app, api, shops, users):
    placed = paid_order(shops["A"], quantity=2)
    pk = ask(api, placed.id).json["id"]
    api("Finance").post(f"/api/v1/invoice/{pk}/issue", json={})
    refund_through_after_sale(placed, "50.00")
    first = db.session.get(Invoice, pk)
    assert first.status == "voided" and first.voided_at is not None
    again = Invoice.query.filter(Invoice.id != pk).one()
    assert (again.status, again.amount) == ("issued", Decimal("148.00"))


def test_a_refund_in_a_later_month_reverses_with_a_red_invoice(app, api, shops, users):
    placed = paid_order(shops["A"], quantity=2)
    pk = ask(api, placed.id).json["id"]
    api("Finance").post(f"/api/v1/invoice/{pk}/issue", json={})
    clock.set_now(clock.now() + timedelta(days=40))
    refund_through_after_sale(placed, "50.00")
    assert db.session.get(Invoice, pk).status == "issued"
    red = Invoice.query.filter_by(reverses_id=pk).one()
    assert (red.status, red.amount) == ("issued", Decimal("-50.00"))
