"""Look-ups through the principal's scope, shared by the admin API and the console: each
answers the resource, or the same 404 as for one that does not exist."""

from __future__ import annotations

from app.clerks.auth import get_clerk
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
