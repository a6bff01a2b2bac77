"""SKU tag rules: "buying SKU X (or any of a list) applies tag T", applied when sales arrive."""

from __future__ import annotations

from sqlalchemy import select

from app.common.clock import utcnow
from app.db import among, unit_of_work
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.members.services import resolve_member
from app.tags.catalog import get_tag
from app.tags.models import Tag, TagGroup, TagRule, TagRuleApplication, TagRuleSku
from app.tags.services import Actor, change_member_tags, lock_member_tags, member_tags


def create_rule(tag_id: int, skus: list[str]) -> TagRule:
    cleaned = sorted({sku.strip() for sku in skus if sku.strip()})
    if not cleaned:
        raise ValidationFailed("at least one SKU", code="NO_SKUS", details={"skus": ["empty"]})
    with unit_of_work():
        tag = get_tag(tag_id)
        if not tag.applicable:
            raise Conflict("archived tags cannot be applied", code="TAG_ARCHIVED")
        rule = TagRule(tag_id=tag.id)
        db.session.add(rule)
        db.session.flush()
        db.session.add_all(TagRuleSku(rule_id=rule.id, sku=sku) for sku in cleaned)
        db.session.flush()
        db.session.refresh(rule)
    return rule


def archive_rule(rule_id: int) -> TagRule:
    with unit_of_work():
        rule = db.session.get(TagRule, rule_id)
        if rule is None:
            raise NotFound("tag rule not found", code="TAG_RULE_NOT_FOUND")
        rule.archived_at = rule.archived_at or utcnow()
    return rule


def _rules_for_skus(skus: list[str]) -> list[TagRule]:
    return list(
        db.session.scalars(
            select(TagRule)
            .join(TagRuleSku, TagRuleSku.rule_id == TagRule.id)
            .join(Tag, Tag.id == TagRule.tag_id)
            .join(TagGroup, TagGroup.id == Tag.group_id)
            .where(
                among(TagRuleSku.sku, set(skus)),
                TagRule.archived_at.is_(None),
                Tag.archived_at.is_(None),
                TagGroup.archived_at.is_(None),
            )
            .distinct()
            .order_by(TagRule.id)
        )
    )


def apply_tag_rules_for_sale(
    member_id: int, store_id: int, skus: list[str], sale_key: str
) -> list[int]:
    """Apply every live rule the sale's SKUs meet; returns the ids of the tags it added.

    Called by the POS event handler inside its own unit of work (never commits). Each
    (rule, sale) is applied once: a replayed sale returns the first call's result and changes
    nothing. Changes are recorded with source ``rule``, the store and the sale key.
    """
    if not skus:
        return []
    rules = _rules_for_skus(skus)
    if not rules:  # nothing to apply: no lock, no writes
        return []
    member_id = resolve_member(member_id).id
    lock_member_tags(member_id)
    done = {
        a.rule_id: a
        for a in db.session.scalars(
            select(TagRuleApplication).where(TagRuleApplication.sale_key == sale_key)
        )
    }
    actor = Actor(source="rule", store_id=store_id, sale_key=sale_key)
    for rule in rules:
        if rule.id in done:
            continue
        held = {mt.tag_id for mt in member_tags(member_id)}
        added = rule.tag_id not in held
        if added:
            change_member_tags(member_id, add=[rule.tag_id], remove=[], actor=actor)
        application = TagRuleApplication(
            rule_id=rule.id,
            sale_key=sale_key,
            member_id=member_id,
            tag_id=rule.tag_id,
            added=added,
            created_at=utcnow(),
        )
        db.session.add(application)
        done[rule.id] = application
    db.session.flush()
    return sorted({a.tag_id for a in done.values() if a.added})


def apply_tag_rules_for_sales(sales: list[tuple[int, int, list[str], str]]) -> None:
    """``apply_tag_rules_for_sale`` for many sales ``(member_id, store_id, skus, sale_key)``.

    One query finds the SKUs any live rule names; only sales buying one of them go on to the
    per-sale rule (members in id order, so concurrent batches lock them in the same order).
    """
    all_skus = {sku for _, _, skus, _ in sales for sku in skus}
    if not all_skus:
        return
    ruled = set(
        db.session.scalars(
            select(TagRuleSku.sku)
            .join(TagRule, TagRule.id == TagRuleSku.rule_id)
            .join(Tag, Tag.id == TagRule.tag_id)
            .join(TagGroup, TagGroup.id == Tag.group_id)
            .where(
                among(TagRuleSku.sku, all_skus),
                TagRule.archived_at.is_(None),
                Tag.archived_at.is_(None),
                TagGroup.archived_at.is_(None),
            )
        )
    )
    wanted = [s for s in sales if ruled.intersection(s[2])]
    for member_id, store_id, skus, sale_key in sorted(wanted, key=lambda s: s[0]):
        apply_tag_rules_for_sale(member_id, store_id, skus, sale_key)
