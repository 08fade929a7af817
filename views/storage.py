"""Uploads: `POST /api/v1/uploaded_file/image` stores a checked image; records are read-only."""
from flask import request, send_file
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l

from app.extensions import db
from models.storage import UploadedFile
from services import storage
from services.errors import ValidationFailed
from views.base import ReadOnlyModelApi, ReadOnlyModelView, api_action

FILE_COLUMNS = ["id", "key", "original_name", "content_type", "size", "width", "height",
                "shop_id", "uploaded_by", "created_at"]


class UploadedFileView(ReadOnlyModelView):
    datamodel = SQLAInterface(UploadedFile)
    center = "storage"
    list_title = _l("Uploaded files")
    label_columns = {"original_name": _l("File name"), "content_type": _l("Type"),
                     "size": _l("Size (bytes)"), "uploaded_by": _l("Uploaded by"),
                     "created_at": _l("Uploaded at"), "shop_id": _l("Shop")}
    list_columns = ["original_name", "content_type", "size", "uploaded_by", "shop_id",
                    "created_at"]
    show_columns = FILE_COLUMNS
    search_columns = ["original_name", "content_type", "uploaded_by", "shop_id"]
    base_order = ("id", "desc")


class UploadedFileApi(ReadOnlyModelApi):
    resource_name = "uploaded_file"
    datamodel = SQLAInterface(UploadedFile)
    center = "storage"
    include_route_methods = {"get", "get_list", "info", "upload_image", "content"}
    list_columns = FILE_COLUMNS
    show_columns = FILE_COLUMNS
    search_columns = ["original_name", "content_type", "shop_id"]
    order_columns = ["id", "created_at", "size"]
    base_order = ("id", "desc")

    @api_action("/image", "post")
    def upload_image(self):
        """Upload one image (multipart field `file`), checked by its content
        ---
        post:
          requestBody:
            content:
              multipart/form-data:
                schema:
                  type: object
                  properties:
                    file: {type: string, format: binary}
          responses:
            201:
              description: Stored; `result` describes the file
        """
        upload = request.files.get("file")
        if upload is None:
            raise ValidationFailed.field("file", "Missing data for required field.")
        record = storage.store_image(upload.read(), upload.filename or "")
        db.session.commit()
        return self.response(201, id=record.id, result=self.show_model_schema.dump(record))

    @api_action("/<int:pk>/content", "get", methods=("GET",))
    def content(self, pk):
        """The stored bytes of one file (only a file the caller may see)
        ---
        get:
          parameters:
          - in: path
            name: pk
            schema: {type: integer}
          responses:
            200:
              description: The file
        """
        record = self._get_visible_or_404(pk)
        return send_file(storage.open_file(record), mimetype=record.content_type,
                         download_name=record.original_name)
