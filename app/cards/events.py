"""WeChat card events pushed to the server URL: a member deleting the card, or taking it again.

WeChat signs the push with the account's server Token (``WECHAT_SERVER_TOKEN``):
``signature = sha1(sorted(token, timestamp, nonce))``; wechatpy checks it and parses the XML
(plaintext or compatible mode). ``user_del_card`` marks the card ``deleted`` (no more syncs;
the member can ask for it again); ``user_get_card`` for a card code we issued marks it active.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.cards.models import MemberCard
from app.common.clock import utcnow
from app.db import unit_of_work
from app.extensions import db

log = logging.getLogger(__name__)


def card_event(event: str, card_id: str, code: str) -> bool:
    """Apply one card event; True when a card of ours changed. Replays change nothing."""
    with unit_of_work():
        card = db.session.scalar(
            select(MemberCard)
            .where(
                MemberCard.platform == "wechat",
                MemberCard.card_no == code,
                MemberCard.template_id == card_id,
            )
            .with_for_update()
        )
        if card is None:
            return False
        if event == "user_del_card" and card.state in ("opening", "active"):
            card.state, card.updated_at = "deleted", utcnow()
            log.info("member %s deleted WeChat card %s", card.member_id, card.id)
            return True
        if event == "user_get_card" and card.state == "deleted":
            card.state, card.updated_at = "opening", utcnow()
            from app.cards.services import open_cards

            open_cards([card.member_id], ["wechat"])  # activate again with the current balance
            return True
    return False
