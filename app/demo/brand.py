"""The demo brand: something a newcomer can look at right after ``make run``."""

from __future__ import annotations

from sqlalchemy import func, select

from app.demo.coupons import seed_demo_coupon_templates
from app.demo.tags import seed_demo_tags
from app.extensions import db
from app.stores import services as stores
from app.stores.models import Store

DEMO_STORES = [
    ("SH001", "茶语 上海静安店", "上海"),
    ("SH002", "茶语 上海徐汇店", "上海"),
    ("HZ001", "茶语 杭州西湖店", "杭州"),
]
DEMO_CLERK_PASSWORD = "demo-clerk-pass"  # noqa: S105 (a documented demo credential)
DEMO_OPERATOR_PASSWORD = "demo-console-pass"  # noqa: S105 (a documented demo credential)
# console operators, one per role: (username, name, role, stores)
DEMO_OPERATORS = [
    ("hq.admin", "总部管理员", "hq_admin", []),
    ("hq.analyst", "总部分析师", "hq_analyst", []),
    ("region.sh", "上海区域经理", "region_manager", ["SH001", "SH002"]),
    ("store.hz001", "杭州西湖店店长", "store_manager", ["HZ001"]),
]


def seed_demo_brand(*, if_empty: bool = False) -> list[str]:
    """Create the demo brand; returns lines to print (activation codes are shown only here)."""
    if if_empty and db.session.scalar(select(func.count()).select_from(Store)):
        return ["demo: database already has stores; nothing seeded"]
    lines = ["demo brand seeded:"]
    for code, name, city in DEMO_STORES:
        if db.session.scalar(select(Store.id).where(Store.code == code)):
            lines.append(f"  store {code} exists; skipped")
            continue
        stores.create_store(code, name, city)
        terminal, activation = stores.create_terminal(code, f"{code} 收银台 1")
        clerk = stores.create_clerk(
            code, f"clerk.{code.lower()}", DEMO_CLERK_PASSWORD, f"{city}导购"
        )
        lines.append(
            f"  store {code} {name}: terminal {terminal.terminal_id} activation code "
            f"{activation}; clerk {clerk.username} / {DEMO_CLERK_PASSWORD}"
        )
    # Feature packages add their own demo data below (tag catalog, coupon templates, …).
    lines.extend(seed_demo_operators())
    lines.extend(seed_demo_tags())
    lines.extend(seed_demo_coupon_templates())
    return lines


def seed_demo_operators() -> list[str]:
    """One console operator per role (skipped when the username exists)."""
    from app.operators.services import create_operator, find_operator

    lines = []
    for username, name, role, codes in DEMO_OPERATORS:
        if find_operator(username) is None:
            create_operator(username, DEMO_OPERATOR_PASSWORD, name, role, codes)
            lines.append(f"  console operator {username} ({role}) / {DEMO_OPERATOR_PASSWORD}")
    return lines


def console_logins() -> list[str]:
    """What ``make run`` prints: one demo login per role."""
    return [
        f"  {role:<15} {username} / {DEMO_OPERATOR_PASSWORD}"
        + (f"  (stores {', '.join(codes)})" if codes else "")
        for username, _name, role, codes in DEMO_OPERATORS
    ]
