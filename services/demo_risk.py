"""Demo data of risk control (idempotent): a few default rules and one blacklisted IP, made
through the same checks as the screens."""
from app.extensions import db
from models.risk import Blacklist, RiskRule
from services import risk
from services.actor import Actor, acting_as

# name, event, kind, params, action
DEFAULT_RULES = [
    ("下单频率 Orders per member (5 / 10 min)", "order_placed", "velocity",
     {"key": "member", "limit": 5, "window_minutes": 10}, "review"),
    ("共享地址 Shared address (3 accounts / 24 h)", "order_placed", "shared_attribute",
     {"attribute": "address", "max_members": 2, "window_minutes": 1440}, "hold"),
    ("黑名单 Blacklist at checkout", "order_placed", "blacklist", {}, "block"),
    ("黑名单 Blacklist at login", "login", "blacklist", {"kinds": ["device", "ip"]}, "block"),
    ("黑名单 Blacklist on refunds", "refund_requested", "blacklist", {}, "block"),
    ("退款率 Refund rate (90 days)", "refund_requested", "refund_rate",
     {"min_orders": 5, "max_rate": "0.5", "window_days": 90}, "review"),
    ("评价刷屏 Review burst (5 / hour)", "review_posted", "review_burst",
     {"limit": 5, "window_minutes": 60}, "review"),
    ("重复评价 Same review from 3 accounts", "review_posted", "duplicate_text",
     {"max_accounts": 2, "window_minutes": 1440, "similarity": "0.85"}, "review"),
    ("新号领券 New accounts farming coupons", "coupon_claimed", "new_account_coupon",
     {"account_age_days": 7, "limit": 3, "window_minutes": 1440}, "review"),
    ("低信用 Low credit at checkout", "order_placed", "credit_below", {"score": 300}, "review"),
]
DEMO_BLACKLIST = [("ip", "203.0.113.66", "Demo: an address of the documentation range")]


def load_risk() -> int:
    """The default rules and blacklist entries that are missing; returns how many were made."""
    made = 0
    with acting_as(Actor.system("demo")):
        for name, event, kind, params, action in DEFAULT_RULES:
            if RiskRule.query.filter_by(name=name).first() is None:
                db.session.add(risk.check_rule(RiskRule(name=name, event=event, kind=kind,
                                                        params=dict(params), action=action,
                                                        enabled=True)))
                made += 1
        for kind, value, reason in DEMO_BLACKLIST:
            if Blacklist.query.filter_by(kind=kind, value=value).first() is None:
                db.session.add(risk.check_blacklist(Blacklist(kind=kind, value=value,
                                                              reason=reason)))
                made += 1
        db.session.commit()
    return made
