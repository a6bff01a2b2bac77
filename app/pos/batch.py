"""A batch of new sales in one transaction: the common case of a till's upload, set-based.

``record_sale`` costs about twenty round trips per sale; a till uploading 100 sales pays them a
hundred times. When every event of a batch is a sale never seen before (no redemption, no
parked return, a member named by phone or id or not at all), this path writes the batch in one
transaction with a handful of statements per table for the whole batch: the sale keys and
accounts are locked in key order, the members looked up together, the purchases and their
credits written through ``add_purchases``/``credit_purchases`` (``post_credits``); the accounts
are locked last, so that batches crediting the same members hold those locks only briefly.

The results are those ``record_sale`` would have given one event at a time. Anything this path
does not cover, or any error, raises ``UseEventPath`` with nothing written (the transaction is
rolled back) and the caller applies the events one at a time as before: each event stays
atomic either way.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.exc import DataError, IntegrityError

from app.db import unit_of_work, with_retry
from app.errors import DomainError
from app.extensions import db
from app.members.models import Member, MemberIdentity
from app.members.services import create_member, resolve_member
from app.points.purchases import PurchaseIn, add_purchases, credit_purchases
from app.pos.context import TillContext
from app.pos.hooks import run_sale_hooks_batch
from app.pos.models import PosReturn, PosSale, PosSaleLine

_LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(:keys) AS k ORDER BY 1) AS s"
).bindparams(bindparam("keys", type_=ARRAY(BIGINT)))


class UseEventPath(Exception):
    """This batch is not for the set-based path: apply its events one at a time."""


def covers(events: list[dict]) -> bool:
    """Whether the set-based path may take these validated events (before any database work)."""
    if not events:
        return False
    ids = [e["sale_id"] for e in events if e.get("type") == "sale"]
    if len(ids) != len(events) or len(set(ids)) != len(ids):
        return False
    named = ({"phone"}, {"member_id"})
    return all(
        not e["redemption_id"] and (e["member"] is None or set(e["member"]) in named)
        for e in events
    )


def apply_new_sales(
    ctx: TillContext, events: list[dict], digests: list[str]
) -> list[dict[str, Any]]:
    """Record validated sale events (``covers`` them) in one transaction; one result each."""

    def attempt() -> list[dict[str, Any]]:
        with unit_of_work():
            return _apply(ctx, events, digests)

    try:
        _register_phones(ctx, sorted({e["member"]["phone"] for e in events if _by_phone(e)}))
        return with_retry(attempt)
    except DomainError as exc:
        raise UseEventPath(exc.code) from exc
    except DataError as exc:  # a value the database cannot store: each event is judged alone
        db.session.rollback()
        raise UseEventPath("a value the database refuses") from exc
    except IntegrityError as exc:  # another upload registered a phone or a sale meanwhile
        # the constraint's name only: the database's message quotes the row (a phone)
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        raise UseEventPath(f"concurrent insert ({constraint or 'unique key'})") from exc


def _apply(ctx: TillContext, events: list[dict], digests: list[str]) -> list[dict[str, Any]]:
    sale_ids = [e["sale_id"] for e in events]
    _lock_sale_keys(ctx.store_id, sale_ids)
    seen = select(PosSale.sale_id).where(
        PosSale.store_id == ctx.store_id, PosSale.sale_id.in_(sale_ids)
    )
    if db.session.scalars(seen).first() is not None:
        raise UseEventPath("a sale was seen before")
    if (
        db.session.scalars(
            select(PosReturn.id).where(
                PosReturn.store_id == ctx.store_id,
                PosReturn.sale_id.in_(sale_ids),
                PosReturn.state == "parked",
            )
        ).first()
        is not None
    ):
        raise UseEventPath("a return waits for one of these sales")
    members = _members([e["member"] for e in events])
    purchases = add_purchases(
        "pos",
        [
            PurchaseIn(
                external_id=ctx.sale_key(e["sale_id"]),
                member_id=member_id,
                store_id=ctx.store_id,
                paid_fen=e["paid_fen"],
                occurred_at=e["occurred_at"],
            )
            for e, member_id in zip(events, members, strict=True)
        ],
    )
    if not all(created for _, created in purchases):
        raise UseEventPath("a purchase was recorded before")
    sales = []
    for event, digest, member_id, (purchase, _) in zip(
        events, digests, members, purchases, strict=True
    ):
        sales.append(
            PosSale(
                store_id=ctx.store_id,
                sale_id=event["sale_id"],
                content_hash=digest,
                terminal_id=ctx.terminal_id,
                member_id=member_id,
                purchase_id=purchase.id,
                total_fen=event["total_fen"],
                paid_fen=event["paid_fen"],
                redemption_id=None,
                redeemed_points=0,
                redeemed_points_returned=0,
                occurred_at=event["occurred_at"],
            )
        )
    db.session.add_all(sales)
    db.session.flush()
    # the lines are plain rows nobody reads back here: a table-level executemany (the driver
    # pipelines one prepared statement), no ORM objects and no giant multi-row statement text
    lines = [
        {
            "sale_pk": sale.id,
            "line_no": i,
            "sku": line["sku"],
            "qty": line["qty"],
            "amount_fen": line["amount_fen"],
        }
        for sale, event in zip(sales, events, strict=True)
        for i, line in enumerate(event["lines"], start=1)
    ]
    if lines:
        db.session.execute(insert(PosSaleLine.__table__), lines)
    # the members' accounts are locked last, so concurrent batches wait on them only briefly
    credit_purchases([purchase for purchase, _ in purchases])
    run_sale_hooks_batch(
        [
            (member_id, ctx.store_id, _skus(e), ctx.sale_key(e["sale_id"]))
            for e, member_id in zip(events, members, strict=True)
            if member_id is not None
        ]
    )
    db.session.flush()
    return [
        {
            "status": "accepted",
            "member_id": member_id,
            "points_earned": purchase.points_earned,
        }
        for member_id, (purchase, _) in zip(members, purchases, strict=True)
    ]


def _skus(event: dict) -> list[str]:
    return sorted({line["sku"] for line in event["lines"]})


def _lock_sale_keys(store_id: int, sale_ids: list[str]) -> None:
    """``lock_sale_key`` for every sale of the batch, in key order, in one statement."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    keys = []
    for sale_id in sale_ids:
        digest = hashlib.sha256(f"pos-sale:{store_id}:{sale_id}".encode()).digest()
        keys.append(int.from_bytes(digest[:8], "big", signed=True))
    db.session.execute(_LOCK_KEYS, {"keys": keys})


def _by_phone(event: dict) -> bool:
    return event["member"] is not None and "phone" in event["member"]


def _register_phones(ctx: TillContext, phones: list[str]) -> None:
    """Register the batch's unknown phones first, in a short transaction of their own.

    As ``member_for_ref`` does for an unknown phone, but committed before the sales, so that
    concurrent uploads naming the same new phone wait on each other only for this moment
    (and in phone order). A registration stands on its own: the till named the phone.
    """
    if not phones:
        return

    def attempt() -> None:
        with unit_of_work():
            known = _phone_holders(phones)
            for phone in phones:
                if phone not in known:
                    create_member(source="pos", phone=phone, store_id=ctx.store_id)

    for tries_left in range(4, -1, -1):
        try:
            return with_retry(attempt)
        except IntegrityError:  # another upload registered one of them: it is visible now
            if not tries_left:
                raise


def _phone_holders(phones: list[str]) -> dict[str, tuple[int, int | None]]:
    """``phone -> (member id, merged_into_id)`` for the phones some member holds."""
    rows = db.session.execute(
        select(MemberIdentity.external_id, Member.id, Member.merged_into_id)
        .join(Member, Member.id == MemberIdentity.member_id)
        .where(
            MemberIdentity.kind == "phone",
            MemberIdentity.app == "",
            MemberIdentity.external_id.in_(phones),
        )
    ).all()
    return {phone: (member_id, merged_into) for phone, member_id, merged_into in rows}


def _members(refs: list[dict | None]) -> list[int | None]:
    """The live member id behind each ref, as ``member_for_ref`` finds it."""
    phones = sorted({r["phone"] for r in refs if r and "phone" in r})
    holders = _phone_holders(phones) if phones else {}
    by_phone = {
        phone: member_id if merged_into is None else resolve_member(member_id).id
        for phone, (member_id, merged_into) in holders.items()
    }
    found: list[int | None] = []
    for ref in refs:
        if ref is None:
            found.append(None)
        elif "member_id" in ref:
            found.append(resolve_member(ref["member_id"]).id)
        elif ref["phone"] in by_phone:
            found.append(by_phone[ref["phone"]])
        else:
            raise UseEventPath("a phone has no member")
    _share_lock_live(sorted({m for m in found if m is not None}))
    return found


def _share_lock_live(member_ids: list[int]) -> None:
    """Share-lock the members credited, in id order, as a payment does (``lock_live_member``).

    A merge locks both members for update, so it either finished before (then one of these
    was absorbed meanwhile, and the batch goes event by event, which finds the survivor) or
    waits until this batch has committed and then moves its points: none is stranded.
    """
    if not member_ids:
        return
    rows = db.session.execute(
        select(Member.id, Member.merged_into_id, Member.status)
        .where(Member.id.in_(member_ids))
        .order_by(Member.id)
        .with_for_update(read=True)
    ).all()
    if len(rows) != len(member_ids) or any(merged is not None for _, merged, _ in rows):
        raise UseEventPath("a member was merged meanwhile")
    if any(status == "erased" for _, _, status in rows):  # the event path rejects it
        raise UseEventPath("a member was erased")
