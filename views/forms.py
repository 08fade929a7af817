"""WTForms fields the screens share."""
import json

from wtforms import TextAreaField
from wtforms.validators import ValidationError


class JSONTextAreaField(TextAreaField):
    """A JSON object typed as text (e.g. attribute values keyed by attribute id)."""

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return json.dumps(self.data if self.data is not None else {}, ensure_ascii=False)

    def process_formdata(self, valuelist):
        self.data = {}
        if valuelist and valuelist[0].strip():
            try:
                self.data = json.loads(valuelist[0])
            except ValueError as exc:
                self.data = None
                raise ValidationError(f"Not valid JSON: {exc}") from exc
            if not isinstance(self.data, dict):
                self.data = None
                raise ValidationError("A JSON object, e.g. {\"3\": \"cotton\"}")


class LinesField(TextAreaField):
    """A list of texts, one per line (e.g. an attribute's options)."""

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return "\n".join(self.data or [])

    def process_formdata(self, valuelist):
        text = valuelist[0] if valuelist else ""
        self.data = [line.strip() for line in text.splitlines() if line.strip()]


class IdListField(TextAreaField):
    """A list of record ids typed as "3, 7, 12"."""

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return ", ".join(str(i) for i in self.data or [])

    def process_formdata(self, valuelist):
        text = valuelist[0] if valuelist else ""
        parts = [p.strip() for p in text.replace("，", ",").split(",") if p.strip()]
        if not all(p.isascii() and p.isdigit() for p in parts):
            self.data = []
            raise ValidationError("Ids separated by commas, e.g. 3, 7")
        self.data = [int(p) for p in parts]
