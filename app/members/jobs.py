"""Member housekeeping jobs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from app.common.clock import utcnow
from app.db import transaction
from app.extensions import db
from app.members.models import MemberTokenRevocation


def purge_token_revocations(now: datetime | None = None) -> dict[str, int]:
    """Forget logged-out member tokens that have expired anyway (a token past its expiry is
    refused by its signature's age, so its revocation row only takes space). Safe to run twice."""
    moment = now or utcnow()

    def purge() -> int:
        result = db.session.execute(
            delete(MemberTokenRevocation)
            .where(MemberTokenRevocation.expires_at <= moment)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)

    return {"purged": transaction(purge)}
