"""A batch of till events: each event applied atomically, answered in order.

A bad event is answered ``rejected`` with its error code and leaves no trace; its neighbours
still apply. One transaction per event (rather than per batch) keeps row locks short, so
concurrent uploads from many tills do not queue behind each other's whole batches; a
retryable database error (deadlock, serialization) replays just that event, which is safe
because every event is idempotent. A batch made only of new sales (the common case) is
written set-based in one transaction by ``app.pos.batch``, with the same results.
"""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
from flask import current_app
from sqlalchemy.exc import DataError, IntegrityError

from app.db import unit_of_work, with_retry
from app.errors import DomainError, bad_text_path
from app.extensions import db
from app.pos import batch
from app.pos.context import TillContext
from app.pos.returns import record_return
from app.pos.sales import record_sale
from app.pos.schemas import ReturnEventSchema, SaleEventSchema, content_hash

log = logging.getLogger(__name__)
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


_AMOUNTS = {"sale": ("total_fen", "paid_fen"), "return": ("refund_fen",)}


def _event_id(raw: Any) -> Any:
    if not isinstance(raw, dict):
        return None
    found = raw.get("sale_id") if raw.get("type") != "return" else raw.get("return_id")
    found = found or raw.get("sale_id") or raw.get("return_id")
    # an id that could not be stored or echoed (a NUL, a lone surrogate, not text) is not echoed
    if isinstance(found, str) and bad_text_path(found) is None:
        return found
    return None


def _too_large(raw: dict) -> list[str]:
    """The amount fields (and line amounts) of an event above ``POS_MAX_SALE_FEN``."""
    limit = int(current_app.config["POS_MAX_SALE_FEN"])

    def big(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value > limit

    fields = [name for name in _AMOUNTS.get(raw.get("type"), ()) if big(raw.get(name))]
    lines = raw.get("lines")
    if isinstance(lines, list) and any(
        isinstance(line, dict) and big(line.get("amount_fen")) for line in lines
    ):
        fields.append("lines.amount_fen")
    return fields


def _validate(raw: Any) -> tuple[dict | None, dict | None]:
    """``(loaded event, None)`` or ``(None, rejection)``: no database work.

    Before the schema: text that cannot be stored (a NUL, a lone surrogate) and amounts above
    ``POS_MAX_SALE_FEN`` reject the event alone (``VALIDATION_ERROR``, ``AMOUNT_TOO_LARGE``).
    """
    event_id = _event_id(raw)
    if not isinstance(raw, dict) or raw.get("type") not in _HANDLERS:
        return None, _rejected(event_id, "UNKNOWN_EVENT_TYPE", 'type must be "sale" or "return"')
    bad = bad_text_path(raw)
    if bad is not None:
        return None, _rejected(
            event_id,
            "VALIDATION_ERROR",
            "event text contains a NUL character or a lone surrogate",
            {bad: ["contains a NUL character or a lone surrogate"]},
        )
    too_large = _too_large(raw)
    if too_large:
        limit = int(current_app.config["POS_MAX_SALE_FEN"])
        return None, _rejected(
            event_id,
            "AMOUNT_TOO_LARGE",
            f"amounts above {limit} fen are not accepted from a till",
            {name: [f"at most {limit}"] for name in too_large},
        )
    schema, _, _ = _HANDLERS[raw["type"]]
    try:
        return schema.load(raw), None
    except ma.ValidationError as exc:
        details = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return None, _rejected(event_id, "VALIDATION_ERROR", "event is not valid", details)


def _apply_one(ctx: TillContext, data: dict, digest: str) -> dict[str, Any]:
    _, handler, id_field = _HANDLERS[data["type"]]
    event_id = data[id_field]

    def apply() -> dict[str, Any]:
        with unit_of_work():
            return handler(ctx, data, digest)

    for attempt in (1, 2):
        try:
            result = with_retry(apply)
            return {"id": event_id, "type": data["type"], **result}
        except DomainError as exc:
            if exc.code in _CONFLICT_CODES:
                return {
                    "id": event_id,
                    "type": data["type"],
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
    """Apply up to ``MAX_EVENTS`` events; one result per event, in order.

    Invalid events are answered first (they touch nothing). The valid ones go to the set-based
    path when it covers them all (``app.pos.batch``: one transaction for the batch), otherwise,
    or when it declines, one transaction each.
    """
    if len(events) > MAX_EVENTS:
        raise ValueError("too many events")
    results: list[dict[str, Any] | None] = []
    valid: list[tuple[int, dict, str]] = []
    for raw in events:
        try:
            data, rejection = _validate(raw)
        except RecursionError:  # nested beyond what the schema can walk: this event only
            data, rejection = None, _rejected(None, "VALIDATION_ERROR", "event nested too deeply")
        results.append(rejection)
        if data is not None:
            valid.append((len(results) - 1, data, content_hash(data)))
    applied = None
    if batch.covers([data for _, data, _ in valid]):
        try:
            applied = batch.apply_new_sales(
                ctx, [data for _, data, _ in valid], [digest for _, _, digest in valid]
            )
            applied = [
                {"id": data["sale_id"], "type": "sale", **result}
                for (_, data, _), result in zip(valid, applied, strict=True)
            ]
        except batch.UseEventPath as exc:
            log.info("POS batch of %d applied event by event: %s", len(valid), exc)
            applied = None
    if applied is None:
        applied = [_apply_one(ctx, data, digest) for _, data, digest in valid]
    for (index, _, _), result in zip(valid, applied, strict=True):
        results[index] = result
    db.session.rollback()  # end the read transaction the last event may have left open
    return [r for r in results if r is not None]
