"""Look-ups through the principal's scope, shared by the admin API and the console: each
answers the resource, or the same 404 as for one that does not exist."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.clerks.auth import get_clerk
from app.common.pagination import paginate
from app.members.models import Member
from app.members.services import get_member
from app.operators import authz
from app.stores.models import Clerk, Store, Terminal
from app.stores.services import get_store_by_code, get_terminal


def scoped_store(code: str, *, write: bool = False) -> Store:
    store = get_store_by_code(code)
    authz.require_store(store.id, write=write, code="STORE_NOT_FOUND")
    return store


def scoped_terminal(terminal_id: str, *, write: bool = False) -> Terminal:
    terminal = get_terminal(terminal_id)
    authz.require_store(terminal.store_id, write=write, code="TERMINAL_NOT_FOUND")
    return terminal


def scoped_clerk(clerk_id: int, *, write: bool = False) -> Clerk:
    clerk = get_clerk(clerk_id)
    authz.require_store(clerk.store_id, write=write, code="CLERK_NOT_FOUND")
    return clerk


def scoped_member(member_id: int, *, write: bool = False) -> Member:
    member = get_member(member_id)
    authz.require_member(member.id, write=write)
    return member


def store_listing(model: Any, query: dict[str, Any]) -> dict[str, Any]:
    """One page of ``model`` rows (terminals, clerks) in the principal's stores, filtered by
    ``query["store"]`` (a code, 404 outside the scope) and ``query["status"]``."""
    stmt = select(model).where(authz.store_clause(model.store_id))
    if query.get("store"):
        stmt = stmt.where(model.store_id == scoped_store(query["store"]).id)
    if query.get("status"):
        stmt = stmt.where(model.status == query["status"])
    items, cursor = paginate(
        stmt, model.id, limit=query["limit"], cursor=query["cursor"], newest_first=False
    )
    return {"items": items, "next_cursor": cursor}
