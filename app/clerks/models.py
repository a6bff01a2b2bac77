"""Clerk sessions, access grants, the access log, notes and new-member attribution."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db
from app.stores.models import Store


class ClerkSession(db.Model):
    """A short-lived bearer token (only its hash is kept), bound to the clerk's store."""

    __tablename__ = "clerk_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    clerk_id: Mapped[int] = mapped_column(ForeignKey("clerks.id"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClerkAccessGrant(db.Model):
    """A lookup with the customer present lets that clerk, in that store, reach the member."""

    __tablename__ = "clerk_access_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    clerk_id: Mapped[int] = mapped_column(ForeignKey("clerks.id"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    via: Mapped[str] = mapped_column(String(16))  # phone | member_code
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ClerkAccessLog(db.Model):
    """Every clerk request for a member: who, from which store, whom, what, when, outcome.

    ``member_id`` is the id the clerk asked for (no foreign key: refused guesses are logged
    too); ``resolved_member_id`` the live member it led to, when one was granted.
    """

    __tablename__ = "clerk_access_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    clerk_id: Mapped[int] = mapped_column(ForeignKey("clerks.id"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    member_id: Mapped[int | None] = mapped_column(Integer, index=True)
    resolved_member_id: Mapped[int | None] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(16))  # lookup | view | tag | note
    outcome: Mapped[str] = mapped_column(String(16))  # granted | ok | denied | not_found
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClerkNote(db.Model):
    """Free text a clerk records about a member (phone numbers in it are masked on entry)."""

    __tablename__ = "clerk_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    clerk_id: Mapped[int] = mapped_column(ForeignKey("clerks.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberAttribution(db.Model):
    """The clerk and store that brought a member in. One per member: the first one wins."""

    __tablename__ = "member_attributions"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    clerk_id: Mapped[int] = mapped_column(ForeignKey("clerks.id"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    attributed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    store: Mapped[Store] = relationship()
