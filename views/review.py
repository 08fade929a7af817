"""评价中心 REST and screens: reviews (the storefront posts for its buyers, merchants reply,
staff decide and hide), the moderation check, the sensitive-word and image lists, ratings,
and buyers' feedback."""
from flask import flash, redirect, request, url_for
from flask_appbuilder.api import BaseApi
from flask_appbuilder.baseviews import expose
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import has_access
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.extensions import db
from models.review import BlockedImage, Feedback, RatingSummary, Review, SensitiveWord
from models.storage import UploadedFile
from services import moderation
from services import review as reviews
from services.actor import scope_query, visible_row
from services.errors import HoutaiError, NotFoundError
from views.base import (HoutaiModelApi, HoutaiModelView, ReadOnlyModelApi, ReadOnlyModelView,
                        api_action)
from views.openapi import OpenApiErrorsMixin
from views.schema import StrictInteger, json_body, load_or_422

REVIEW_COLUMNS = ["id", "kind", "parent_id", "shop_id", "order_id", "order_line_id",
                  "member_id", "spu_id", "sku_id", "rating", "text", "masked_text", "images",
                  "status", "is_default", "hits", "decision_note", "moderated_by",
                  "moderated_at", "created_at"]


class ReviewSchema(Schema):
    order_line_id = StrictInteger(required=True)
    rating = StrictInteger(required=True)
    text = fields.String(required=True)
    images = fields.List(StrictInteger(), load_default=list)


class FollowUpSchema(Schema):
    text = fields.String(required=True)
    images = fields.List(StrictInteger(), load_default=list)


class TextSchema(Schema):
    text = fields.String(required=True)


class ReasonSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=255))


def _answer(api, status: int, item: Review):
    return api.response(status, id=item.id, result={c: getattr(item, c) for c in
                                                    ("id", "kind", "parent_id", "status")})


class ReviewApi(ReadOnlyModelApi):
    """Reviews, follow-ups and replies with their moderation status; buyers see `published`
    and `masked` ones (the storefront shows `masked_text` for the latter)."""

    resource_name = "review"
    datamodel = SQLAInterface(Review)
    center = "review"
    include_route_methods = {"get", "get_list", "info", "post", "follow_up", "reply",
                             "approve", "reject", "hide"}
    list_columns = show_columns = REVIEW_COLUMNS
    search_columns = ["kind", "shop_id", "order_id", "member_id", "spu_id", "status", "rating",
                      "is_default", "created_at"]
    order_columns = ["id", "created_at", "rating"]
    base_order = ("id", "desc")

    @api_action("/", "post")
    def post(self):
        """A buyer's review of a delivered or completed order line (the storefront's)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, required: [order_line_id, rating, text],
                         properties: {order_line_id: {type: integer}, rating: {type: integer},
                                      text: {type: string},
                                      images: {type: array, items: {type: integer}}}}
          responses:
            201: {description: 'Pending moderation: {"id", "result": {"status": "pending"}}'}
            409: {description: The order is not delivered, or the line has its review}
        """
        body = load_or_422(ReviewSchema(), json_body())
        item = reviews.post_review(body["order_line_id"], body["rating"], body["text"],
                                   body["images"])
        db.session.commit()
        return _answer(self, 201, item)

    @api_action("/<int:pk>/follow_up", "follow_up")
    def follow_up(self, pk):
        """The buyer's one follow-up (追评) to a shown review
        ---
        post:
          responses:
            201: {description: Pending moderation}
        """
        body = load_or_422(FollowUpSchema(), json_body())
        item = reviews.post_follow_up(pk, body["text"], body["images"])
        db.session.commit()
        return _answer(self, 201, item)

    @api_action("/<int:pk>/reply", "reply")
    def reply(self, pk):
        """The shop's one reply to a shown review
        ---
        post:
          responses:
            201: {description: Pending moderation}
        """
        body = load_or_422(TextSchema(), json_body())
        item = reviews.reply(pk, body["text"])
        db.session.commit()
        return _answer(self, 201, item)

    def _decision(self, pk, approve: bool):
        body = load_or_422(ReasonSchema(), json_body())
        item = reviews.decide(pk, approve, body["reason"])
        db.session.commit()
        return _answer(self, 200, item)

    @api_action("/<int:pk>/approve", "moderate")
    def approve(self, pk):
        """Approve an item in manual review (shown; masked when it had hits)
        ---
        post:
          responses:
            200: {description: Decided}
        """
        return self._decision(pk, True)

    @api_action("/<int:pk>/reject", "moderate")
    def reject(self, pk):
        """Reject an item in manual review
        ---
        post:
          responses:
            200: {description: Decided}
        """
        return self._decision(pk, False)

    @api_action("/<int:pk>/hide", "hide")
    def hide(self, pk):
        """Take a shown item down, with a reason
        ---
        post:
          responses:
            200: {description: Hidden}
        """
        body = load_or_422(ReasonSchema(), json_body())
        item = reviews.hide(pk, body["reason"])
        db.session.commit()
        return _answer(self, 200, item)


class RatingSummaryApi(ReadOnlyModelApi):
    """Shown reviews rolled up per SPU and per shop (`spu_id` null)."""

    resource_name = "rating_summary"
    datamodel = SQLAInterface(RatingSummary)
    center = "review"
    list_columns = show_columns = ["id", "shop_id", "spu_id", "reviews", "rating_total",
                                   "average", "updated_at"]
    search_columns = ["shop_id", "spu_id"]
    base_order = ("id", "asc")


class CheckSchema(Schema):
    text = fields.String(required=True)


class ModerationApi(OpenApiErrorsMixin, BaseApi):
    resource_name = "moderation"
    center = "moderation"
    openapi_spec_tag = "Moderation"

    @api_action("/check", "check")
    def check(self):
        """What moderation makes of a text
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, required: [text], properties: {text: {type: string}}}
          responses:
            200: {description: '{"result": {"decision": "pass" | "mask" | "review" | "block",
              "masked_text", "hits": [{"word", "start", "end", "category"}]}}'}
        """
        body = load_or_422(CheckSchema(), json_body())
        return self.response(200, result=moderation.check(body["text"]).as_dict())


WORD_COLUMNS = ["word", "category", "action", "enabled"]


class SensitiveWordApi(HoutaiModelApi):
    """The managed sensitive words: `category`, and `action` block | review | mask."""

    resource_name = "sensitive_word"
    datamodel = SQLAInterface(SensitiveWord)
    center = "moderation_setup"
    list_columns = show_columns = ["id", *WORD_COLUMNS, "created_at"]
    add_columns = edit_columns = WORD_COLUMNS
    search_columns = ["word", "category", "action", "enabled"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        moderation.check_word(item)

    def pre_update(self, item):
        moderation.check_word(item)

    def pre_delete(self, item):
        moderation.bump_version()


class SensitiveWordView(HoutaiModelView):
    datamodel = SQLAInterface(SensitiveWord)
    center = "moderation_setup"
    list_title = _l("Sensitive words")
    label_columns = {"word": _l("Word"), "category": _l("Category"), "action": _l("Action"),
                     "enabled": _l("Enabled"), "created_at": _l("Created at")}
    list_columns = [*WORD_COLUMNS, "created_at"]
    show_columns = add_columns = edit_columns = WORD_COLUMNS
    search_columns = ["word", "category", "action", "enabled"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        super().pre_add(item)
        from views.base import form_rule

        form_rule(moderation.check_word, item)

    def pre_update(self, item):
        super().pre_update(item)
        from views.base import form_rule

        form_rule(moderation.check_word, item)

    def pre_delete(self, item):
        moderation.bump_version()


class BlockSchema(Schema):
    file_id = StrictInteger(required=True)
    label = fields.String(required=True, validate=validate.Length(min=1, max=64))


class BlockedImageApi(ReadOnlyModelApi):
    """Sensitive images by perceptual hash; copies within IMAGE_HASH_DISTANCE bits match."""

    resource_name = "blocked_image"
    datamodel = SQLAInterface(BlockedImage)
    center = "moderation_setup"
    include_route_methods = {"get", "get_list", "info", "block", "delete"}
    list_columns = show_columns = ["id", "phash", "label", "file_id", "created_at"]
    base_order = ("id", "desc")

    @api_action("/", "block")
    def block(self):
        """Block an uploaded image (and its resized or recompressed copies)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, required: [file_id, label],
                         properties: {file_id: {type: integer}, label: {type: string}}}
          responses:
            201: {description: 'The entry: {"id", "result": {"phash", "label"}}'}
        """
        from services.storage import open_file

        body = load_or_422(BlockSchema(), json_body())
        record = visible_row(UploadedFile, body["file_id"])
        if record is None:
            raise NotFoundError("Not found", {"file_id": ["No such uploaded file."]})
        with open_file(record) as handle:
            entry = moderation.block_image(handle.read(), body["label"], record.id)
        db.session.commit()
        return self.response(201, id=entry.id, result={"phash": entry.phash,
                                                       "label": entry.label})

    def pre_delete(self, item):
        moderation.bump_version()


class BlockedImageView(ReadOnlyModelView):
    datamodel = SQLAInterface(BlockedImage)
    center = "moderation_setup"
    list_title = _l("Sensitive images")
    label_columns = {"phash": _l("Perceptual hash"), "label": _l("Label"),
                     "created_at": _l("Created at")}
    list_columns = show_columns = ["label", "phash", "created_at"]
    base_order = ("id", "desc")


class FeedbackSchema(Schema):
    member_id = StrictInteger(required=True)
    topic = fields.String(load_default="other")
    text = fields.String(required=True)


class TriageSchema(Schema):
    action = fields.String(required=True, validate=validate.OneOf(["ticket", "close"]))
    note = fields.String(load_default=None, validate=validate.Length(max=255))
    queue_id = StrictInteger(load_default=None)


FEEDBACK_COLUMNS = ["id", "member_id", "topic", "text", "masked_text", "status", "hits",
                    "ticket_id", "triage_note", "created_at"]


class FeedbackApi(ReadOnlyModelApi):
    """用户反馈: the storefront posts what a buyer says; staff triage it."""

    resource_name = "feedback"
    datamodel = SQLAInterface(Feedback)
    center = "feedback"
    include_route_methods = {"get", "get_list", "info", "post", "triage"}
    list_columns = show_columns = FEEDBACK_COLUMNS
    search_columns = ["member_id", "topic", "status", "created_at"]
    base_order = ("id", "desc")

    @api_action("/", "post")
    def post(self):
        """A buyer's feedback (moderated like reviews, then triaged by staff)
        ---
        post:
          requestBody:
            content:
              application/json:
                schema: {type: object, required: [member_id, text],
                         properties: {member_id: {type: integer}, topic: {type: string},
                                      text: {type: string}}}
          responses:
            201: {description: 'Pending moderation: {"id", "result": {"status": "pending"}}'}
        """
        body = load_or_422(FeedbackSchema(), json_body())
        item = reviews.post_feedback(body["member_id"], body["topic"], body["text"])
        db.session.commit()
        return self.response(201, id=item.id, result={"id": item.id, "status": item.status})

    @api_action("/<int:pk>/triage", "triage")
    def triage(self, pk):
        """Turn feedback into a ticket (`queue_id`) or close it
        ---
        post:
          responses:
            200: {description: 'Triaged: {"result": {"status": "ticket" | "closed",
              "ticket_id"}}'}
        """
        body = load_or_422(TriageSchema(), json_body())
        item = reviews.triage(pk, body["action"], body["note"], body["queue_id"])
        db.session.commit()
        return self.response(200, result={"id": item.id, "status": item.status,
                                          "ticket_id": item.ticket_id})


REVIEW_LABELS = {"kind": _l("Kind"), "shop": _l("Shop"), "rating": _l("Rating"),
                 "text": _l("Text"), "masked_text": _l("Masked text"), "status": _l("Status"),
                 "is_default": _l("Default review"), "decision_note": _l("Decision"),
                 "moderated_by": _l("Moderated by"), "moderated_at": _l("Moderated at"),
                 "created_at": _l("Created at"), "order_id": _l("Order"),
                 "spu_id": _l("SPU"), "hits": _l("Hits")}


class ReviewView(ReadOnlyModelView):
    datamodel = SQLAInterface(Review)
    center = "review"
    list_title = _l("Reviews")
    label_columns = REVIEW_LABELS
    list_columns = ["kind", "rating", "text", "status", "order_id", "spu_id", "created_at"]
    show_columns = ["kind", "shop", "order_id", "spu_id", "rating", "text", "masked_text",
                    "hits", "status", "is_default", "decision_note", "moderated_by",
                    "moderated_at", "created_at"]
    search_columns = ["kind", "status", "rating", "created_at"]
    base_order = ("id", "desc")
    include_route_methods = ReadOnlyModelView.include_route_methods | {"queue"}
    base_permissions = ReadOnlyModelView.base_permissions + ["can_queue"]
    houtai_menu_name = "Moderation queue"     # the queue's menu link goes with this screen

    @expose("/queue", methods=["GET", "POST"])
    @has_access
    def queue(self):
        """The manual review queue: approve or reject each item with a reason."""
        if request.method == "POST":
            try:
                reviews.decide(request.form.get("review_id", type=int),
                               request.form.get("decision") == "approve",
                               request.form.get("reason"))
                db.session.commit()
            except HoutaiError as err:
                db.session.rollback()
                flash("; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in err.errors.items())
                      or err.message, "danger")
            return redirect(url_for(f"{self.endpoint}.queue"))
        waiting = scope_query(db.session.query(Review), Review).filter(
            Review.status == "manual_review").order_by(Review.id).limit(100).all()
        return self.render_template("houtai/review_queue.html", items=waiting,
                                    title=_l("Moderation queue"), appbuilder=self.appbuilder)


class FeedbackView(ReadOnlyModelView):
    datamodel = SQLAInterface(Feedback)
    center = "feedback"
    list_title = _l("Feedback")
    label_columns = {"member": _l("Member"), "topic": _l("Topic"), "text": _l("Text"),
                     "masked_text": _l("Masked text"), "status": _l("Status"),
                     "ticket_id": _l("Ticket"), "triage_note": _l("Note"),
                     "created_at": _l("Created at")}
    list_columns = ["topic", "text", "status", "ticket_id", "created_at"]
    show_columns = ["member", "topic", "text", "masked_text", "status", "ticket_id",
                    "triage_note", "created_at"]
    search_columns = ["topic", "status", "created_at"]
    base_order = ("id", "desc")
