import pytest

from app.db import unit_of_work
from app.errors import Unauthorized
from app.extensions import db
from app.members.services import create_member
from miniprogram_api.auth import issue_member_token, member_from_token


def test_a_member_token_resolves_to_its_member_and_follows_merges():
    with unit_of_work():
        absorbed = create_member(source="test")
        survivor = create_member(source="test", phone="13900000000")
    token = issue_member_token(absorbed.id, "wechat")
    assert member_from_token(token).id == absorbed.id
    absorbed = db.session.get(type(absorbed), absorbed.id)
    absorbed.merged_into_id = survivor.id
    absorbed.status = "merged"
    db.session.commit()
    assert member_from_token(token).id == survivor.id


@pytest.mark.parametrize("token", [None, "", "garbage", "eyJtIjoxfQ.bad.sig"])
def test_missing_or_forged_member_tokens_are_refused(token):
    with pytest.raises(Unauthorized):
        member_from_token(token)


def test_logged_out_tokens_are_forgotten_once_expired_and_refused_until_then():
    from datetime import timedelta

    from app.common.clock import utcnow
    from app.members.jobs import purge_token_revocations
    from app.members.models import MemberTokenRevocation
    from miniprogram_api.auth import revoke_member_token

    with unit_of_work():
        member = create_member(source="test")
    live = issue_member_token(member.id, "wechat")
    revoke_member_token(live, member.id)
    with unit_of_work():
        db.session.add(
            MemberTokenRevocation(
                token_hash="0" * 64,
                member_id=member.id,
                revoked_at=utcnow() - timedelta(days=40),
                expires_at=utcnow() - timedelta(days=1),
            )
        )
    assert purge_token_revocations() == {"purged": 1}
    assert purge_token_revocations() == {"purged": 0}
    assert db.session.get(MemberTokenRevocation, "0" * 64) is None
    with pytest.raises(Unauthorized):  # not yet expired: its revocation is kept
        member_from_token(live)
