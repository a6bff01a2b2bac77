"""The demo brand's tag catalog and one SKU rule (a tea-drink chain)."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.tags import catalog, rules
from app.tags.models import TagGroup

DEMO_TAG_GROUPS = [
    ("性别", True, "static", ["女", "男"]),
    ("年龄段", True, "static", ["18岁以下", "18-25岁", "26-35岁", "36岁以上"]),
    ("甜度偏好", True, "static", ["无糖", "少糖", "标准糖"]),
    ("口味偏好", False, "static", ["水果茶", "奶茶", "纯茶", "咖啡"]),
    ("意向", False, "dynamic", ["想办生日会", "团购咨询", "有投诉待跟进"]),
]
DEMO_RULE = ("口味偏好", "水果茶", ["TEA-FRUIT-500", "TEA-FRUIT-700"])


def seed_demo_tags() -> list[str]:
    """Create the demo tag groups that are missing; returns lines to print."""
    created = []
    for name, exclusive, kind, tags in DEMO_TAG_GROUPS:
        if db.session.scalar(select(TagGroup.id).where(TagGroup.name == name)):
            continue
        group = catalog.create_group(name, exclusive=exclusive, tag_names=tags, kind=kind)
        created.append(group.name)
        if name == DEMO_RULE[0]:
            tag = next(t for t in group.tags if t.name == DEMO_RULE[1])
            rules.create_rule(tag.id, DEMO_RULE[2])
    if not created:
        return ["  tag catalog exists; skipped"]
    return [f"  tag groups: {', '.join(created)}; rule: {DEMO_RULE[2]} → {DEMO_RULE[1]}"]
