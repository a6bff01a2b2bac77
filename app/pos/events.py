"""A batch of till events, applied set-based by the money engine; one result per event.

A till's upload is journalled and applied in the same request and transaction: ``pos_sales`` and
``pos_returns`` are the journal of till events (keyed by store and ``sale_id`` /
``return_id``, with the content hash that tells a replay from a conflict), and a return whose
sale has not arrived is held there (``parked``) until it does. The till needs each event's
outcome: ``accepted``, ``duplicate``, ``conflict``, ``rejected`` or ``parked``, with
``points_earned`` for sales.

The whole batch is one transaction (``app.db.transaction``) with a handful of statements per
table: sale keys locked in key order, members enrolled (``enrol``) and locked (``lock_members``)
once, purchases recorded and credited by ``record_purchases`` (which applies a member's sales
in upload order, wave after wave: a single event and a batch of 100 give the same ledger),
sales and lines written by multi-row inserts. An event the rules refuse (unknown member, a
redemption that does not match, a refund beyond what was paid) is answered ``rejected`` and the
batch is applied again without it: nothing of it is kept, and its neighbours still apply.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import marshmallow as ma
from flask import current_app
from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.exc import DataError

from app.common.clock import utcnow
from app.common.partitions import rows_by_key
from app.db import among, insert_rows, transaction
from app.errors import DomainError, NotFound, bad_text_path
from app.extensions import db
from app.members.codes import resolve_member_code
from app.members.models import Member
from app.members.payers import Payer, enrol, payer_identity
from app.members.services import lock_members
from app.points.purchases import PurchaseIn, record_purchases
from app.pos.context import TillContext
from app.pos.hooks import run_sale_hooks_batch
from app.pos.models import PosRedemption, PosReturn, PosSale, PosSaleLine
from app.pos.redemptions import capture_for_sale
from app.pos.returns import apply_parked_returns, apply_return, lines_json
from app.pos.schemas import ReturnEventSchema, SaleEventSchema, content_hash

log = logging.getLogger(__name__)
MAX_EVENTS = 100
_SCHEMAS = {"sale": (SaleEventSchema(), "sale_id"), "return": (ReturnEventSchema(), "return_id")}
_PAYER_SOURCES = {"wechat_openid": "pos_wechat_pay", "alipay_user_id": "pos_alipay"}
_LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(:keys) AS k ORDER BY 1) AS s"
).bindparams(bindparam("keys", type_=ARRAY(BIGINT)))


@dataclass(frozen=True)
class _Event:
    index: int  # position in the upload
    data: dict
    digest: str

    @property
    def type(self) -> str:
        return self.data["type"]

    @property
    def event_id(self) -> str:
        return self.data["sale_id" if self.type == "sale" else "return_id"]


class _Refused(Exception):
    """One event the rules refuse: the batch is applied again without it."""

    def __init__(self, index: int, error: DomainError) -> None:
        super().__init__(error.code)
        self.index = index
        self.error = error


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
    if not isinstance(raw, dict) or raw.get("type") not in _SCHEMAS:
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
    schema, _ = _SCHEMAS[raw["type"]]
    try:
        return schema.load(raw), None
    except ma.ValidationError as exc:
        details = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return None, _rejected(event_id, "VALIDATION_ERROR", "event is not valid", details)


def ingest_events(ctx: TillContext, events: list[Any]) -> list[dict[str, Any]]:
    """Apply up to ``MAX_EVENTS`` events; one result per event, in order."""
    if len(events) > MAX_EVENTS:
        raise ValueError("too many events")
    results: list[dict[str, Any] | None] = []
    todo: list[_Event] = []
    for raw in events:
        try:
            data, rejection = _validate(raw)
        except RecursionError:  # nested beyond what the schema can walk: this event only
            data, rejection = None, _rejected(None, "VALIDATION_ERROR", "event nested too deeply")
        results.append(rejection)
        if data is not None:
            todo.append(_Event(len(results) - 1, data, content_hash(data)))
    for index, result in _apply_isolating(ctx, todo).items():
        results[index] = result
    db.session.rollback()  # end any read transaction left open
    return [r for r in results if r is not None]


def _apply_isolating(ctx: TillContext, todo: list[_Event]) -> dict[int, dict[str, Any]]:
    """Apply the batch; an event refused alone is answered and the rest applied again."""
    answered: dict[int, dict[str, Any]] = {}
    while todo:
        try:
            answered.update(transaction(functools.partial(_apply, ctx, todo)))
            return answered
        except _Refused as exc:
            event = next(e for e in todo if e.index == exc.index)
            answered[event.index] = _refusal(event, exc.error)
            todo = [e for e in todo if e.index != exc.index]
        except (DomainError, DataError) as exc:
            db.session.rollback()
            if len(todo) > 1:  # refused by a batch-wide step: find the event one by one
                for event in todo:
                    answered.update(_apply_isolating(ctx, [event]))
                return answered
            error = (
                exc
                if isinstance(exc, DomainError)
                else DomainError(
                    "a value is out of range or cannot be stored", code="VALIDATION_ERROR"
                )
            )
            answered[todo[0].index] = _refusal(todo[0], error)
            return answered
    return answered


def _refusal(event: _Event, error: DomainError) -> dict[str, Any]:
    if error.code in ("SALE_ID_CONFLICT", "RETURN_ID_CONFLICT"):
        return {
            "id": event.event_id,
            "type": event.type,
            "status": "conflict",
            "error": {"code": error.code, "message": error.message, "details": {}},
        }
    return _rejected(event.event_id, error.code, error.message, error.details)


def _apply(ctx: TillContext, events: list[_Event]) -> dict[int, dict[str, Any]]:
    _lock_sale_keys(ctx.store_id, sorted({e.data["sale_id"] for e in events}))
    out: dict[int, dict[str, Any]] = {}
    known_sales = {
        s.sale_id: s
        for s in db.session.execute(
            rows_by_key(
                PosSale.__table__,
                (PosSale.id, PosSale.sale_id, PosSale.content_hash, PosSale.member_id),
                {"store_id": ctx.store_id},
                "sale_id",
                sorted({e.data["sale_id"] for e in events}),
                db.session.get_bind().dialect.name,
            )
        )
    }
    return_ids = [e.data["return_id"] for e in events if e.type == "return"]
    known_returns = (
        {
            r.return_id: r
            for r in db.session.execute(
                select(PosReturn.return_id, PosReturn.content_hash, PosReturn.state).where(
                    PosReturn.store_id == ctx.store_id, among(PosReturn.return_id, return_ids)
                )
            )
        }
        if return_ids
        else {}
    )
    # new sales (the first of a repeated sale_id in the upload; later ones are replays of it)
    new_sales: list[_Event] = []
    first: dict[str, _Event] = {}
    for e in events:
        if e.type != "sale":
            continue
        seen = known_sales.get(e.event_id)
        earlier = first.get(e.event_id)
        digest = seen.content_hash if seen is not None else earlier.digest if earlier else None
        if digest is None:
            first[e.event_id] = e
            new_sales.append(e)
        elif digest != e.digest:
            out[e.index] = _refusal(
                e,
                DomainError(
                    "this sale_id was already recorded with other content", code="SALE_ID_CONFLICT"
                ),
            )
    members = _members(ctx, new_sales)
    redeemed = _capture_redemptions(ctx, new_sales, members)
    purchases = record_purchases(
        [
            PurchaseIn(
                source="pos",
                external_id=ctx.sale_key(e.event_id),
                member_id=members[e.index],
                store_id=ctx.store_id,
                paid_fen=e.data["paid_fen"],
                total_fen=e.data["total_fen"],
                occurred_at=e.data["occurred_at"],
                skus=_skus(e.data),
            )
            for e in new_sales
        ]
    )
    sale_pks = _write_sales(ctx, new_sales, members, purchases, redeemed)
    run_sale_hooks_batch(
        [
            (members[e.index], ctx.store_id, list(_skus(e.data)), ctx.sale_key(e.event_id))
            for e in new_sales
            if members[e.index] is not None
        ]
    )
    for e, p in zip(new_sales, purchases, strict=True):
        out[e.index] = {
            "id": e.event_id,
            "type": "sale",
            "status": "accepted",
            "member_id": members[e.index],
            "points_earned": p.points_earned,
        }
    for e in events:  # replays of a sale: the first one's member
        if e.type == "sale" and e.index not in out:
            seen = known_sales.get(e.event_id)
            member_id = seen.member_id if seen is not None else members[first[e.event_id].index]
            out[e.index] = {
                "id": e.event_id,
                "type": "sale",
                "status": "duplicate",
                "member_id": member_id,
            }
    # returns, in upload order: applied when their sale is known (before, or earlier in this
    # upload), parked otherwise; parked ones are applied below when their sale arrives
    position = {e.event_id: e.index for e in new_sales}
    first_return: dict[str, _Event] = {}
    for e in events:
        if e.type != "return":
            continue
        seen = known_returns.get(e.event_id)
        earlier = first_return.get(e.event_id)
        if seen is not None or earlier is not None:
            digest = seen.content_hash if seen is not None else earlier.digest  # type: ignore[union-attr]
            if digest != e.digest:
                raise _Refused(
                    e.index,
                    DomainError(
                        "this return_id was already recorded with other content",
                        code="RETURN_ID_CONFLICT",
                    ),
                )
            state = seen.state if seen is not None else "parked"
            out[e.index] = {
                "id": e.event_id,
                "type": "return",
                "status": "duplicate",
                "state": state,
            }
            continue
        first_return[e.event_id] = e
        ret = _park(ctx, e)
        sale_id = e.data["sale_id"]
        sale_pk = known_sales[sale_id].id if sale_id in known_sales else None
        if sale_pk is None and position.get(sale_id, e.index) < e.index:
            sale_pk = sale_pks[sale_id]
        if sale_pk is None:
            out[e.index] = {"id": e.event_id, "type": "return", "status": "parked"}
            continue
        sale = db.session.get(PosSale, sale_pk)
        assert sale is not None
        try:
            with db.session.begin_nested():
                apply_return(ctx, sale, ret)
        except DomainError as exc:
            raise _Refused(e.index, exc) from exc
        out[e.index] = {
            "id": e.event_id,
            "type": "return",
            "status": "accepted",
            "points_taken": ret.points_taken,
            "points_returned": ret.points_returned,
        }
    _apply_parked(ctx, new_sales, sale_pks, out)
    return out


def _apply_parked(
    ctx: TillContext, new_sales: list[_Event], sale_pks: dict[str, int], out: dict[int, dict]
) -> None:
    """Returns held for the sales that just arrived are applied now."""
    if not new_sales:
        return
    waiting = set(
        db.session.scalars(
            select(PosReturn.sale_id).where(
                PosReturn.store_id == ctx.store_id,
                among(PosReturn.sale_id, [e.event_id for e in new_sales]),
                PosReturn.state == "parked",
            )
        )
    )
    for e in new_sales:
        if e.event_id in waiting:
            sale = db.session.get(PosSale, sale_pks[e.event_id])
            assert sale is not None
            applied = apply_parked_returns(ctx, sale)
            if applied:
                out[e.index]["returns_applied"] = applied


def _park(ctx: TillContext, e: _Event) -> PosReturn:
    ret = PosReturn(
        store_id=ctx.store_id,
        return_id=e.event_id,
        sale_id=e.data["sale_id"],
        content_hash=e.digest,
        terminal_id=ctx.terminal_id,
        refund_fen=e.data["refund_fen"],
        lines_json=lines_json(e.data["lines"]),
        state="parked",
        points_taken=0,
        points_returned=0,
        occurred_at=e.data["occurred_at"],
    )
    db.session.add(ret)
    db.session.flush()
    return ret


def _members(ctx: TillContext, sales: list[_Event]) -> dict[int, int | None]:
    """The live member of each new sale (payers and phones enrolled), all locked in id order."""
    found: dict[int, int | None] = {}
    enrolling: list[tuple[int, Payer]] = []
    by_id: list[tuple[int, int]] = []
    for e in sales:
        ref = e.data["member"]
        found[e.index] = None
        if ref is None:
            if e.data["redemption_id"]:  # the member who holds the redemption
                holder = db.session.execute(
                    select(PosRedemption.member_id).where(
                        PosRedemption.id == e.data["redemption_id"],
                        PosRedemption.store_id == ctx.store_id,
                    )
                ).scalar_one_or_none()
                if holder is not None:
                    by_id.append((e.index, int(holder)))
            continue
        if "member_id" in ref:
            by_id.append((e.index, ref["member_id"]))
        elif "member_code" in ref:
            try:
                by_id.append((e.index, resolve_member_code(ref["member_code"])))
            except DomainError as exc:
                raise _Refused(e.index, exc) from exc
        elif "phone" in ref:
            enrolling.append((e.index, Payer((("phone", "", ref["phone"]),), "pos", ctx.store_id)))
        else:
            kind = next(k for k in _PAYER_SOURCES if k in ref)
            identity = payer_identity(kind, ref[kind])
            enrolling.append((e.index, Payer((identity,), _PAYER_SOURCES[kind], ctx.store_id)))
    if by_id:
        existing = set(
            db.session.scalars(select(Member.id).where(among(Member.id, {m for _, m in by_id})))
        )
        for index, member_id in by_id:
            if member_id not in existing:
                raise _Refused(index, NotFound("member not found", code="MEMBER_NOT_FOUND"))
            found[index] = member_id
    if enrolling:
        ids = enrol([p for _, p in enrolling], lock=False)
        for (index, _), member_id in zip(enrolling, ids, strict=True):
            found[index] = member_id
    live = lock_members({m for m in found.values() if m is not None})
    erased = set(
        db.session.scalars(
            select(Member.id).where(among(Member.id, set(live.values())), Member.status == "erased")
        )
    )
    for index, member_id in found.items():  # its personal data is gone: it earns nothing
        if member_id is not None and live[member_id] in erased:
            raise _Refused(index, NotFound("member not found", code="MEMBER_NOT_FOUND"))
    return {i: (live[m] if m is not None else None) for i, m in found.items()}


def _capture_redemptions(
    ctx: TillContext, sales: list[_Event], members: dict[int, int | None]
) -> dict[int, int]:
    """Points and coupons held for these sales are captured; the points each sale redeemed."""
    redeemed: dict[int, int] = {}
    for e in sales:
        if not e.data["redemption_id"]:
            continue
        try:
            with db.session.begin_nested():
                red = capture_for_sale(
                    ctx, e.data["redemption_id"], sale_id=e.event_id, member_id=members[e.index]
                )
        except DomainError as exc:
            raise _Refused(e.index, exc) from exc
        if members[e.index] is None:
            members[e.index] = lock_members([red.member_id])[red.member_id]
        redeemed[e.index] = red.points
    return redeemed


def _write_sales(
    ctx: TillContext,
    sales: list[_Event],
    members: dict[int, int | None],
    purchases: list,
    redeemed: dict[int, int],
) -> dict[str, int]:
    """The sales (one multi-row ``INSERT … RETURNING``) and their lines (one executemany)."""
    if not sales:
        return {}
    now = utcnow()
    table = PosSale.__table__
    written = insert_rows(
        table,
        [
            {
                "store_id": ctx.store_id,
                "sale_id": e.event_id,
                "content_hash": e.digest,
                "terminal_id": ctx.terminal_id,
                "member_id": members[e.index],
                "purchase_id": p.purchase_id,
                "total_fen": e.data["total_fen"],
                "paid_fen": e.data["paid_fen"],
                "redemption_id": e.data["redemption_id"],
                "redeemed_points": redeemed.get(e.index, 0),
                "redeemed_points_returned": 0,
                "occurred_at": e.data["occurred_at"],
                "created_at": now,
            }
            for e, p in zip(sales, purchases, strict=True)
        ],
        returning=("id", "sale_id"),
    )
    by_sale = {sale_id: int(pk) for pk, sale_id in written}
    pks = [by_sale[e.event_id] for e in sales]
    lines = [
        {
            "sale_pk": pk,
            "line_no": i,
            "sku": line["sku"],
            "qty": line["qty"],
            "amount_fen": line["amount_fen"],
            "created_at": now,
        }
        for pk, e in zip(pks, sales, strict=True)
        for i, line in enumerate(e.data["lines"], start=1)
    ]
    insert_rows(PosSaleLine.__table__, lines)
    return {e.event_id: int(pk) for e, pk in zip(sales, pks, strict=True)}


def _skus(data: dict) -> tuple[str, ...]:
    return tuple(sorted({line["sku"] for line in data["lines"]}))


def _lock_sale_keys(store_id: int, sale_ids: list[str]) -> None:
    """Serialise everything about these sale ids (sales and returns) until commit, in key
    order, in one statement (PostgreSQL advisory locks; SQLite serialises writers)."""
    if not sale_ids or db.session.get_bind().dialect.name != "postgresql":
        return
    keys = []
    for sale_id in sale_ids:
        digest = hashlib.sha256(f"pos-sale:{store_id}:{sale_id}".encode()).digest()
        keys.append(int.from_bytes(digest[:8], "big", signed=True))
    db.session.execute(_LOCK_KEYS, {"keys": sorted(keys)})
