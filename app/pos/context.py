"""Who is asking: the terminal and the store it acts for (the only store it may touch)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import text

from app.extensions import db


@dataclass(frozen=True)
class TillContext:
    terminal_id: str
    store_id: int
    store_code: str

    def sale_key(self, sale_id: str) -> str:
        """The sale's id outside this package (purchase external id, hook key)."""
        return f"{self.store_code}:{sale_id}"


def lock_sale_key(store_id: int, sale_id: str) -> None:
    """Serialise everything about one sale id (its sale and its returns) until commit.

    Without it a return and its sale arriving at once in two batches could each miss the
    other, leaving the return parked for ever. PostgreSQL: a transaction advisory lock;
    SQLite already serialises writers.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"pos-sale:{store_id}:{sale_id}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
