"""Member cards: which platforms issue them, opening a card, queueing a sync on every change.

Everything here runs inside the caller's transaction and only writes rows: the card and an
outbox delivery (channels ``wechat_card`` / ``alipay_card``). The dispatcher talks to the
platform after commit (:mod:`app.cards.channels`). Each change gets its own delivery, keyed by
the change (a ledger entry's key, a tier change), so a replayed event adds nothing; and each
delivery sends the member's *current* points as the absolute value (WeChat ``bonus``, Alipay
``point``), so retries and out-of-order deliveries converge on the right balance.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.cards.models import MemberCard
from app.common.clock import utcnow
from app.errors import NotFound, ServiceUnavailable
from app.extensions import db
from app.members.models import MemberIdentity
from app.outbox.services import enqueue_message
from app.platforms.settings import is_enabled

CHANNELS = {"wechat": "wechat_card", "alipay": "alipay_card"}
LIVE_STATES = ("opening", "active")


def card_platforms() -> list[str]:
    """The platforms issuing cards: listed in ``MEMBER_CARDS``, with their template and API."""
    config = current_app.config
    listed = {p.strip() for p in (config.get("MEMBER_CARDS") or "").split(",") if p.strip()}
    found = []
    if "wechat" in listed and config.get("WECHAT_CARD_ID") and is_enabled("wechat_miniprogram"):
        found.append("wechat")
    if "alipay" in listed and config.get("ALIPAY_CARD_TEMPLATE_ID") and is_enabled("alipay"):
        found.append("alipay")
    return found


def _template(platform: str) -> str:
    config = current_app.config
    return config["WECHAT_CARD_ID"] if platform == "wechat" else config["ALIPAY_CARD_TEMPLATE_ID"]


def _new_card_no() -> str:
    return "8" + "".join(secrets.choice("0123456789") for _ in range(15))  # 16 digits


def open_cards(
    member_ids: Iterable[int], platforms: Iterable[str] | None = None
) -> list[MemberCard]:
    """A card per member per platform (created ``opening``, its activation queued); a member
    who already has one keeps it, and a deleted one is opened again. Returns the cards."""
    wanted = list(platforms) if platforms is not None else card_platforms()
    cards = []
    for member_id in sorted(set(member_ids)):
        for platform in wanted:
            card = _card_of(member_id, platform)
            if card is None:
                card = MemberCard(
                    member_id=member_id,
                    platform=platform,
                    card_no=_new_card_no(),
                    template_id=_template(platform),
                    state="opening",
                    updated_at=utcnow(),
                )
                try:
                    with db.session.begin_nested():
                        db.session.add(card)
                except IntegrityError:  # opened concurrently (or a card number collision)
                    card = _card_of(member_id, platform)
                    if card is None:
                        raise
            elif card.state == "deleted":
                card.state, card.updated_at = "opening", utcnow()
            if card.state == "opening":
                _enqueue(
                    card,
                    "card_open",
                    {},
                    f"card-open:{card.id}:{int(card.updated_at.timestamp() * 1_000_000)}",
                )
            cards.append(card)
    return cards


PLATFORM_IDENTITIES = {
    "wechat": ("wechat_openid", "wechat_unionid"),
    "alipay": ("alipay_user_id",),
}


def reachable_platforms(member_ids: list[int]) -> dict[int, set[str]]:
    """``{member_id: {"wechat", "alipay"}}``: the wallets each member can be given a card in."""
    kinds = {kind: platform for platform, ks in PLATFORM_IDENTITIES.items() for kind in ks}
    found: dict[int, set[str]] = {}
    rows = db.session.execute(
        select(MemberIdentity.member_id, MemberIdentity.kind).where(
            MemberIdentity.member_id.in_(member_ids), MemberIdentity.kind.in_(list(kinds))
        )
    )
    for member_id, kind in rows:
        found.setdefault(member_id, set()).add(kinds[kind])
    return found


def _card_of(member_id: int, platform: str) -> MemberCard | None:
    return db.session.scalar(
        select(MemberCard).where(MemberCard.member_id == member_id, MemberCard.platform == platform)
    )


def live_cards(member_ids: Iterable[int]) -> list[MemberCard]:
    ids = sorted(set(member_ids))
    if not ids:
        return []
    return list(
        db.session.scalars(
            select(MemberCard)
            .where(MemberCard.member_id.in_(ids), MemberCard.state.in_(LIVE_STATES))
            .order_by(MemberCard.id)
        )
    )


def queue_sync(changes: Iterable[tuple[int, str, int, str]]) -> int:
    """``(member_id, change_key, points_delta, record)`` → one sync per live card per change."""
    changes = list(changes)
    cards_by_member: dict[int, list[MemberCard]] = {}
    for card in live_cards(c[0] for c in changes):
        cards_by_member.setdefault(card.member_id, []).append(card)
    written = 0
    for member_id, key, delta, record in changes:
        for card in cards_by_member.get(member_id, []):
            payload = {"add_bonus": delta, "record": record[:14]}
            _enqueue(card, "card_sync", payload, f"card-sync:{card.id}:{key}")
            written += 1
    return written


def _enqueue(card: MemberCard, kind: str, payload: dict, key: str) -> None:
    enqueue_message(
        card.member_id,
        kind,
        {"card": card.id, **payload},
        dedupe_key=key[:160],
        channel=CHANNELS[card.platform],
    )


def set_level(member_ids: Iterable[int], level: str) -> list[MemberCard]:
    cards = live_cards(member_ids)
    for card in cards:
        card.level, card.updated_at = level, utcnow()
    return cards


def cards_for(member_id: int) -> list[MemberCard]:
    return list(
        db.session.scalars(
            select(MemberCard).where(MemberCard.member_id == member_id).order_by(MemberCard.id)
        )
    )


def request_card(member_id: int, platform: str) -> MemberCard:
    """A member asks for a card on one platform (the mini-program's "add to wallet")."""
    if platform not in card_platforms():
        if platform not in CHANNELS:
            raise NotFound(f"no card platform {platform!r}", code="CARD_PLATFORM_UNKNOWN")
        raise ServiceUnavailable(f"{platform} member cards are not enabled", code="CARDS_DISABLED")
    existing = _card_of(member_id, platform)
    if existing is not None and existing.state == "opening":
        existing.updated_at = utcnow()  # asked again: a new opening delivery, not the old one
    return open_cards([member_id], [platform])[0]


def on_merge(absorbed_id: int, survivor_id: int) -> None:
    """Merge step: the survivor keeps its card; the absorbed member's card moves to the
    survivor when it has none on that platform, or is retired (made unavailable) otherwise.
    Then the survivor's cards are synced with the merged balance."""
    for card in db.session.scalars(
        select(MemberCard).where(MemberCard.member_id == absorbed_id)
    ).all():
        if card.state not in LIVE_STATES:
            continue
        if _card_of(survivor_id, card.platform) is None:
            card.member_id, card.updated_at = survivor_id, utcnow()
            db.session.flush()
        else:
            card.state, card.updated_at = "retired", utcnow()
            _enqueue(card, "card_retire", {}, f"card-retire:{card.id}")
    db.session.flush()
    queue_sync([(survivor_id, f"merge:{absorbed_id}", 0, "会员合并")])
