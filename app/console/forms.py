"""Form input for console pages, loaded through the admin API's own marshmallow schemas: a form
is checked by the same rules as a JSON body, and a refusal carries the same fields."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from flask import request
from flask_babel import gettext as _

from app.errors import ValidationFailed


def load(schema: ma.Schema, data: dict[str, Any]) -> dict[str, Any]:
    """``schema.load(data)``; a refusal names the fields, as the API's 422 does."""
    try:
        return schema.load(data)
    except ma.ValidationError as exc:
        fields = exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages}
        raise ValidationFailed(
            _("Check these fields: %(fields)s", fields=", ".join(sorted(map(str, fields)))),
            details=fields,
        ) from exc


def text(name: str) -> str:
    return request.form.get(name, "").strip()


def whole(name: str) -> int | None:
    """A whole number field, or None when left empty."""
    raw = text(name)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise ValidationFailed(_("%(field)s must be a whole number.", field=name)) from exc


def json_value(raw: str) -> Any:
    """A typed value as JSON (``3``, ``true``, ``["a", "b"]``), or else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw
