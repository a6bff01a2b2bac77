"""Path ids: ``<int:…>`` matches only what an id column can hold.

Werkzeug's ``int`` converter takes any number of digits, and PostgreSQL then refuses a value
beyond its ``integer`` range with an error (a 500). With this converter such a path matches no
route: 404, like any id that does not exist; /openapi.json documents the bound.
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, Map

MAX_ID = 2**31 - 1  # PostgreSQL integer, the type of every id that appears in a path


class IdConverter(IntegerConverter):
    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def id_param_schema(converter: IdConverter) -> dict[str, Any]:
    return {"type": "integer", "minimum": converter.min or 0, "maximum": converter.max}
