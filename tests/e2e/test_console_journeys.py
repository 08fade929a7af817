"""Browser journeys through the console's screens, as the people who use them: a merchant lists
a product that staff approve; staff take a paid order to delivery, refund an after-sales
request, and decide a review waiting in the moderation queue. What the journey is not about
(an order placed and paid, a buyer's request, a posted review) is set up through services."""
import json
import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.queue import run_inprocess_jobs
from models.after_sale import AfterSale
from models.order import Order, OrderStatus, ShippingNotice
from models.payment import PaymentRefund
from models.product import Sku, Spu
from models.review import Review, SensitiveWord
from services import moderation
from services.actor import Actor, acting_as
from services.carriers import sandbox
from tests.e2e.screens import action_button, choose, field, open_record, row
from tests.factories import catalog, make_review, sandbox_carrier
from tests.test_after_sale import ask, pay_through_sandbox

pytestmark = pytest.mark.e2e


def reload(model, pk):
    db.session.expire_all()
    return db.session.get(model, pk)


def test_a_merchant_lists_a_product_and_product_ops_approve_it(console, shops):
    parts = catalog()
    attributes = parts["attributes"]
    merchant = console("merchant_a")

    merchant.goto("/spuview/add")
    merchant.locator("#title").fill("Linen tee (browser)")
    choose(merchant, "category", "T-shirts")
    choose(merchant, "brand", "Acme")
    merchant.locator("#attribute_values").fill(json.dumps({str(attributes["Model"].id): "T-200"}))
    merchant.locator("#model_form button[type=submit]").click()
    expect(merchant.locator(".alert-success")).to_be_visible()

    open_record(merchant, "/spuview/list/", "Linen tee (browser)")
    expect(field(merchant, "Status")).to_have_text("Draft")
    action_button(merchant, "SpuView", "generate").click()
    for value in ("red", "S", "M"):
        merchant.locator(f"input[type=checkbox][value='{value}']").check()
    merchant.locator("#price").fill("129.00")
    merchant.get_by_role("button", name="Generate").click()
    expect(merchant.locator(".alert-success")).to_contain_text("2 SKUs added")
    # a step on a record answers on the list it was opened from
    action_button(merchant, "SpuView", "submit").click()
    expect(merchant).to_have_url(re.compile(r"/spuview/list/"))
    expect(row(merchant, "Linen tee (browser)")).to_contain_text("Pending review")

    staff = console("ProductOps")
    open_record(staff, "/spuview/list/", "Linen tee (browser)")
    expect(field(staff, "Shop")).to_contain_text("Shop A")
    action_button(staff, "SpuView", "approve").click()
    expect(staff).to_have_url(re.compile(r"/spuview/list/"))
    expect(row(staff, "Linen tee (browser)")).to_contain_text("On sale")

    open_record(merchant, "/spuview/list/", "Linen tee (browser)")
    expect(field(merchant, "Status")).to_have_text("On sale")
    expect(field(merchant, "History")).to_contain_text("on_sale")
    spu = Spu.query.filter_by(title="Linen tee (browser)").one()
    assert (spu.shop_id, spu.status) == (shops["A"].id, "on_sale")
    skus = Sku.query.filter_by(spu_id=spu.id).all()
    assert sorted(s.price for s in skus) == [Decimal("129.00"), Decimal("129.00")]


def test_order_ops_take_a_paid_order_from_payment_to_delivery(app, api, console, shops):
    sandbox.forget_book()
    carrier = sandbox_carrier()
    paid = pay_through_sandbox(app, api, shops["A"], quantity=1)
    notice = ShippingNotice.query.filter_by(order_id=paid.id).one()
    staff = console("OrderOps")

    staff.goto("/orderview/list/")
    expect(row(staff, paid.order_no)).to_contain_text("Fulfilling")   # paid, notice made

    open_record(staff, "/shippingnoticeview/list/", notice.notice_no)
    action_button(staff, "ShippingNoticeView", "pick").click()
    expect(row(staff, notice.notice_no)).to_contain_text("Picking")
    open_record(staff, "/shippingnoticeview/list/", notice.notice_no)
    action_button(staff, "ShippingNoticeView", "pack").click()
    expect(row(staff, notice.notice_no)).to_contain_text("Packed")

    staff.get_by_role("link", name="Orders").first.click()
    staff.get_by_role("link", name="Import tracking numbers").click()
    tracking_no = f"{carrier.code}{notice.id:010d}"
    staff.locator("#text").fill(f"notice_no,carrier,tracking_no\n"
                                f"{notice.notice_no},{carrier.code},{tracking_no}")
    staff.get_by_role("button", name="Ship").click()
    expect(staff.locator(".alert-success")).to_contain_text("Shipped: 1")
    expect(row(staff, notice.notice_no)).to_contain_text("Shipped")
    assert reload(Order, paid.id).status == OrderStatus.shipped

    # the carrier (the sandbox's desk) signs the parcel and pushes its history
    scan, push_status = sandbox.advance(tracking_no, "signed", "本人签收", "上海")
    run_inprocess_jobs(db.session)
    assert push_status == 200, scan

    open_record(staff, "/orderview/list/", paid.order_no)
    expect(field(staff, "Status")).to_have_text("Delivered")
    expect(field(staff, "Shipments")).to_contain_text(tracking_no)
    open_record(staff, "/shippingnoticeview/list/", notice.notice_no)
    expect(field(staff, "Tracking status")).to_have_text("signed")
    expect(field(staff, "Signed for at")).not_to_be_empty()
    assert reload(Order, paid.id).status == OrderStatus.delivered


def test_customer_service_approve_and_refund_an_after_sales_request(app, api, console, shops):
    paid = pay_through_sandbox(app, api, shops["A"], quantity=2)
    asked = ask(api, paid.lines[0].id, quantity=1, amount="99.00")
    assert asked.status_code == 201, asked.json
    number = asked.json["result"]["after_sale_no"]
    staff = console("CustomerService")

    open_record(staff, "/aftersaleview/list/", number)
    expect(field(staff, "Status")).to_have_text("Requested")
    expect(field(staff, "Amount")).to_have_text("99.00")
    action_button(staff, "AfterSaleView", "approve").click()
    expect(row(staff, number)).to_contain_text("Approved")
    open_record(staff, "/aftersaleview/list/", number)
    action_button(staff, "AfterSaleView", "refund").click()
    # the sandbox gateway refunds and notifies before the screen answers (in-process jobs)
    expect(row(staff, number)).to_contain_text("Refunded")
    open_record(staff, "/aftersaleview/list/", number)
    expect(field(staff, "Finished at")).not_to_be_empty()

    staff.goto("/paymentrefundview/list/")
    refund_row = staff.locator("table tr", has_text=f"After-sale {number}").or_(
        staff.locator("table tbody tr").filter(has_text="99.00"))
    expect(refund_row.first).to_contain_text("Succeeded")
    item = AfterSale.query.filter_by(after_sale_no=number).one()
    refund = reload(PaymentRefund, item.payment_refund_id)
    assert (item.status, refund.status, refund.amount) == ("refunded", "succeeded",
                                                          Decimal("99.00"))


def test_operations_decide_a_review_waiting_in_the_moderation_queue(console, shops):
    with acting_as(Actor.system("test")):
        db.session.add(moderation.check_word(SensitiveWord(word="代购", category="other",
                                                           action="review")))
        db.session.commit()
    waiting = make_review(shops["A"], text="可以代购吗", rating=4)
    published = make_review(shops["A"], text="可以代购吗？还有货", rating=3)
    assert (waiting.status, published.status) == ("manual_review", "manual_review")
    staff = console("Operations")

    staff.goto("/reviewview/queue")
    queued = staff.locator("#queue tr", has_text=f"#{waiting.id} ")
    queued.locator("input[name=reason]").fill("广告引流")
    queued.get_by_role("button", name="Reject").click()
    expect(staff.locator("#queue tr", has_text=f"#{waiting.id} ")).to_have_count(0)
    queued = staff.locator("#queue tr", has_text=f"#{published.id} ")
    queued.locator("input[name=reason]").fill("正常咨询")
    queued.get_by_role("button", name="Approve").click()
    expect(staff.get_by_text("Nothing waits for a decision.")).to_be_visible()

    staff.goto("/reviewview/list/")
    expect(row(staff, "可以代购吗？还有货")).to_contain_text("published")
    assert reload(Review, waiting.id).status == "rejected"
    assert reload(Review, published.id).status == "published"
    assert re.search("广告引流", reload(Review, waiting.id).decision_note or "")
