"""Demo integrations: a platform webhook to a local receiver (disabled until one listens) and
message templates for a shipped order (SMS and 站内信). Idempotent."""
from app.extensions import db
from models.message import MessageTemplate
from models.webhook import WebhookSubscription
from services import message, webhook

SHIPPED = "【后台商城】{member_name}，您的订单{order_no}已由{carrier}发出，运单号{tracking_no}。"
TEMPLATES = [
    {"code": "order_shipped", "channel": "sms", "locale": "zh",
     "event_name": "shipping_notice.shipped", "title": None, "body": SHIPPED,
     "provider_template": "SMS_0001"},
    {"code": "order_shipped", "channel": "inbox", "locale": "zh",
     "event_name": "shipping_notice.shipped", "title": "订单已发货", "body": SHIPPED,
     "provider_template": None},
]


def load_integrations() -> None:
    for fields in TEMPLATES:
        if MessageTemplate.query.filter_by(code=fields["code"], channel=fields["channel"],
                                           locale=fields["locale"]).first() is None:
            db.session.add(message.check_template(MessageTemplate(enabled=True, **fields)))
    if WebhookSubscription.query.filter_by(name="Local ERP (demo)").first() is None:
        subscription = WebhookSubscription(
            shop_id=None, name="Local ERP (demo)", url="http://127.0.0.1:8765/houtai-webhooks",
            events=["order.*", "shipping_notice.*", "after_sale.*"], enabled=False)
        webhook.create_subscription(subscription)
        db.session.add(subscription)
    db.session.commit()
