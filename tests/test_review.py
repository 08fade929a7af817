"""评价中心: reviews only of delivered or completed lines, once, by the storefront for the
buyer; moderation in jobs (idempotent); follow-ups and replies through the same path; staff
decisions and hiding; ratings rolled up; the default positive review; feedback triage."""
import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.queue import run_inprocess_jobs
from models.review import Feedback, RatingSummary, Review, SensitiveWord
from services import clock, moderation
from services import review as reviews
from services.actor import Actor, acting_as
from tests.factories import delivered_order, make_order, make_review, paid_order, ticket_queue


@pytest.fixture(autouse=True)
def inprocess(app, monkeypatch):
    """Moderation jobs run in-process after each commit."""
    monkeypatch.setitem(app.config, "REDIS_URL", None)


@pytest.fixture
def words(app, users):
    with acting_as(Actor.system("test")):
        for word, action in (("垃圾", "mask"), ("代购", "review"), ("法轮功", "block")):
            db.session.add(moderation.check_word(SensitiveWord(word=word, category="other",
                                                               action=action)))
        db.session.commit()


def post(api, line_id, rating=5, text="很好", images=None):
    return api("Storefront").post("/api/v1/review/", json={
        "order_line_id": line_id, "rating": rating, "text": text, "images": images or []})


def status_of(review_id):
    db.session.expire_all()
    return db.session.get(Review, review_id).status


def test_a_review_is_pending_then_moderated_by_its_job(api, shops, words):
    line = delivered_order(shops["A"]).lines[0]
    answer = post(api, line.id, 5, "质量很好")
    assert answer.status_code == 201, answer.json
    assert answer.json["result"]["status"] == "pending"        # as answered, before the job
    assert status_of(answer.json["id"]) == "published"          # the job ran after the commit
    shown = api("Storefront").get(f"/api/v1/review/{answer.json['id']}").json["result"]
    assert shown["rating"] == 5 and shown["hits"] == []


@pytest.mark.parametrize("text, status", [("垃圾 商品", "masked"), ("能代购吗", "manual_review"),
                                          ("法 轮 功", "rejected")])
def test_moderation_decides_publish_mask_review_or_reject(api, shops, words, text, status):
    line = delivered_order(shops["A"]).lines[0]
    review_id = post(api, line.id, 1, text).json["id"]
    assert status_of(review_id) == status
    item = db.session.get(Review, review_id)
    if status == "masked":
        assert item.masked_text == "** 商品" and item.hits[0]["word"] == "垃圾"


def test_rerunning_the_job_changes_nothing(api, shops, words):
    line = delivered_order(shops["A"]).lines[0]
    review_id = post(api, line.id, 2, "垃圾").json["id"]
    before = db.session.get(Review, review_id)
    snapshot = (before.status, before.masked_text, before.moderated_at)
    with acting_as(Actor.system("job")):
        reviews.moderate(review_id)
        db.session.commit()
    after = db.session.get(Review, review_id)
    assert (after.status, after.masked_text, after.moderated_at) == snapshot


def test_only_delivered_lines_once_by_the_storefront(api, shops, words):
    unpaid = make_order(shops["A"]).lines[0]
    assert post(api, unpaid.id).status_code == 409
    paid = paid_order(shops["A"]).lines[0]
    assert post(api, paid.id).status_code == 409
    line = delivered_order(shops["A"]).lines[0]
    assert post(api, line.id).status_code == 201
    again = post(api, line.id)
    assert again.status_code == 409 and "order_line_id" in again.json["errors"]
    for bad, field in (({"rating": 0}, "rating"), ({"rating": 6}, "rating"),
                       ({"text": ""}, "text"), ({"order_line_id": 999999}, "order_line_id"),
                       ({"images": list(range(1, 11))}, "images"), ({"images": [99999]}, "images")):
        body = {"order_line_id": delivered_order(shops["A"]).lines[0].id, "rating": 5,
                "text": "好", "images": [], **bad}
        answer = api("Storefront").post("/api/v1/review/", json=body)
        assert answer.status_code == 422 and field in answer.json["errors"], (bad, answer.json)
    assert api("merchant_a").post("/api/v1/review/", json={
        "order_line_id": line.id, "rating": 5, "text": "刷好评"}).status_code == 403


def test_the_window_closes_and_a_default_positive_review_is_recorded(app, api, shops):
    placed = delivered_order(shops["A"], quantity=1)
    reviewed = delivered_order(shops["A"]).lines[0]
    assert post(api, reviewed.id, 3, "一般").status_code == 201
    later = clock.now() + timedelta(days=app.config["REVIEW_DAYS"] + 1)
    with clock.frozen_at(later):
        assert post(api, placed.lines[0].id).status_code == 409
        with acting_as(Actor.system("tick")):
            assert reviews.default_positive_reviews() == 1
            assert reviews.default_positive_reviews() == 0          # once
    default = Review.query.filter_by(order_line_id=placed.lines[0].id).one()
    assert (default.rating, default.status, default.is_default) == (5, "published", True)
    shop = RatingSummary.query.filter_by(shop_id=shops["A"].id, spu_id=None).one()
    assert (shop.reviews, shop.rating_total, str(shop.average)) == (2, 8, "4.00")


def test_follow_up_and_reply_go_through_moderation(api, shops, words):
    review = make_review(shops["A"])
    follow = api("Storefront").post(f"/api/v1/review/{review.id}/follow_up",
                                    json={"text": "用了一周还是 垃圾"})
    assert follow.status_code == 201 and status_of(follow.json["id"]) == "masked"
    assert api("Storefront").post(f"/api/v1/review/{review.id}/follow_up",
                                  json={"text": "再说一次"}).status_code == 409
    answer = api("merchant_a").post(f"/api/v1/review/{review.id}/reply",
                                    json={"text": "感谢支持"})
    assert answer.status_code == 201 and status_of(answer.json["id"]) == "published"
    assert api("merchant_b").post(f"/api/v1/review/{review.id}/reply",
                                  json={"text": "x"}).status_code == 404
    assert api("merchant_a").post(f"/api/v1/review/{review.id}/approve",
                                  json={"reason": "x"}).status_code == 403


def test_staff_decide_the_queue_and_hide_with_a_reason(api, browser, shops, words):
    line = delivered_order(shops["A"]).lines[0]
    waiting = post(api, line.id, 4, "可以代购吗").json["id"]
    assert status_of(waiting) == "manual_review"
    assert api("Operations").post(f"/api/v1/review/{waiting}/approve", json={}).status_code == 422
    approved = api("Operations").post(f"/api/v1/review/{waiting}/approve",
                                      json={"reason": "正常咨询"})
    assert approved.status_code == 200 and status_of(waiting) == "published"
    assert api("Operations").post(f"/api/v1/review/{waiting}/reject",
                                  json={"reason": "x"}).status_code == 409
    hidden = api("Operations").post(f"/api/v1/review/{waiting}/hide", json={"reason": "投诉"})
    assert hidden.status_code == 200 and status_of(waiting) == "hidden"
    summary = RatingSummary.query.filter_by(shop_id=shops["A"].id, spu_id=None).one()
    assert summary.reviews == 0                                # hidden ones do not count
    second = post(api, delivered_order(shops["A"]).lines[0].id, 1, "代购?").json["id"]
    screen = browser("Operations")
    page = screen.get("/reviewview/queue")
    assert page.status_code == 200 and "代购?" in page.get_data(as_text=True)
    screen.post_form("/reviewview/queue", {"review_id": str(second), "decision": "reject",
                                           "reason": "广告"}, token_from="/reviewview/queue")
    assert status_of(second) == "rejected"


def test_ratings_roll_up_per_spu_and_shop(api, shops):
    make_review(shops["A"], rating=5)
    make_review(shops["A"], rating=2)
    make_review(shops["B"], rating=4)
    totals = dict(db.session.execute(select(Review.shop_id, func.sum(Review.rating)).where(
        Review.kind == "review", Review.status.in_(["published", "masked"]))
        .group_by(Review.shop_id)).all())
    for shop_id, total in totals.items():
        summary = RatingSummary.query.filter_by(shop_id=shop_id, spu_id=None).one()
        assert summary.rating_total == total
    assert str(RatingSummary.query.filter_by(shop_id=shops["A"].id, spu_id=None).one()
               .average) == "3.50"
    mine = api("merchant_a").get("/api/v1/rating_summary/").json
    assert {row["shop_id"] for row in mine["result"]} == {shops["A"].id}


def test_images_are_checked_against_the_blocklist(api, shops):
    from tests.test_moderation import encoded, picture

    uploads = []
    for seed in (7, 8):
        upload = api("Storefront").post("/api/v1/uploaded_file/image", data={
            "file": (io.BytesIO(encoded(picture(seed))), "p.png")},
            content_type="multipart/form-data")
        assert upload.status_code == 201, upload.json
        uploads.append(upload.json["id"])
    banned = picture(8)
    with acting_as(Actor.system("test")):
        moderation.block_image(encoded(banned.resize((160, 120)), "JPEG", quality=50), "广告图")
        db.session.commit()
    clean = post(api, delivered_order(shops["A"]).lines[0].id, images=[uploads[0]]).json["id"]
    dirty = post(api, delivered_order(shops["A"]).lines[0].id, images=uploads).json["id"]
    assert status_of(clean) == "published" and status_of(dirty) == "rejected"
    assert db.session.get(Review, dirty).decision_note == "Sensitive image: 广告图"


def test_feedback_is_moderated_then_triaged(api, shops, words, users):
    from tests.factories import make_member

    member = make_member()
    made = api("Storefront").post("/api/v1/feedback/", json={
        "member_id": member.id, "topic": "service", "text": "客服态度 垃圾"})
    assert made.status_code == 201, made.json
    db.session.expire_all()
    item = db.session.get(Feedback, made.json["id"])
    assert item.status == "new" and item.masked_text == "客服态度 **"
    queue = ticket_queue()
    triaged = api("CustomerService").post(f"/api/v1/feedback/{item.id}/triage", json={
        "action": "ticket", "queue_id": queue.id, "note": "转客服"})
    assert triaged.status_code == 200 and triaged.json["result"]["ticket_id"]
    assert api("CustomerService").post(f"/api/v1/feedback/{item.id}/triage",
                                       json={"action": "close"}).status_code == 409
    bad = api("Storefront").post("/api/v1/feedback/", json={"member_id": member.id,
                                                            "topic": "x", "text": "y"})
    assert bad.status_code == 422 and "topic" in bad.json["errors"]
    blocked = api("Storefront").post("/api/v1/feedback/", json={
        "member_id": member.id, "text": "法轮功"})
    db.session.expire_all()
    assert db.session.get(Feedback, blocked.json["id"]).status == "rejected"
    run_inprocess_jobs(db.session)


def test_review_panels_match_sql_and_merchants_see_their_shop(api, browser, shops, words):
    from sqlalchemy import text

    from tests.test_dashboard import panels_on

    make_review(shops["A"], rating=5)
    make_review(shops["A"], text="垃圾", rating=1)
    make_review(shops["B"], text="代购吗", rating=3)          # waits in manual review
    admin = panels_on(browser("Admin").get("/").get_data(as_text=True))
    merchant = panels_on(browser("merchant_a").get("/").get_data(as_text=True))
    by_status = dict(db.session.execute(text(
        "SELECT status, COUNT(*) FROM review GROUP BY status")).all())
    assert {k: v for k, v in zip(admin["moderation_outcomes"]["keys"],
                                 admin["moderation_outcomes"]["values"]) if v} == by_status
    assert sum(merchant["moderation_outcomes"]["values"]) == 2
    assert dict(zip(merchant["ratings_by_star"]["keys"],
                    merchant["ratings_by_star"]["values"]))["1"] == 1


def test_a_real_rq_worker_moderates_once(app, api, shops, words, monkeypatch):
    """The moderation job runs in a real `rq worker --burst`; queued again, it changes
    nothing."""
    import os

    from app.queue import rq_queue
    from tests.conftest import requires_redis
    from tests.test_events import run_burst_worker

    line = delivered_order(shops["A"]).lines[0]
    monkeypatch.setitem(app.config, "REDIS_URL", os.environ.get("REDIS_URL"))
    requires_redis(app)
    review_id = post(api, line.id, 3, "包装 垃圾").json["id"]
    assert status_of(review_id) == "pending" and rq_queue().count >= 1
    run_burst_worker(app)
    item = db.session.get(Review, review_id)
    assert (item.status, item.masked_text) == ("masked", "包装 **")
    moderated_at = item.moderated_at
    rq_queue().enqueue(reviews.MODERATE_JOB, review_id)
    run_burst_worker(app)
    db.session.expire_all()
    assert db.session.get(Review, review_id).moderated_at == moderated_at
