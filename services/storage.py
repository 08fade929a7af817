"""Uploads: checked by content and size, stored through an adapter (a local folder by default).

Real deployments may swap the adapter (object storage) without touching callers: they only
use `store_image()` and `open_file()`.
"""
import io
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import current_app
from PIL import Image, UnidentifiedImageError

from app.extensions import db
from models.storage import UploadedFile
from services.actor import ALL_SHOPS, current_actor, shop_scope
from services.errors import HoutaiError, ValidationFailed

IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif",
                 "WEBP": "image/webp"}
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
MAX_PIXELS = 40_000_000


class UploadTooLargeError(HoutaiError):
    status = 413


class StorageAdapter(Protocol):
    def save(self, key: str, data: bytes) -> None: ...

    def open(self, key: str) -> BinaryIO: ...

    def delete(self, key: str) -> None: ...


class LocalFolderStorage:
    """Files under one folder (UPLOAD_FOLDER), keyed by a random name."""

    def __init__(self, root: str):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError("key escapes the storage folder")
        return path

    def save(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def save_file(self, key: str, source: BinaryIO) -> None:
        """Save from an open binary file, in chunks (large exports)."""
        import shutil

        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as target:
            shutil.copyfileobj(source, target)

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def storage() -> StorageAdapter:
    return current_app.extensions.get("houtai_storage") or \
        LocalFolderStorage(current_app.config["UPLOAD_FOLDER"])


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    width: int
    height: int


def inspect_image(data: bytes) -> ImageInfo:
    """What the bytes really are (never the name or the declared type); 422 if not an image
    we accept, 413 if larger than MAX_UPLOAD_MB."""
    limit = current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024
    if len(data) > limit:
        raise UploadTooLargeError("File too large",
                                  {"file": [f"At most {current_app.config['MAX_UPLOAD_MB']} MB."]})
    if not data:
        raise ValidationFailed.field("file", "Empty file.")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format, (width, height) = image.format, image.size
            if width * height > MAX_PIXELS:
                raise ValidationFailed.field("file", "Image has too many pixels.")
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ValidationFailed.field("file", "Not an image (JPEG, PNG, GIF or WebP).")
    if image_format not in IMAGE_FORMATS:
        raise ValidationFailed.field("file", "Not an image (JPEG, PNG, GIF or WebP).")
    return ImageInfo(IMAGE_FORMATS[image_format], width, height)


def store_image(data: bytes, original_name: str) -> UploadedFile:
    """Check and store an uploaded image for the current actor's shop; returns its record."""
    info = inspect_image(data)
    scope = shop_scope()
    key = f"{secrets.token_hex(16)}.{EXTENSIONS[info.content_type]}"
    name = "".join(c for c in (original_name or "") if c.isprintable()).strip() or key
    record = UploadedFile(key=key, original_name=name[:255],
                          content_type=info.content_type, size=len(data), width=info.width,
                          height=info.height, uploaded_by=current_actor().name,
                          shop_id=None if scope is ALL_SHOPS else scope)
    db.session.add(record)
    db.session.flush()
    storage().save(key, data)
    return record


def open_file(record: UploadedFile) -> BinaryIO:
    return storage().open(record.key)
