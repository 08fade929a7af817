"""Integrations: webhook subscriptions (the signing key shown once) and the deliveries log
(redeliver). Every rule is in services/webhook.py."""
import json

from flask import flash, g
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField

from app.extensions import db
from models.webhook import WebhookDelivery, WebhookSubscription
from services import webhook
from services.errors import ConflictError
from views.base import (HoutaiModelApi, HoutaiModelView, ReadOnlyModelApi, ReadOnlyModelView,
                        api_action, form_rule)
from views.forms import LinesField

DELIVERY_STATUS_LABELS = {"pending": _l("Pending"), "retrying": _l("Retrying"),
                          "succeeded": _l("Succeeded"), "failed": _l("Failed")}
SUBSCRIPTION_COLUMNS = ["id", "shop_id", "name", "url", "events", "enabled", "created_at",
                        "updated_at"]
SUBSCRIPTION_FIELDS = ["name", "url", "events", "enabled"]
DELIVERY_COLUMNS = ["id", "subscription_id", "shop_id", "event_id", "event_name", "status",
                    "attempts", "next_attempt_at", "last_status_code", "last_error",
                    "duration_ms", "created_at", "delivered_at"]
_KEY = "houtai_webhook_key"


def _key_answer(subscription, key) -> dict:
    return {"subscription_id": subscription.id, "signing_key": key}


def _no_deliveries(item) -> None:
    if db.session.query(WebhookDelivery.id).filter_by(subscription_id=item.id).first():
        raise ConflictError("The subscription has deliveries",
                            {"id": ["It has deliveries: disable it instead."]})


class WebhookSubscriptionApi(HoutaiModelApi):
    """Webhook subscriptions: a URL told of the events it names (names or `prefix.*`). The
    POST answer carries `signing_key` once; rotate_key issues a new one."""

    resource_name = "webhook_subscription"
    datamodel = SQLAInterface(WebhookSubscription)
    center = "integrations"
    include_route_methods = {"get", "get_list", "info", "post", "put", "delete", "rotate_key"}
    list_columns = SUBSCRIPTION_COLUMNS
    show_columns = SUBSCRIPTION_COLUMNS
    add_columns = ["shop_id"] + SUBSCRIPTION_FIELDS
    edit_columns = SUBSCRIPTION_FIELDS
    search_columns = ["shop_id", "name", "enabled"]
    order_columns = ["id", "name"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        g.setdefault(_KEY, {})["new"] = webhook.create_subscription(item)

    def pre_update(self, item):
        webhook.check_subscription(item)

    def pre_delete(self, item):
        _no_deliveries(item)

    def post_headless(self):
        """The created subscription, with its signing key (shown this once)."""
        answer = super().post_headless()
        key = g.get(_KEY, {}).pop("new", None)
        if answer.status_code != 201 or key is None:
            return answer
        data = answer.get_json()
        data["result"]["signing_key"] = key
        return self.response(201, **data)

    @api_action("/<int:pk>/rotate_key", "rotate_key")
    def rotate_key(self, pk):
        """A new signing key for the subscription, answered once (the old one stops signing)
        ---
        post:
          responses:
            201: {description: '{"result": {"subscription_id", "signing_key"}}: keep the key;
              it is never shown again'}
            404: {description: No such subscription}
        """
        subscription, key = webhook.rotate_key(pk)
        db.session.commit()
        return self.response(201, result=_key_answer(subscription, key))


LABELS = {"name": _l("Name"), "url": _l("URL"), "events": _l("Events"),
          "enabled": _l("Enabled"), "shop": _l("Shop"), "created_at": _l("Created at"),
          "updated_at": _l("Updated at"), "subscription": _l("Subscription"),
          "event_name": _l("Event"), "status": _l("Status"), "attempts": _l("Attempts"),
          "next_attempt_at": _l("Next attempt"), "last_status_code": _l("Status code"),
          "last_error": _l("Error"), "duration_ms": _l("Duration (ms)"),
          "delivered_at": _l("Delivered at"), "payload": _l("Data"),
          "request_body": _l("Request body"), "event_id": _l("Event id")}


def _events_text(events) -> str:
    return ", ".join(events or [])


class WebhookSubscriptionView(HoutaiModelView):
    datamodel = SQLAInterface(WebhookSubscription)
    center = "integrations"
    list_title = _l("Webhooks")
    label_columns = LABELS
    description_columns = {
        "events": _l("One per line: %(names)s; or a prefix such as order.*",
                     names=", ".join(webhook.WEBHOOK_EVENTS)),
        "url": _l("An absolute http(s) URL; each POST is signed (X-Houtai-Signature)"),
        "shop": _l("Empty: every shop's events (platform)")}
    list_columns = ["name", "url", "events", "enabled", "shop"]
    show_columns = ["name", "url", "events", "enabled", "shop", "created_at", "updated_at"]
    add_columns = ["shop"] + SUBSCRIPTION_FIELDS
    edit_columns = SUBSCRIPTION_FIELDS
    search_columns = ["name", "enabled", "shop"]
    add_form_extra_fields = {"events": LinesField(_l("Events")),
                             "enabled": BooleanField(_l("Enabled"), default=True)}
    edit_form_extra_fields = add_form_extra_fields
    formatters_columns = {"events": _events_text}
    base_order = ("id", "desc")

    def pre_add(self, item):
        super().pre_add(item)
        form_rule(lambda row: g.setdefault(_KEY, {}).update(
            new=webhook.create_subscription(row)), item)

    def post_add(self, item):
        key = g.get(_KEY, {}).pop("new", None)
        if key:
            flash(str(_l("Signing key of %(name)s (shown only this once, keep it now): "
                         "%(key)s", name=item.name, key=key)), "warning")

    def pre_update(self, item):
        super().pre_update(item)
        form_rule(webhook.check_subscription, item)

    def pre_delete(self, item):
        form_rule(_no_deliveries, item)

    @action("rotate_key", _l("New signing key"), _l("Issue a new signing key? The old one "
                                                     "stops signing at once."), "fa-key",
            multiple=False)
    def rotate_key(self, item):
        from flask import redirect

        item = item[0] if isinstance(item, list) else item
        subscription, key = webhook.rotate_key(item.id)
        db.session.commit()
        flash(str(_l("Signing key of %(name)s (shown only this once, keep it now): %(key)s",
                     name=subscription.name, key=key)), "warning")
        return redirect(self.get_redirect())


class WebhookDeliveryApi(ReadOnlyModelApi):
    """The deliveries log: one row per event and subscription, with its attempts; failed
    (or succeeded) deliveries can be redelivered."""

    resource_name = "webhook_delivery"
    datamodel = SQLAInterface(WebhookDelivery)
    center = "integrations"
    include_route_methods = ReadOnlyModelApi.include_route_methods | {"redeliver"}
    list_columns = DELIVERY_COLUMNS
    show_columns = DELIVERY_COLUMNS + ["payload"]
    search_columns = ["subscription_id", "shop_id", "event_name", "status", "created_at"]
    order_columns = ["id", "created_at", "next_attempt_at"]
    base_order = ("id", "desc")

    @api_action("/<int:pk>/redeliver", "redeliver")
    def redeliver(self, pk):
        """Send a failed (or succeeded) delivery again, with a fresh set of attempts
        ---
        post:
          responses:
            200: {description: The delivery, pending again}
            404: {description: No such delivery}
            409: {description: 'Still being tried (errors.status)'}
        """
        return self.answer_saved(webhook.redeliver(pk))


class WebhookDeliveryView(ReadOnlyModelView):
    datamodel = SQLAInterface(WebhookDelivery)
    center = "integrations"
    list_title = _l("Webhook deliveries")
    label_columns = LABELS
    list_columns = ["created_at", "event_name", "subscription", "status", "attempts",
                    "last_status_code", "next_attempt_at", "shop"]
    show_columns = ["event_name", "subscription", "shop", "status", "attempts",
                    "last_status_code", "last_error", "duration_ms", "next_attempt_at",
                    "created_at", "delivered_at", "event_id", "request_body"]
    search_columns = ["status", "event_name", "subscription", "shop", "created_at"]
    formatters_columns = {"status": lambda value: DELIVERY_STATUS_LABELS.get(value, value),
                          "payload": lambda value: json.dumps(value, ensure_ascii=False)}
    base_order = ("id", "desc")

    @action("redeliver", _l("Redeliver"), None, "fa-repeat", multiple=False)
    def redeliver(self, item):
        item = item[0] if isinstance(item, list) else item
        return self.run_step([item], webhook.redeliver)


def register(appbuilder) -> None:
    integrations = dict(category="Integrations", category_label=_l("Integrations"),
                        category_icon="fa-plug")
    appbuilder.add_view(WebhookSubscriptionView, "Webhooks", label=_l("Webhooks"),
                        icon="fa-plug", **integrations)
    appbuilder.add_view(WebhookDeliveryView, "Webhook deliveries",
                        label=_l("Webhook deliveries"), icon="fa-paper-plane-o",
                        **integrations)
    appbuilder.add_api(WebhookSubscriptionApi)
    appbuilder.add_api(WebhookDeliveryApi)
