"""A two-store brand with tokens and operators of every role, for the console and scope tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.admin.auth import create_admin_token
from app.db import unit_of_work
from app.members.services import create_member
from app.operators.services import create_operator
from app.stores.services import create_clerk, create_store, create_terminal

PASSWORD = "console-pass-1"


@dataclass
class Scene:
    stores: dict[str, int] = field(default_factory=dict)
    members: dict[str, int] = field(default_factory=dict)  # store code -> member id
    phones: dict[str, str] = field(default_factory=dict)
    clerks: dict[str, int] = field(default_factory=dict)
    terminals: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)  # role -> headers


def build_scene() -> Scene:
    scene = Scene()
    for i, (code, city) in enumerate((("SH001", "上海"), ("BJ001", "北京"), ("BJ002", "北京"))):
        scene.stores[code] = create_store(code, f"{city}{i}号店", city).id
        scene.clerks[code] = create_clerk(code, f"clerk{code.lower()}", PASSWORD, f"导购{i}").id
        scene.terminals[code] = create_terminal(code, f"收银台{i}")[0].terminal_id
        phone = f"1380000{i:04d}"
        with unit_of_work():
            member = create_member(source="pos", phone=phone, store_id=scene.stores[code])
        scene.members[code], scene.phones[code] = member.id, phone
    roles = {
        "hq_admin": (),
        "hq_analyst": (),
        "region_manager": ("BJ001", "BJ002"),
        "store_manager": ("SH001",),
    }
    for role, codes in roles.items():
        token = create_admin_token(f"{role}-token", role, {scene.stores[c] for c in codes})
        scene.tokens[role] = {"Authorization": f"Bearer {token}"}
        create_operator(role.replace("_", "."), PASSWORD, role, role, list(codes))
    return scene
