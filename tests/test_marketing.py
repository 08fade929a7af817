"""营销中心 coupons: definitions checked, merchants on their own shop's coupons, and claims
that never exceed the total or a member's limit (races on PostgreSQL, with controls)."""
import threading

from app.extensions import db
from models.marketing import Coupon, MemberCoupon
from services import marketing
from services.actor import Actor, acting_as
from tests.conftest import requires_postgres
from tests.factories import coupon_body, make_coupon, make_member


def claim(api, coupon_id, member_id):
    return api("Storefront").post(f"/api/v1/coupon/{coupon_id}/claim",
                                  json={"member_id": member_id})


def test_staff_and_merchants_define_coupons_checked_on_save(api, shops, users):
    platform = api("Marketing").post("/api/v1/coupon/", json=coupon_body(None))
    assert platform.status_code == 201 and platform.json["result"]["shop_id"] is None
    own = api("merchant_a").post("/api/v1/coupon/", json=coupon_body(shops["A"]))
    assert own.status_code == 201 and own.json["result"]["shop_id"] == shops["A"].id
    other = api("merchant_a").post("/api/v1/coupon/", json=coupon_body(shops["B"]))
    assert other.status_code == 422 and "shop_id" in other.json["errors"]
    for bad, field in ((dict(kind="magic"), "kind"), (dict(threshold="5.00"), "threshold"),
                       (dict(kind="percent", amount=None, threshold=None), "percent_off"),
                       (dict(scope="brand"), "scope_ids"),
                       (dict(per_member_limit=0), "per_member_limit")):
        answer = api("Marketing").post("/api/v1/coupon/", json=coupon_body(None, **bad))
        assert answer.status_code == 422 and field in answer.json["errors"], (bad, answer.json)
    assert api("merchant_b").get(f"/api/v1/coupon/{own.json['id']}").status_code == 404


def test_claims_answer_the_contract(api, shops, users):
    member = make_member()
    coupon = make_coupon(shops["A"], total_quantity=1, per_member_limit=1)
    granted = claim(api, coupon.id, member.id)
    assert granted.status_code == 201 and granted.json["result"]["status"] == "granted"
    again = claim(api, coupon.id, member.id)
    assert again.status_code == 409 and again.json["errors"]["coupon"] == ["member_limit"]
    sold_out = claim(api, coupon.id, make_member().id)
    assert sold_out.json["errors"]["coupon"] == ["sold_out"]
    closed = make_coupon(None, claimable=False)
    assert claim(api, closed.id, member.id).json["errors"]["coupon"] == ["not_claimable"]
    assert claim(api, coupon.id, 999999).status_code == 422
    wallet = api("Marketing").get("/api/v1/member_coupon/").json
    assert wallet["count"] == 1 and wallet["result"][0]["member_id"] == member.id


def race(app, clients, attempts, attempt):
    barrier = threading.Barrier(clients)
    granted, lock = [], threading.Lock()

    def client(n):
        with app.app_context(), acting_as(Actor.system(f"client-{n}")):
            barrier.wait(timeout=10)
            for k in range(n, attempts, clients):
                try:
                    attempt(k)
                    db.session.commit()
                    with lock:
                        granted.append(k)
                except marketing.ClaimRefused:
                    db.session.rollback()
            db.session.remove()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return granted


def test_100_claims_from_32_clients_of_a_coupon_with_10_left_grant_exactly_10(app, shops):
    requires_postgres(app)
    coupon_id = make_coupon(None, total_quantity=10).id
    members = [make_member().id for _ in range(100)]
    granted = race(app, 32, 100, lambda k: marketing.claim(coupon_id, members[k]))
    assert len(granted) == 10
    db.session.expire_all()
    assert db.session.get(Coupon, coupon_id).claimed == 10
    assert MemberCoupon.query.filter_by(coupon_id=coupon_id).count() == 10


def test_one_member_claiming_at_once_gets_no_more_than_the_limit(app, shops):
    requires_postgres(app)
    coupon_id = make_coupon(None, total_quantity=50, per_member_limit=2).id
    member_id = make_member().id
    race(app, 8, 16, lambda k: marketing.claim(coupon_id, member_id))
    assert MemberCoupon.query.filter_by(coupon_id=coupon_id).count() <= 2
    db.session.expire_all()
    assert db.session.get(Coupon, coupon_id).claimed == \
        MemberCoupon.query.filter_by(coupon_id=coupon_id).count()


def test_control_read_then_write_claims_oversell(app, shops):
    """Checking what is left, then writing, lets two clients take the last coupon: the check
    above (exactly 10) would catch such a version."""
    requires_postgres(app)
    coupon_id = make_coupon(None, total_quantity=1).id
    both_read = threading.Barrier(2)

    def naive(k):
        coupon = db.session.get(Coupon, coupon_id)
        left = coupon.total_quantity - coupon.claimed
        both_read.wait(timeout=10)
        if left <= 0:
            raise marketing.ClaimRefused("sold_out", "None left")
        db.session.add(MemberCoupon(coupon_id=coupon_id, member_id=make_member_in_session(),
                                    serial=1, status="granted", source="claim"))

    def make_member_in_session():
        from models.member import Member

        member = Member(account=f"racer{threading.get_ident()}", name="Racer")
        db.session.add(member)
        db.session.flush()
        return member.id

    assert len(race(app, 2, 2, naive)) == 2
