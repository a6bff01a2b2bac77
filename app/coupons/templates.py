"""Coupon templates as HQ defines them: kinds, validity, gifting, stock, stores; pause/resume."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select

from app.coupons.errors import invalid, refused, template_not_found
from app.coupons.models import CouponTemplate, CouponTemplateStore
from app.db import unit_of_work
from app.extensions import db
from app.stores.services import get_store_by_code

KIND_FIELDS = {"cash_off": "value_fen", "discount": "percent_off", "gift": "gift_sku"}


def create_template(fields: dict[str, Any], *, created_by: str | None = None) -> CouponTemplate:
    """A new active template. ``fields`` as the admin schema loads them (``store_codes`` too)."""
    fields = dict(fields)
    _check_kind(fields)
    if not fields.get("valid_days") and not fields.get("valid_until"):
        raise invalid("give valid_days or a fixed window", valid_days=["required"])
    if fields.get("valid_from") and fields.get("valid_until"):
        if fields["valid_from"] >= fields["valid_until"]:
            raise invalid("the window ends before it starts", valid_until=["before valid_from"])
    store_codes = fields.pop("store_codes", None) or []
    with unit_of_work():
        template = CouponTemplate(**fields, created_by=created_by, issued_count=0)
        template.status = "active"
        for code in sorted(set(store_codes)):
            template.stores.append(CouponTemplateStore(store_id=get_store_by_code(code).id))
        db.session.add(template)
        db.session.flush()
    return template


# What a coupon gives, where and for how long: once coupons exist, these stay as they were.
TERMS = (
    "kind",
    "value_fen",
    "threshold_fen",
    "percent_off",
    "cap_fen",
    "gift_sku",
    "valid_days",
    "valid_from",
    "valid_until",
    "giftable",
    "regift_allowed",
    "store_codes",
)


def update_template(template_id: int, changes: dict[str, Any]) -> CouponTemplate:
    """Edit a template. Before any coupon is issued every field may change; afterwards only
    what does not change issued coupons (name, stock, per-member limit, points price, welcome):
    changing the terms answers 409 ``TEMPLATE_TERMS_LOCKED`` (create a new template instead).
    """
    with unit_of_work():
        template = lock_template(template_id)
        current = {name: getattr(template, name) for name in KIND_FIELDS.values()}
        current.update(kind=template.kind, cap_fen=template.cap_fen)
        changed_terms = sorted(
            name
            for name in TERMS
            if name in changes
            and (
                changes[name] != [link.store.code for link in template.stores]
                if name == "store_codes"
                else changes[name] != getattr(template, name)
            )
        )
        if changed_terms and template.issued_count > 0:
            raise refused(
                "TEMPLATE_TERMS_LOCKED",
                template_id=template.id,
                issued=template.issued_count,
                fields=changed_terms,
            )
        stock = changes.get("total_stock", template.total_stock)
        if stock is not None and stock < template.issued_count:
            raise invalid("stock below what is already issued", total_stock=["below issued"])
        merged = {**current, **{k: v for k, v in changes.items() if k in current}}
        _check_kind(merged)
        store_codes = changes.pop("store_codes", None)
        for name, value in changes.items():
            setattr(template, name, value)
        if store_codes is not None:
            template.stores = [
                CouponTemplateStore(store_id=get_store_by_code(code).id)
                for code in sorted(set(store_codes))
            ]
        db.session.flush()
    return template


def _check_kind(fields: dict[str, Any]) -> None:
    kind = fields["kind"]
    needed = KIND_FIELDS[kind]
    if fields.get(needed) in (None, ""):
        raise invalid(f"a {kind} template needs {needed}", **{needed: ["required for " + kind]})
    for other_kind, other in KIND_FIELDS.items():
        if other_kind != kind and fields.get(other) not in (None, ""):
            raise invalid(f"{other} is not used by a {kind} template", **{other: ["not allowed"]})
    if kind != "discount" and fields.get("cap_fen") is not None:
        raise invalid("cap_fen applies to discount templates", cap_fen=["not allowed"])


def get_template(template_id: int) -> CouponTemplate:
    template = db.session.get(CouponTemplate, template_id)
    if template is None:
        raise template_not_found(template_id)
    return template


def lock_template(template_id: int) -> CouponTemplate:
    """The template row, locked: issuance from one template is serialised on it.

    ``FOR NO KEY UPDATE``: rows that merely reference the template (gifts) are not blocked."""
    template = db.session.execute(
        select(CouponTemplate)
        .where(CouponTemplate.id == template_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if template is None:
        raise template_not_found(template_id)
    return template


def set_status(template_id: int, status: str) -> CouponTemplate:
    """Pause (no more issuing or exchanging; issued coupons stay usable) or resume."""
    with unit_of_work():
        template = lock_template(template_id)
        template.status = status
    return template


def check_issuable(template: CouponTemplate, now: datetime) -> None:
    if template.status != "active":
        raise refused("TEMPLATE_PAUSED", template_id=template.id)
    if template.valid_until is not None and template.valid_until <= now:
        raise refused("TEMPLATE_ENDED", template_id=template.id)


def validity_for(template: CouponTemplate, issued_at: datetime) -> tuple[datetime, datetime]:
    """``(valid_from, expires_at)`` of a coupon issued at ``issued_at``: ``valid_days`` count
    from when it becomes valid, and never run past a fixed window's end."""
    valid_from = max(template.valid_from or issued_at, issued_at)
    ends = []
    if template.valid_days:
        ends.append(valid_from + timedelta(days=template.valid_days))
    if template.valid_until is not None:
        ends.append(template.valid_until)
    return valid_from, min(ends)


def store_ids(template: CouponTemplate) -> set[int]:
    """Stores where the template's coupons apply; empty means every store."""
    return {link.store_id for link in template.stores}


def applies_at(store_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """:func:`store_ids`' rule in SQL, for a statement joined to ``coupon_templates``: the
    template lists no stores, or lists ``store_id`` (a NULL store: anywhere)."""
    limited_to = select(CouponTemplateStore.template_id).where(
        CouponTemplateStore.template_id == CouponTemplate.id
    )
    return or_(
        store_id.is_(None),
        ~limited_to.exists(),
        limited_to.where(CouponTemplateStore.store_id == store_id).exists(),
    )


def welcome_template() -> CouponTemplate | None:
    """The newest active template flagged ``welcome``, if any."""
    return db.session.execute(
        select(CouponTemplate)
        .where(CouponTemplate.welcome.is_(True), CouponTemplate.status == "active")
        .order_by(CouponTemplate.id.desc())
        .limit(1)
    ).scalar_one_or_none()
