"""A batch of till events: each event in its own short transaction, answered in order.

A bad event is answered ``rejected`` with its error code and leaves no trace; its neighbours
still apply. One transaction per event (rather than per batch) keeps row locks short, so
concurrent uploads from many tills do not queue behind each other's whole batches; a
retryable database error (deadlock, serialization) replays just that event, which is safe
because every event is idempotent.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from sqlalchemy.exc import DataError, IntegrityError

from app.db import unit_of_work, with_retry
from app.errors import DomainError
from app.extensions import db
from app.pos.context import TillContext
from app.pos.returns import record_return
from app.pos.sales import record_sale
from app.pos.schemas import ReturnEventSchema, SaleEventSchema, content_hash

MAX_EVENTS = 100
_CONFLICT_CODES = ("SALE_ID_CONFLICT", "RETURN_ID_CONFLICT")
_HANDLERS = {
    "sale": (SaleEventSchema(), record_sale, "sale_id"),
    "return": (ReturnEventSchema(), record_return, "return_id"),
}


def _rejected(event_id: Any, code: str, message: str, details: dict | None = None) -> dict:
    return {
        "id": event_id,
        "status": "rejected",
        "error": {"code": code, "message": message, "details": details or {}},
    }


def _process_one(ctx: TillContext, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("type") not in _HANDLERS:
        event_id = raw.get("sale_id") or raw.get("return_id") if isinstance(raw, dict) else None
        return _rejected(event_id, "UNKNOWN_EVENT_TYPE", 'type must be "sale" or "return"')
    schema, handler, id_field = _HANDLERS[raw["type"]]
    event_id = raw.get(id_field)
    try:
        data = schema.load(raw)
    except ma.ValidationError as exc:
        details = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return _rejected(event_id, "VALIDATION_ERROR", "event is not valid", details)
    digest = content_hash(data)

    def apply() -> dict[str, Any]:
        with unit_of_work():
            return handler(ctx, data, digest)

    for attempt in (1, 2):
        try:
            result = with_retry(apply)
            return {"id": event_id, "type": raw["type"], **result}
        except DomainError as exc:
            if exc.code in ("SALE_ID_CONFLICT", "RETURN_ID_CONFLICT"):
                return {
                    "id": event_id,
                    "type": raw["type"],
                    "status": "conflict",
                    "error": {"code": exc.code, "message": exc.message, "details": {}},
                }
            return _rejected(event_id, exc.code, exc.message, exc.details)
        except DataError:
            # valid by the schema, refused by the database (an id beyond its column, a NUL in
            # text): this event only is rejected, as any invalid event is
            db.session.rollback()
            return _rejected(
                event_id, "VALIDATION_ERROR", "a value is out of range or cannot be stored"
            )
        except IntegrityError:
            # a concurrent upload inserted the same business key: look again, it is visible now
            db.session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def ingest_events(ctx: TillContext, events: list[Any]) -> list[dict[str, Any]]:
    """Apply up to ``MAX_EVENTS`` events; one result per event, in order."""
    if len(events) > MAX_EVENTS:
        raise ValueError("too many events")

    results = [_process_one(ctx, raw) for raw in events]
    db.session.rollback()  # end the read transaction the last event may have left open
    return results
