"""The one authorization layer of HQ: the admin API and the console both ask it.

A :class:`Principal` is whoever makes the request: an admin API token or a console operator.
Its role fixes what it may do, its store scope where:

| role | stores | writes | full phones |
|---|---|---|---|
| ``hq_admin`` | every store | everything | yes |
| ``hq_analyst`` | every store | none (read-only) | no (masked) |
| ``region_manager`` | its stores | in its stores | no (masked) |
| ``store_manager`` | its store | in its store | no (masked) |

Endpoints that do not filter by store are HQ-only: reading them needs a role that sees every
store, changing anything through them needs ``hq_admin`` (:func:`check_hq`). Scope-aware
endpoints call :func:`require_store`, :func:`require_member`, :func:`store_clause` and
:func:`member_clause` instead. Something outside a principal's scope answers 404, as if it
did not exist: a scoped principal learns nothing about other stores.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import g, request
from sqlalchemy import ColumnElement, or_, select, true

from app.common.phone import mask_phone
from app.errors import Forbidden, NotFound
from app.extensions import db
from app.operators.models import ROLES

HQ_ROLES = frozenset({"hq_admin", "hq_analyst"})
WRITE_ROLES = frozenset({"hq_admin", "region_manager", "store_manager"})
PHONE_ROLES = frozenset({"hq_admin"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    actor: str  # "token:<name>" or "operator:<username>": what the audit records
    name: str  # what services record as the admin's name
    role: str
    store_ids: frozenset[int] | None  # None: every store

    @property
    def hq(self) -> bool:
        return self.store_ids is None

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES

    @property
    def sees_phones(self) -> bool:
        return self.role in PHONE_ROLES

    def covers(self, store_id: int | None) -> bool:
        return self.store_ids is None or (store_id is not None and store_id in self.store_ids)


def make_principal(actor: str, name: str, role: str, store_ids: set[int] | None) -> Principal:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    scoped = role not in HQ_ROLES
    return Principal(actor, name, role, frozenset(store_ids or ()) if scoped else None)


def enter(principal: Principal) -> Principal:
    """Make ``principal`` the request's: every check below reads it."""
    g.principal = principal
    return principal


def current() -> Principal:
    principal = g.get("principal")
    if principal is None:
        raise RuntimeError("no principal: the caller is not authenticated")
    return principal


def current_or_none() -> Principal | None:
    try:
        return g.get("principal")
    except RuntimeError:  # outside an app context: CLI or a job
        return None


# --- checks ---------------------------------------------------------------------------------


def check_hq(method: str | None = None) -> Principal:
    """For endpoints that do not filter by store: HQ roles read, ``hq_admin`` writes."""
    principal = current()
    method = method or request.method
    if not principal.hq:
        raise Forbidden("this needs an HQ role", code="ROLE_NOT_ALLOWED")
    if method not in READ_METHODS and principal.role != "hq_admin":
        raise Forbidden("this role is read-only here", code="ROLE_NOT_ALLOWED")
    return principal


def check_write() -> Principal:
    principal = current()
    if not principal.can_write:
        raise Forbidden("this role is read-only", code="ROLE_NOT_ALLOWED")
    return principal


def check_hq_admin() -> Principal:
    principal = current()
    if principal.role != "hq_admin":
        raise Forbidden("this needs the HQ admin role", code="ROLE_NOT_ALLOWED")
    return principal


def require_store(store_id: int | None, *, write: bool = False, code: str = "NOT_FOUND") -> None:
    """404 (with the resource's own not-found ``code``) outside the scope; 403 on a write
    by a read-only role."""
    principal = current()
    if not principal.covers(store_id):
        raise NotFound("not found", code=code)
    if write and not principal.can_write:
        raise Forbidden("this role is read-only", code="ROLE_NOT_ALLOWED")


def store_clause(column: ColumnElement) -> ColumnElement[bool]:
    """A WHERE clause keeping rows whose store ``column`` is in scope."""
    principal = current()
    if principal.store_ids is None:
        return true()
    return column.in_(sorted(principal.store_ids))


def member_clause(member_id_column: ColumnElement) -> ColumnElement[bool]:
    """Members in scope: joined at one of the stores, or bought at one of them."""
    from app.members.models import Member
    from app.points.models import Purchase

    principal = current()
    if principal.store_ids is None:
        return true()
    stores = sorted(principal.store_ids)
    joined = select(Member.id).where(Member.join_store_id.in_(stores))
    bought = select(Purchase.member_id).where(Purchase.store_id.in_(stores))
    return or_(member_id_column.in_(joined), member_id_column.in_(bought))


def member_visible(member_id: int) -> bool:
    from app.members.models import Member

    found = db.session.execute(
        select(Member.id).where(Member.id == member_id, member_clause(Member.id))
    ).first()
    return found is not None


def principal_sees_member(member_id: int) -> bool:
    return current().hq or member_visible(member_id)


def require_member(member_id: int, *, write: bool = False) -> None:
    """404 MEMBER_NOT_FOUND for a member outside the scope; 403 on a write by a read-only role."""
    principal = current()
    if not principal.hq and not member_visible(member_id):
        raise NotFound("member not found", code="MEMBER_NOT_FOUND")
    if write and not principal.can_write:
        raise Forbidden("this role is read-only", code="ROLE_NOT_ALLOWED")


def require_phone_search() -> None:
    if not current().hq:
        raise Forbidden("searching by phone needs an HQ role", code="ROLE_NOT_ALLOWED")


def check_phones() -> Principal:
    """For what carries full phones (a revealed export): roles that see phones only."""
    principal = current()
    if not principal.sees_phones:
        raise Forbidden("full phones need the HQ admin role", code="ROLE_NOT_ALLOWED")
    return principal


def shown_phone(phone: str | None) -> str | None:
    """The phone as the current principal may see it: whole for ``hq_admin``, else masked.
    Outside a request (CLI, jobs) nothing is masked."""
    principal = current_or_none()
    if principal is None or principal.sees_phones:
        return phone
    return mask_phone(phone)


def principal_for_token(token: object) -> Principal:
    """An admin API token's principal: its role, and its stores when the role is scoped."""
    from app.operators.models import AdminTokenStore

    role = getattr(token, "role", None) or "hq_admin"
    stores = None
    if role not in HQ_ROLES:
        stores = set(
            db.session.scalars(
                select(AdminTokenStore.store_id).where(AdminTokenStore.token_id == token.id)  # type: ignore[attr-defined]
            )
        )
    name = token.name  # type: ignore[attr-defined]
    return make_principal(f"token:{name}", name, role, stores)
