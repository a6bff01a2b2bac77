"""Admin bearer tokens: only a hash is stored; the token is shown once at creation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db


class AdminToken(db.Model):
    __tablename__ = "admin_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # hq_admin | hq_analyst | region_manager | store_manager (app.operators.authz)
    role: Mapped[str] = mapped_column(String(20), default="hq_admin", server_default="hq_admin")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
