"""SKU catalog entries: the SKU code tills send on sale lines, its name and its category."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.common.clock import utcnow
from app.db import UTCDateTime
from app.extensions import db

SKU_LENGTH = 64  # as on POS sale lines and SKU tag rules
CATEGORY_LENGTH = 64


class Sku(db.Model):
    """One SKU of the brand. ``sku`` is the code tills send (``pos_sale_lines.sku``)."""

    __tablename__ = "skus"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(SKU_LENGTH), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    category: Mapped[str | None] = mapped_column(String(CATEGORY_LENGTH), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
