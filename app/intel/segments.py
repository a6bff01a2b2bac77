"""Segments: a rule tree compiled to one SQL query over members and their stats.

A rule is ``{"all": [rule…]}``, ``{"any": [rule…]}``, ``{"not": rule}`` or a condition
``{"field", "op", "value"}`` (plus ``"days"`` for the fields that look back). Fields are listed
in :data:`FIELDS`; other packages add theirs with :func:`register_field` (e.g. ``tier``).
Only live members (not merged away) are ever in a segment.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    extract,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.util import find_tables

from app.common.clock import utcnow
from app.common.phone import mask_phone
from app.db import reads, unit_of_work
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.intel.models import STAGES, MemberStats, Segment, SegmentExport
from app.intel.services import day_start, local_day, rfm_of
from app.members.models import Member

OPS = ("=", "!=", "<", "<=", ">", ">=", "in")
MAX_DEPTH = 8
MAX_CONDITIONS = 50
PREVIEW_LIMIT = 20

# builder(op, value, condition, now) -> SQL boolean over Member / MemberStats
FieldBuilder = Callable[[str, Any, dict, datetime], ColumnElement[bool]]
FIELDS: dict[str, FieldBuilder] = {}


def register_field(name: str, builder: FieldBuilder) -> None:
    """Let a feature (tiers, cards…) offer a segment field without this package importing it."""
    FIELDS[name] = builder


def _bad(path: str, why: str) -> ValidationFailed:
    return ValidationFailed(f"{path}: {why}", code="INVALID_RULE", details={path: [why]})


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "in":
        return column.in_(value)
    return {
        "=": column == value,
        "!=": column != value,
        "<": column < value,
        "<=": column <= value,
        ">": column > value,
        ">=": column >= value,
    }[op]


def _typed(kind: type | tuple[type, ...], check: Callable[[Any], bool] = lambda v: True):
    def validate(op: str, value: Any, path: str) -> None:
        values = value if op == "in" else [value]
        if op == "in" and (not isinstance(value, list) or not 1 <= len(value) <= 1000):
            raise _bad(path, "in: a list of 1 to 1000 values")
        for v in values:
            if (
                (isinstance(v, bool) and kind is not bool)
                or not isinstance(v, kind)
                or not check(v)
            ):
                raise _bad(path, "value of the wrong type or out of range")

    return validate


_INT = _typed(int, lambda v: -(2**62) < v < 2**62)
_STR = _typed(str, lambda v: 0 < len(v) <= 100)
_STAGE = _typed(str, lambda v: v in STAGES)
_SCORE = _typed(int, lambda v: 1 <= v <= 5)
_MONTH = _typed(int, lambda v: 1 <= v <= 12)
_BOOL = _typed(bool)


def _column_field(column: Any, validate: Any) -> tuple[Any, FieldBuilder]:
    return validate, lambda op, value, cond, now: _compare(column, op, value)


def _days_since(op: str, value: Any, cond: dict, now: datetime) -> ColumnElement[bool]:
    """Days between the last purchase's Shanghai day and today's, as cutoff instants."""
    last = MemberStats.last_purchase_at
    today = local_day(now)

    def at_most(n: int) -> ColumnElement[bool]:  # days <= n
        return last >= day_start(today - timedelta(days=n))

    def over(n: int) -> ColumnElement[bool]:  # days > n
        return last < day_start(today - timedelta(days=n))

    if op == "in":
        return or_(*[and_(at_most(v), over(v - 1)) for v in value])
    return {
        "=": lambda: and_(at_most(value), over(value - 1)),
        "!=": lambda: or_(over(value), at_most(value - 1)),
        "<": lambda: at_most(value - 1),
        "<=": lambda: at_most(value),
        ">": lambda: over(value),
        ">=": lambda: over(value - 1),
    }[op]()


def _join_date(op: str, value: Any, cond: dict, now: datetime) -> ColumnElement[bool]:
    joined = MemberStats.joined_at
    days = [date.fromisoformat(v) for v in (value if op == "in" else [value])]
    if op == "in":
        return or_(
            *[and_(joined >= day_start(d), joined < day_start(d + timedelta(1))) for d in days]
        )
    d = days[0]
    start, end = day_start(d), day_start(d + timedelta(days=1))
    return {
        "=": lambda: and_(joined >= start, joined < end),
        "!=": lambda: or_(joined < start, joined >= end),
        "<": lambda: joined < start,
        "<=": lambda: joined < end,
        ">": lambda: joined >= end,
        ">=": lambda: joined >= start,
    }[op]()


def _validate_date(op: str, value: Any, path: str) -> None:
    _STR(op, value, path)
    for v in value if op == "in" else [value]:
        try:
            date.fromisoformat(v)
        except ValueError as exc:
            raise _bad(path, "a date YYYY-MM-DD") from exc


def _tag(op: str, value: Any, cond: dict, now: datetime) -> ColumnElement[bool]:
    from app.tags.models import MemberTag

    values = value if op == "in" else [value]
    has = exists().where(MemberTag.member_id == MemberStats.member_id, MemberTag.tag_id.in_(values))
    return ~has if op == "!=" else has


def _city(op: str, value: Any, cond: dict, now: datetime) -> ColumnElement[bool]:
    from app.stores.models import Store

    values = value if op == "in" else [value]
    inside = exists().where(Store.id == MemberStats.home_store_id, Store.city.in_(values))
    return ~inside if op == "!=" else inside


def _lookback(cond: dict, path: str | None = None) -> int:
    """The days a purchase condition looks back: ``within_days`` (``days``, its older name,
    still read), 1 to 3650, default 30."""
    days = cond.get("within_days", cond.get("days", 30))
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 3650:
        raise _bad(path or "rule", "within_days: 1 to 3650")
    return days


def _bought(cond: dict, now: datetime, line_matches: ColumnElement[bool]) -> ColumnElement[bool]:
    """A till sale of the member within the look-back with a line that ``line_matches``."""
    from app.pos.models import PosSale, PosSaleLine

    return exists().where(
        PosSale.member_id == MemberStats.member_id,
        PosSale.occurred_at >= now - timedelta(days=_lookback(cond)),
        PosSaleLine.sale_pk == PosSale.id,
        line_matches,
    )


def _bought_sku(op: str, value: Any, cond: dict, now: datetime) -> ColumnElement[bool]:
    from app.pos.models import PosSaleLine

    bought = _bought(cond, now, PosSaleLine.sku.in_(value if op == "in" else [value]))
    return ~bought if op == "!=" else bought


def _bought_category(op: str, value: Any, cond: dict, now: datetime) -> ColumnElement[bool]:
    """A line whose SKU is in one of the categories (the SKU catalog's category now)."""
    from app.catalog.models import Sku
    from app.pos.models import PosSaleLine

    in_category = (
        select(Sku.sku).where(Sku.category.in_(value if op == "in" else [value])).scalar_subquery()
    )
    bought = _bought(cond, now, PosSaleLine.sku.in_(in_category))
    return ~bought if op == "!=" else bought


def _unused_coupon(op: str, value: Any, cond: dict, now: datetime) -> ColumnElement[bool]:
    from app.coupons.models import Coupon

    values = value if op == "in" else [value]
    holds = exists().where(
        Coupon.owner_id == MemberStats.member_id,
        Coupon.template_id.in_(values),
        Coupon.state == "available",
        Coupon.expires_at > now,
    )
    return ~holds if op == "!=" else holds


def _opt_in(op: str, value: Any, cond: dict, now: datetime) -> ColumnElement[bool]:
    opted_in = Member.marketing_opt_out.is_(False)
    return opted_in if (value is True) == (op == "=") else ~opted_in


def _tier(op: str, value: Any, cond: dict, now: datetime) -> ColumnElement[bool]:
    """The member's tier now: HQ's override while it lasts, else the earned tier; a member
    never evaluated is on the lowest tier."""
    from sqlalchemy import case

    from app.tiers.ladder import load_ladder
    from app.tiers.models import MemberTier

    ladder = load_ladder()
    lowest = ladder.lowest.code if ladder is not None else None
    t = MemberTier
    code = case(
        (
            t.override_code.is_not(None) & (t.override_until.is_(None) | (t.override_until > now)),
            t.override_code,
        ),
        else_=func.coalesce(t.tier_code, lowest),
    )
    current = func.coalesce(
        select(code).where(t.member_id == MemberStats.member_id).scalar_subquery(), lowest
    )
    return _compare(current, op, value)


_EQ_ONLY = ("=", "!=", "in")
LOOKBACK_FIELDS = ("bought_sku", "bought_category")
SPECS: dict[str, tuple[Any, FieldBuilder, tuple[str, ...]]] = {}


def _spec(name: str, validate: Any, builder: FieldBuilder, ops: tuple[str, ...] = OPS) -> None:
    SPECS[name] = (validate, builder, ops)
    FIELDS[name] = builder


for _name, _column, _validate in (
    ("purchase_count", MemberStats.purchase_count, _INT),
    ("payer_fen_12m", MemberStats.payer_fen_12m, _INT),
    ("payer_fen_total", MemberStats.payer_fen_total, _INT),
    ("purchases_12m", MemberStats.purchases_12m, _INT),
    ("r_score", MemberStats.r_score, _SCORE),
    ("f_score", MemberStats.f_score, _SCORE),
    ("m_score", MemberStats.m_score, _SCORE),
    ("birthday_month", extract("month", Member.birthday), _MONTH),
):
    _spec(_name, _validate, _column_field(_column, _validate)[1])
for _name, _column, _validate in (
    ("lifecycle", MemberStats.lifecycle, _STAGE),
    ("rfm_label", MemberStats.rfm_label, _STR),
    ("store", MemberStats.home_store_id, _INT),
    ("last_store", MemberStats.last_store_id, _INT),
    ("join_store", MemberStats.join_store_id, _INT),
    ("join_channel", MemberStats.join_channel, _STR),
):
    _spec(_name, _validate, _column_field(_column, _validate)[1], _EQ_ONLY)
_spec("tier", _STR, _tier, _EQ_ONLY)
_spec("days_since_last_purchase", _INT, _days_since)
_spec("join_date", _validate_date, _join_date)
_spec("tag_id", _INT, _tag, _EQ_ONLY)
_spec("city", _STR, _city, _EQ_ONLY)
_spec("bought_sku", _STR, _bought_sku, _EQ_ONLY)
_spec("bought_category", _STR, _bought_category, _EQ_ONLY)
_spec("has_unused_coupon", _INT, _unused_coupon, _EQ_ONLY)
_spec("marketing_opt_in", _BOOL, _opt_in, ("=", "!="))


def register_member_filters() -> None:
    """Member search by ``tier`` and ``lifecycle``, through the segment fields of the same name:
    one definition of "on this tier" and "in this stage" for segments and search."""
    from app.members.search import register_member_filter

    def by(field: str) -> Any:
        def apply(stmt: Select, value: str) -> Select:
            rule = {"field": field, "op": "=", "value": value}
            validate_rule(rule, path=field)
            return stmt.where(Member.id.in_(members_query(rule)))

        return apply

    register_member_filter("tier", by("tier"), "on this tier now (its code)")
    register_member_filter("lifecycle", by("lifecycle"), f"in this stage: {', '.join(STAGES)}")


def field_list() -> list[dict[str, Any]]:
    """The condition fields a rule may use, with their operators: what forms offer, so a field
    registered by another package appears there too."""
    return [
        {"name": name, "ops": list(SPECS.get(name, (None, None, OPS))[2])}
        for name in sorted(FIELDS)
    ]


def validate_rule(
    rule: Any, path: str = "rule", depth: int = 0, seen: list[int] | None = None
) -> None:
    """Refuse a malformed rule with the path of what is wrong (before anything is stored)."""
    seen = seen if seen is not None else [0]
    if depth > MAX_DEPTH:
        raise _bad(path, f"nested deeper than {MAX_DEPTH}")
    if not isinstance(rule, dict):
        raise _bad(path, "an object: all, any, not or a condition")
    if "all" in rule or "any" in rule:
        key = "all" if "all" in rule else "any"
        items = rule[key]
        if len(rule) != 1 or not isinstance(items, list) or not items:
            raise _bad(path, f"{key}: a non-empty list, alone in its object")
        for i, item in enumerate(items):
            validate_rule(item, f"{path}.{key}.{i}", depth + 1, seen)
        return
    if "not" in rule:
        if len(rule) != 1:
            raise _bad(path, "not: alone in its object")
        validate_rule(rule["not"], f"{path}.not", depth + 1, seen)
        return
    seen[0] += 1
    if seen[0] > MAX_CONDITIONS:
        raise _bad(path, f"more than {MAX_CONDITIONS} conditions")
    field, op = rule.get("field"), rule.get("op")
    if field not in FIELDS:
        raise _bad(f"{path}.field", f"one of {', '.join(sorted(FIELDS))}")
    validate, _, ops = SPECS.get(field, (None, None, OPS))
    if op not in ops:
        raise _bad(f"{path}.op", f"one of {', '.join(ops)}")
    if "value" not in rule:
        raise _bad(f"{path}.value", "required")
    if validate is not None:
        validate(op, rule["value"], f"{path}.value")
    if field in LOOKBACK_FIELDS:
        _lookback(rule, f"{path}.within_days")


def compile_rule(rule: dict, now: datetime) -> ColumnElement[bool]:
    if "all" in rule:
        return and_(true(), *[compile_rule(r, now) for r in rule["all"]])
    if "any" in rule:
        return or_(false(), *[compile_rule(r, now) for r in rule["any"]])
    if "not" in rule:  # unknown (NULL: no purchase, no score) counts as "not matching"
        return not_(func.coalesce(compile_rule(rule["not"], now), false()))
    return FIELDS[rule["field"]](rule["op"], rule["value"], rule, now)


def members_query(rule: dict, now: datetime | None = None) -> Select:
    """``SELECT members.id`` of the live members the rule selects: one query, driven by the
    stats rows (every live member has one: from joining, a purchase or the nightly job), so
    conditions on stats columns can use their indexes."""
    now = now or utcnow()
    return (
        select(Member.id)
        .select_from(MemberStats)
        .join(Member, Member.id == MemberStats.member_id)
        .where(Member.status == "active", compile_rule(rule, now))
    )


def count_members(rule: dict, now: datetime | None = None) -> int:
    """How many live members the rule selects.

    Conditions on the stats row (stage, scores, money, home store…) and those correlated on
    its member id (tags, purchases, coupons, tier) never read ``members``: the count runs on
    the stats table alone and leaves out the few members no longer live through their partial
    index. Only a condition on a member column (birthday, opt-in) joins ``members``."""
    where = compile_rule(rule, now or utcnow())
    if Member.__table__ in find_tables(where, check_columns=True):
        stmt = (
            select(func.count())
            .select_from(MemberStats)
            .join(Member, Member.id == MemberStats.member_id)
            .where(Member.status == "active", where)
        )
    else:
        gone = select(Member.id).where(Member.status != "active")
        stmt = (
            select(func.count())
            .select_from(MemberStats)
            .where(MemberStats.member_id.not_in(gone), where)
        )
    return int(reads().scalar(stmt) or 0)


def create_segment(name: str, rule: Any, actor: str | None) -> Segment:
    validate_rule(rule)
    with unit_of_work():
        segment = Segment(name=name, rule=rule, created_by=actor)
        db.session.add(segment)
    return segment


def get_segment(segment_id: int) -> Segment:
    segment = db.session.get(Segment, segment_id)
    if segment is None:
        raise NotFound("segment not found", code="SEGMENT_NOT_FOUND")
    return segment


def preview(segment: Segment, limit: int = PREVIEW_LIMIT) -> list[dict[str, Any]]:
    """A few members of the segment, phones masked."""
    ids = members_query(segment.rule).order_by(Member.id).limit(limit)
    rows = (
        reads()
        .execute(
            select(Member, MemberStats)
            .outerjoin(MemberStats, MemberStats.member_id == Member.id)
            .where(Member.id.in_(ids.scalar_subquery()))
            .order_by(Member.id)
        )
        .all()
    )
    return [_member_row(m, s, reveal=False) for m, s in rows]


def preview_rule(rule: Any) -> dict[str, Any]:
    """A rule's member count now and its first members (phones masked), before it is saved."""
    validate_rule(rule)
    return {
        "member_count": count_members(rule),
        "members": preview(Segment(name="preview", rule=rule)),
    }


def _member_row(member: Member, stats: MemberStats | None, *, reveal: bool) -> dict[str, Any]:
    return {
        "member_id": member.id,
        "phone": member.phone if reveal else mask_phone(member.phone),
        "lifecycle": stats.lifecycle if stats else "new",
        "rfm": rfm_of(stats),
        "purchase_count": stats.purchase_count if stats else 0,
        "payer_fen_12m": stats.payer_fen_12m if stats else 0,
        "last_purchase_at": stats.last_purchase_at if stats else None,
        "home_store_id": stats.home_store_id if stats else None,
    }


def request_export(segment_id: int, *, reveal_phones: bool, actor: str | None) -> SegmentExport:
    """Queue a CSV export (the ``intel.segment_export`` job writes it)."""
    from app.jobs.runner import enqueue

    get_segment(segment_id)
    with unit_of_work():
        export = SegmentExport(
            segment_id=segment_id, state="pending", reveal_phones=reveal_phones, requested_by=actor
        )
        db.session.add(export)
    export_id = export.id
    enqueue("intel.segment_export", export_id=export_id)
    return db.session.get(SegmentExport, export_id)  # type: ignore[return-value]


def get_export(segment_id: int, export_id: int) -> SegmentExport:
    export = db.session.get(SegmentExport, export_id)
    if export is None or export.segment_id != segment_id:
        raise NotFound("export not found", code="EXPORT_NOT_FOUND")
    return export


def write_export(export_id: int, *, chunk: int = 5000) -> dict[str, int]:
    """The export job: the segment's members, as CSV, phones masked unless revealed."""
    export = db.session.get(SegmentExport, export_id)
    if export is None or export.state == "done":
        return {"rows": 0}
    segment = get_segment(export.segment_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = [
        "member_id",
        "phone",
        "lifecycle",
        "r",
        "f",
        "m",
        "rfm_label",
        "purchase_count",
        "payer_fen_12m",
        "last_purchase_at",
        "home_store_id",
    ]
    writer.writerow(columns)
    query = members_query(segment.rule).order_by(Member.id)
    count, after = 0, 0
    while True:
        ids = db.session.scalars(query.where(Member.id > after).limit(chunk)).all()
        if not ids:
            break
        after = ids[-1]
        rows = db.session.execute(
            select(Member, MemberStats)
            .outerjoin(MemberStats, MemberStats.member_id == Member.id)
            .where(Member.id.in_(ids))
            .order_by(Member.id)
        ).all()
        for member, stats in rows:
            row = _member_row(member, stats, reveal=export.reveal_phones)
            rfm = row["rfm"] or {}
            last = row["last_purchase_at"]
            writer.writerow(
                [
                    row["member_id"],
                    row["phone"] or "",
                    row["lifecycle"],
                    rfm.get("r", ""),
                    rfm.get("f", ""),
                    rfm.get("m", ""),
                    rfm.get("label", ""),
                    row["purchase_count"],
                    row["payer_fen_12m"],
                    last.isoformat() if last else "",
                    row["home_store_id"] or "",
                ]
            )
            count += 1
    export.content = buffer.getvalue()
    export.row_count = count
    export.state = "done"
    export.finished_at = utcnow()
    db.session.commit()
    return {"rows": count}
