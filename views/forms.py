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
