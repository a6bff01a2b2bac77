"""Operators (console accounts), their sessions and store scopes, and the write audit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db

ROLES = ("hq_admin", "hq_analyst", "region_manager", "store_manager")


class Operator(db.Model):
    """A person who logs in to the console. ``role`` fixes what they may do, the stores linked
    in ``operator_stores`` where (region and store managers only; HQ roles see every store)."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    locale: Mapped[str] = mapped_column(String(10), default="zh_Hans_CN")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    stores: Mapped[list[OperatorStore]] = relationship(cascade="all, delete-orphan")


class OperatorStore(db.Model):
    __tablename__ = "operator_stores"

    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), primary_key=True)


class OperatorSession(db.Model):
    """A console login. The cookie carries the token; only its hash is kept here."""

    __tablename__ = "operator_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AdminTokenStore(db.Model):
    """A store an admin API token may act on (tokens with a store-scoped role only)."""

    __tablename__ = "admin_token_stores"

    token_id: Mapped[int] = mapped_column(ForeignKey("admin_tokens.id"), primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), primary_key=True)


class WriteAudit(db.Model):
    """Every write through the admin API or the console: who, what, when and from where."""

    __tablename__ = "write_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))  # "operator:alice" | "token:ops-script"
    role: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(255))
    endpoint: Mapped[str | None] = mapped_column(String(100))
    target: Mapped[dict] = mapped_column(JSON, default=dict)  # the URL's ids
    status: Mapped[int] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
