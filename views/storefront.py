"""运营中心 storefront page configuration: the screens and REST resource where operations staff
set banners, icon navigation and tabs, and the public read the storefronts call (no login):
what is live now on a platform, cached, with an entity tag."""
from flask import make_response, request, send_file
from flask_appbuilder.api import BaseApi, expose
from flask_appbuilder.fieldwidgets import Select2ManyWidget
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from wtforms import SelectField, SelectMultipleField

from models.storefront import LINK_TYPES, PLATFORMS, SLOT_KINDS, StorefrontSlot
from services import storage, storefront
from services.errors import NotFoundError
from views.base import HoutaiModelApi, HoutaiModelView, api_errors, form_rule
from views.openapi import OpenApiErrorsMixin

SLOT_FIELDS = ["kind", "position", "title", "image_id", "image_url", "link_type", "link_value",
               "starts_at", "ends_at", "sort_order", "platforms", "enabled"]
SLOT_COLUMNS = ["id", *SLOT_FIELDS, "created_at", "updated_at"]
KIND_LABELS = {"banner": _l("Banner"), "icon": _l("Icon navigation"), "tab": _l("Tab")}
LINK_LABELS = {"spu": _l("Product (SPU)"), "zone": _l("Zone"), "url": _l("Web address"),
               "none": _l("No link")}
PLATFORM_LABELS = {"app": _l("App"), "h5": _l("Mobile web (H5)"), "pc": _l("PC web"),
                   "mini_program": _l("Mini program")}
SLOT_LABELS = {"kind": _l("Kind"), "position": _l("Position"), "title": _l("Title"),
               "image": _l("Uploaded image"), "image_id": _l("Uploaded image"),
               "image_url": _l("Image URL"), "link_type": _l("Link to"),
               "link_value": _l("Link target"), "starts_at": _l("Starts at"),
               "ends_at": _l("Ends at"), "sort_order": _l("Sort order"),
               "platforms": _l("Platforms"), "enabled": _l("Enabled"),
               "created_at": _l("Created at"), "updated_at": _l("Updated at")}


class StorefrontSlotApi(HoutaiModelApi):
    """Banners, icon-navigation entries and tabs of the storefront pages (platform data):
    each at a `position`, with an image (`image_id` of an uploaded image, or `image_url`),
    a link (`link_type` spu | zone | url | none and `link_value`), a window, a sort order
    and the platforms that show it (empty: all)."""

    resource_name = "storefront_slot"
    datamodel = SQLAInterface(StorefrontSlot)
    center = "operations"
    list_columns = show_columns = SLOT_COLUMNS
    add_columns = edit_columns = SLOT_FIELDS
    search_columns = ["kind", "position", "title", "link_type", "enabled", "starts_at",
                      "ends_at"]
    order_columns = ["id", "position", "sort_order", "starts_at", "ends_at"]
    base_order = ("id", "desc")

    def pre_add(self, item):
        storefront.check_slot(item)

    def pre_update(self, item):
        storefront.check_slot(item)


class StorefrontApi(OpenApiErrorsMixin, BaseApi):
    """What storefronts show: public (no login), cached, invalidated on every change."""

    resource_name = "storefront"
    center = "operations"
    openapi_spec_tag = "Storefront"

    @expose("/slots", methods=["GET"])
    @api_errors
    def slots(self):
        """The banners, icon navigation and tabs live now on a platform (no login)
        ---
        get:
          parameters:
          - {in: query, name: platform, required: true,
             schema: {type: string, enum: [app, h5, pc, mini_program]}}
          - {in: query, name: position, schema: {type: string},
             description: 'a position code such as home_top (all positions otherwise)'}
          - {in: query, name: kind, schema: {type: string, enum: [banner, icon, tab]}}
          - {in: header, name: If-None-Match, schema: {type: string},
             description: the ETag of an earlier answer (304 when nothing changed)}
          responses:
            200:
              description: 'What is live now, ordered by position, sort_order, id. Cache-Control
                max-age says how long it stays right (until the next start or end, at most
                STOREFRONT_CACHE_SECONDS).'
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      platform: {type: string}
                      slots:
                        type: array
                        items:
                          type: object
                          properties:
                            id: {type: integer}
                            kind: {type: string, enum: [banner, icon, tab]}
                            position: {type: string}
                            title: {type: string}
                            image_url: {type: string, nullable: true}
                            link:
                              type: object
                              properties:
                                type: {type: string, enum: [spu, zone, url, none]}
                                value: {type: string, nullable: true}
                            sort_order: {type: integer}
                            starts_at: {type: string, format: date-time, nullable: true}
                            ends_at: {type: string, format: date-time, nullable: true}
            304: {description: Unchanged since the ETag given in If-None-Match}
            422: {description: 'A bad platform, position or kind (errors names it)'}
        """
        answer = storefront.live_answer(request.args.get("platform"),
                                        request.args.get("position") or None,
                                        request.args.get("kind") or None)
        if answer.etag in _tags(request.headers.get("If-None-Match", "")):
            response = make_response("", 304)
        else:
            response = self.response(200, platform=request.args["platform"],
                                     slots=answer.slots)
        response.headers["ETag"] = answer.etag
        response.headers["Cache-Control"] = f"public, max-age={answer.max_age()}"
        return response

    @expose("/images/<int:pk>", methods=["GET"])
    @api_errors
    def image(self, pk):
        """An uploaded image a storefront slot shows (no login; other uploads stay private)
        ---
        get:
          parameters:
          - {in: path, name: pk, required: true, schema: {type: integer}}
          responses:
            200:
              description: The image
              content:
                image/*: {schema: {type: string, format: binary}}
            404: {description: No enabled slot shows this image}
        """
        record = storefront.public_image(pk)
        if record is None:
            raise NotFoundError("Not found")
        response = send_file(storage.open_file(record), mimetype=record.content_type)
        # an upload's bytes never change under its id
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response


FORM_FIELDS = ["kind", "position", "title", "image", "image_url", "link_type", "link_value",
               "starts_at", "ends_at", "sort_order", "platforms", "enabled"]


def _tags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _choices(values, labels) -> list:
    return [(value, labels[value]) for value in values]


class StorefrontSlotView(HoutaiModelView):
    """Storefront slots, by position and sort order."""

    datamodel = SQLAInterface(StorefrontSlot)
    center = "operations"
    list_title = _l("Storefront slots")
    show_title = _l("Storefront slot")
    add_title = _l("Add storefront slot")
    edit_title = _l("Edit storefront slot")
    label_columns = SLOT_LABELS
    list_columns = ["kind", "position", "title", "link_type", "link_value", "starts_at",
                    "ends_at", "sort_order", "platforms", "enabled"]
    add_columns = edit_columns = FORM_FIELDS
    show_columns = [*FORM_FIELDS, "created_at", "updated_at"]
    search_columns = ["kind", "position", "title", "link_type", "enabled"]
    order_columns = ["position", "sort_order", "starts_at", "ends_at"]
    base_order = ("position", "asc")
    description_columns = {
        "position": _l("Where on the storefront: a code such as home_top, home_icons, "
                       "home_tabs"),
        "image": _l("Banners and icons need an image: an uploaded one (System → Uploaded "
                    "files) or an image URL"),
        "image_url": _l("An absolute http(s) address of an image kept elsewhere (a CDN)"),
        "link_value": _l("An SPU id, a zone code, or an absolute http(s) URL"),
        "platforms": _l("None selected: every platform"),
        "sort_order": _l("Smaller first within a position"),
    }
    formatters_columns = {
        "kind": lambda value: KIND_LABELS.get(value, value),
        "link_type": lambda value: LINK_LABELS.get(value, value),
        "platforms": lambda value: ", ".join(str(PLATFORM_LABELS.get(p, p))
                                             for p in value or []) or str(_l("All")),
    }
    add_form_extra_fields = {
        "kind": SelectField(_l("Kind"), choices=_choices(SLOT_KINDS, KIND_LABELS)),
        "link_type": SelectField(_l("Link to"), choices=_choices(LINK_TYPES, LINK_LABELS),
                                 default="none"),
        "platforms": SelectMultipleField(_l("Platforms"),
                                         choices=_choices(PLATFORMS, PLATFORM_LABELS),
                                         widget=Select2ManyWidget(), default=[]),
    }
    edit_form_extra_fields = add_form_extra_fields

    def _check(self, item):
        item.image_id = item.image.id if item.image is not None else None
        form_rule(storefront.check_slot, item)

    def pre_add(self, item):
        super().pre_add(item)
        self._check(item)

    def pre_update(self, item):
        super().pre_update(item)
        self._check(item)
