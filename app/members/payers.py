"""Pay-as-membership: the member behind a payer's identities, created when the payer is new."""

from __future__ import annotations

from flask import current_app
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.members.models import Member
from app.members.services import (
    add_identity,
    create_member,
    find_by_identity,
)


def _find_holders(identities: list[tuple[str, str, str]], *, lock: bool) -> list[Member | None]:
    """The live member holding each identity (None where nobody does), in order."""
    return [
        find_by_identity(kind, external_id, app, lock=lock) for kind, app, external_id in identities
    ]


def member_for_identities(
    identities: list[tuple[str, str, str]],
    *,
    source: str,
    store_id: int | None = None,
    lock: bool = False,
) -> Member:
    """Pay-as-membership: the live member holding any of ``identities``, created if none does.

    ``identities`` are ``(kind, app, external_id)``, e.g. ``("wechat_openid", appid, openid)``
    or ``("alipay_user_id", "", "2088…")``. Identities the member lacks are added. Safe under
    concurrency: a racing creation loses on the unique constraint inside a savepoint and then
    finds the winner's member. Runs inside the caller's transaction; never commits. ``lock``:
    an existing member comes back share-locked (:func:`lock_live_member`), found and locked in
    one query; a member created here is the transaction's own row already.
    """
    if not identities:
        raise ValueError("at least one identity is needed")
    for _ in range(3):
        found = _find_holders(identities, lock=lock)
        holders: list[Member] = []
        for holder in found:
            if holder is not None and all(holder.id != h.id for h in holders):
                holders.append(holder)
        if not holders:
            try:
                with db.session.begin_nested():
                    return create_member(source=source, identities=identities, store_id=store_id)
            except IntegrityError:
                continue  # another request created it first: find it on the next pass
        member = holders[0]
        for (kind, app, external_id), holder in zip(identities, found, strict=True):
            if holder is None:
                try:
                    with db.session.begin_nested():
                        add_identity(member, kind, external_id, app)
                except IntegrityError:
                    pass  # added concurrently; whoever holds it now keeps it
        return member
    raise RuntimeError("could not settle the member for a payer identity")


def member_for_payer(
    kind: str, external_id: str, *, source: str, store_id: int | None = None
) -> Member:
    """Pay-as-membership for one payer identity (e.g. a POS sale paid by WeChat or Alipay).

    ``kind`` is ``wechat_openid`` (of the configured mini-program/pay appid), ``alipay_open_id``
    (of the configured Alipay app), ``alipay_user_id``, ``wechat_unionid`` or ``pos_card``.
    Returns the live member, share-locked for the caller's transaction (see
    :func:`lock_live_member`), created when the payer is new.
    """
    config = current_app.config
    app = {
        "wechat_openid": config.get("WECHAT_APPID"),
        "alipay_open_id": config.get("ALIPAY_APP_ID"),
    }
    return member_for_identities(
        [(kind, app.get(kind) or "", external_id)], source=source, store_id=store_id, lock=True
    )
