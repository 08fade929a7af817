"""Uploads: checked by content, limited by MAX_UPLOAD_MB, kept per shop."""
import io

import pytest

from models.storage import UploadedFile
from tests.factories import png_bytes


def upload(client, data, name="photo.png"):
    return client.post("/api/v1/uploaded_file/image",
                       data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_merchant_uploads_an_image_into_its_shop(api, shops):
    answer = upload(api("merchant_a"), png_bytes((8, 6)))
    assert answer.status_code == 201, answer.json
    assert answer.json["result"]["content_type"] == "image/png"
    assert (answer.json["result"]["width"], answer.json["result"]["height"]) == (8, 6)
    record = UploadedFile.query.get(answer.json["id"])
    assert record.shop_id == shops["A"].id
    content = api("merchant_a").get(f"/api/v1/uploaded_file/{record.id}/content")
    assert content.status_code == 200 and content.data == png_bytes((8, 6))
    assert api("merchant_b").get(f"/api/v1/uploaded_file/{record.id}/content").status_code == 404


@pytest.mark.parametrize("data, name", [
    (b"<?php system($_GET['x']); ?>", "shell.png"),
    (b"%PDF-1.4 not an image", "doc.jpg"),
    (png_bytes()[:20], "truncated.png"),
    (b"", "empty.png"),
])
def test_content_that_is_not_an_image_is_refused_whatever_its_name(api, shops, data, name):
    answer = upload(api("merchant_a"), data, name)
    assert answer.status_code == 422
    assert "file" in answer.json["errors"]
    assert UploadedFile.query.count() == 0


def test_jpeg_is_recognised_by_content_not_name(api, shops):
    answer = upload(api("merchant_a"), png_bytes(image_format="JPEG"), "looks.png")
    assert answer.status_code == 201
    assert answer.json["result"]["content_type"] == "image/jpeg"


def test_file_over_the_limit_is_413(app, api, shops, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_UPLOAD_MB", 1)
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1024 * 1024 + 64 * 1024)
    big = png_bytes() + b"\0" * (1024 * 1024 + 1)
    answer = upload(api("merchant_a"), big)
    assert answer.status_code == 413
    assert set(answer.json) == {"message", "errors"}
    huge = b"\0" * (2 * 1024 * 1024)
    assert upload(api("merchant_a"), huge).status_code == 413
    assert UploadedFile.query.count() == 0


def test_missing_file_field_names_it(api, shops):
    answer = api("merchant_a").post("/api/v1/uploaded_file/image", data={},
                                    content_type="multipart/form-data")
    assert answer.status_code == 422
    assert answer.json["errors"] == {"file": ["Missing data for required field."]}
