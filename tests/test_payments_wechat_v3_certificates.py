"""WeChat Pay API v3 in certificate mode, and in the migration to the public key (mixed serials).

Notifications are signed as WeChat signs them, with keys generated here; platform certificates
are downloaded by wechatpayv3's own client from the local WeChat Pay stand-in.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import pytest

from app.demo.notifications import wechat_v3_notify, wechat_v3_transaction
from app.extensions import redis_store
from app.platforms import wechatpay_certs
from app.platforms.keys import generate_certificate_pem, generate_rsa_pem
from app.platforms.wechatpay_standin import WeChatPayStandIn
from tests import platform_kit
from tests.payment_asserts import counts
from tests.platform_kit import (
    API_V3_KEY,
    APPID,
    MCH_ID,
    PUB_KEY_ID,
    keys,
    other_private,
    platform_config,
    wechatpay_private,
)

standins = platform_kit.standins  # fixture

PATH = "/payments/wechat/v3/notify"
CERT_SERIAL = 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1
NEW_SERIAL = 0x6A2B11C0FFEE00112233445566778899AABBCCDD


@lru_cache(maxsize=1)
def cert_keys() -> dict[str, tuple[str, str]]:
    """The platform certificates' keys (old, rotated) and the merchant's API key."""
    return {name: generate_rsa_pem() for name in ("cert", "rotated", "merchant")}


def certificate(name: str = "cert", serial: int = CERT_SERIAL, **kw) -> str:
    return generate_certificate_pem(cert_keys()[name][0], serial, **kw)


def serial_hex(serial: int) -> str:
    return format(serial, "X")


def notify(txn: str, *, serial: str, key: str, total: int = 1000):
    resource = wechat_v3_transaction(
        appid=APPID, mchid=MCH_ID, transaction_id=txn, openid="oCERTPAYER", total=total, store=None
    )
    return wechat_v3_notify(
        resource=resource,
        event_type="TRANSACTION.SUCCESS",
        platform_private_pem=key,
        serial=serial,
        api_v3_key=API_V3_KEY,
    )


def v3_settings(wechat, alipay, **overrides):
    config = platform_config(wechat.url, alipay.url)
    config.update(WECHAT_PAY_PUBLIC_KEY=None, WECHAT_PAY_PUBLIC_KEY_ID=None)
    config.update(overrides)
    return config


@pytest.fixture
def paystandin():
    standin = WeChatPayStandIn(MCH_ID, cert_keys()["merchant"][1], API_V3_KEY).start()
    yield standin
    standin.stop()


def post(app, headers, body):
    with app.app_context():
        return app.test_client().post(PATH, data=body, headers=headers)


def test_a_certificate_mode_merchant_verifies_by_the_configured_certificate(make_app, standins):
    wechat, alipay = standins
    app = make_app(**v3_settings(wechat, alipay, WECHAT_PAY_PLATFORM_CERTS=certificate()))
    ok = post(
        app,
        *notify(
            "4200000000000000000000000001",
            serial=serial_hex(CERT_SERIAL),
            key=cert_keys()["cert"][0],
        ),
    )
    assert ok.status_code == 204, ok.data
    # lower-case serials name the same certificate
    lower = post(
        app,
        *notify(
            "4200000000000000000000000002",
            serial=serial_hex(CERT_SERIAL).lower(),
            key=cert_keys()["cert"][0],
        ),
    )
    assert lower.status_code == 204
    # a public-key serial is unknown to a certificate-only merchant
    pub = post(
        app, *notify("4200000000000000000000000003", serial=PUB_KEY_ID, key=wechatpay_private())
    )
    assert pub.status_code == 401 and pub.get_json() == {"code": "FAIL", "message": "失败"}
    # the right serial with another key's signature
    forged = post(
        app,
        *notify(
            "4200000000000000000000000004", serial=serial_hex(CERT_SERIAL), key=other_private()
        ),
    )
    assert forged.status_code == 401
    assert counts()["purchases"] == 2


def test_certificates_are_downloaded_through_the_configured_base_url(
    make_app, standins, paystandin
):
    wechat, alipay = standins
    paystandin.certificates = [certificate()]
    app = make_app(
        **v3_settings(
            wechat,
            alipay,
            WECHAT_PAY_MCH_PRIVATE_KEY=cert_keys()["merchant"][0],
            WECHAT_PAY_MCH_CERT_SERIAL="3775B6A45ACD588826D15E583A95F5DD00000000",
            WECHAT_PAY_API_BASE_URL=paystandin.url,
        )
    )
    for n in range(3):
        response = post(
            app,
            *notify(
                f"42000000000000000000000001{n}",
                serial=serial_hex(CERT_SERIAL),
                key=cert_keys()["cert"][0],
            ),
        )
        assert response.status_code == 204, response.data
    assert paystandin.downloads == 1  # the first unknown serial fetched the list; then cached
    assert counts()["purchases"] == 3


def test_forged_serials_cannot_make_us_download_more_than_once_a_minute(
    make_app, standins, paystandin
):
    wechat, alipay = standins
    paystandin.certificates = [certificate()]
    app = make_app(
        **v3_settings(
            wechat,
            alipay,
            WECHAT_PAY_MCH_PRIVATE_KEY=cert_keys()["merchant"][0],
            WECHAT_PAY_MCH_CERT_SERIAL="3775B6A45ACD588826D15E583A95F5DD00000000",
            WECHAT_PAY_API_BASE_URL=paystandin.url,
        )
    )
    for n in range(5):
        forged = format(0xDEAD0000 + n, "X")
        response = post(
            app, *notify(f"42000000000000000000000002{n}", serial=forged, key=other_private())
        )
        assert response.status_code == 401
        assert response.get_json() == {"code": "FAIL", "message": "失败"}
    assert paystandin.downloads == 1
    assert counts()["purchases"] == 0


def test_certificates_are_refreshed_before_they_expire(make_app, standins, paystandin):
    wechat, alipay = standins
    soon = datetime.now(UTC) - timedelta(days=1800)  # valid, but expires in about 24 days
    paystandin.certificates = [certificate(days=1825, not_before=soon)]
    app = make_app(
        **v3_settings(
            wechat,
            alipay,
            WECHAT_PAY_MCH_PRIVATE_KEY=cert_keys()["merchant"][0],
            WECHAT_PAY_MCH_CERT_SERIAL="3775B6A45ACD588826D15E583A95F5DD00000000",
            WECHAT_PAY_API_BASE_URL=paystandin.url,
        )
    )
    with app.app_context():
        assert wechatpay_certs.refresh_certificates_job() == {"downloaded": 1}
        assert wechatpay_certs.refresh_due()  # the only certificate expires within 30 days
        # WeChat rotates with overlap: the new certificate is listed beside the old one
        paystandin.certificates.append(certificate("rotated", NEW_SERIAL))
        assert wechatpay_certs.refresh_certificates_job() == {"downloaded": 2}
        assert not wechatpay_certs.refresh_due()
        assert wechatpay_certs.refresh_certificates_job() == {"kept": 2}
    assert paystandin.downloads == 2
    old = post(
        app,
        *notify(
            "4200000000000000000000000301",
            serial=serial_hex(CERT_SERIAL),
            key=cert_keys()["cert"][0],
        ),
    )
    new = post(
        app,
        *notify(
            "4200000000000000000000000302",
            serial=serial_hex(NEW_SERIAL),
            key=cert_keys()["rotated"][0],
        ),
    )
    assert (old.status_code, new.status_code) == (204, 204)
    assert paystandin.downloads == 2  # both serials were known: no download on the way


def test_an_expired_certificate_verifies_nothing(make_app, standins):
    wechat, alipay = standins
    long_ago = datetime.now(UTC) - timedelta(days=400)
    expired = certificate(days=30, not_before=long_ago)
    app = make_app(**v3_settings(wechat, alipay, WECHAT_PAY_PLATFORM_CERTS=expired))
    response = post(
        app,
        *notify(
            "4200000000000000000000000401",
            serial=serial_hex(CERT_SERIAL),
            key=cert_keys()["cert"][0],
        ),
    )
    assert response.status_code == 401
    assert counts()["purchases"] == 0


def test_a_mixed_serial_stream_during_the_migration_to_the_public_key(make_app, standins):
    """For about 7 days WeChat signs with either key at random: every honest one counts."""
    wechat, alipay = standins
    app = make_app(
        **platform_config(wechat.url, alipay.url),
        WECHAT_PAY_PLATFORM_CERTS=certificate(),
    )
    rng = random.Random(18)
    signers = {
        PUB_KEY_ID: wechatpay_private(),
        serial_hex(CERT_SERIAL): cert_keys()["cert"][0],
    }
    used = {PUB_KEY_ID: 0, serial_hex(CERT_SERIAL): 0}
    for n in range(30):
        serial = rng.choice(list(signers))
        used[serial] += 1
        txn = f"4200000000000000000000{n:06d}"
        response = post(app, *notify(txn, serial=serial, key=signers[serial], total=100))
        assert response.status_code == 204, (serial, response.data)
        # every notification is retried by WeChat with the other key sometimes: still once
        other = next(s for s in signers if s != serial)
        again = post(app, *notify(txn, serial=other, key=signers[other], total=100))
        assert again.status_code == 204
    assert min(used.values()) > 5
    assert counts()["purchases"] == 30
    # a serial paired with the other key's signature is still a forgery
    crossed = post(
        app, *notify("4200000000000000000000999999", serial=PUB_KEY_ID, key=cert_keys()["cert"][0])
    )
    assert crossed.status_code == 401
    assert counts()["purchases"] == 30


@pytest.mark.parametrize("serial", [PUB_KEY_ID, serial_hex(CERT_SERIAL)])
def test_wechat_signature_probes_fail_verification(make_app, standins, serial):
    wechat, alipay = standins
    app = make_app(
        **platform_config(wechat.url, alipay.url), WECHAT_PAY_PLATFORM_CERTS=certificate()
    )
    headers, body = notify(
        "4200000000000000000000000501", serial=serial, key=cert_keys()["cert"][0]
    )
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    response = post(app, headers, body)
    assert response.status_code == 401
    assert counts()["purchases"] == 0


def test_bad_certificate_settings_stop_start_up(make_app):
    from app.config import ConfigError

    with pytest.raises(ConfigError, match="WECHAT_PAY_PLATFORM_CERTS"):
        make_app(
            WECHAT_PAY_PLATFORM_CERTS="-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"
        )


def test_the_certificate_cache_is_shared_through_redis(make_app, standins, paystandin):
    """A second process (app) uses the certificates the first one downloaded."""
    wechat, alipay = standins
    paystandin.certificates = [certificate()]
    settings = v3_settings(
        wechat,
        alipay,
        WECHAT_PAY_MCH_PRIVATE_KEY=cert_keys()["merchant"][0],
        WECHAT_PAY_MCH_CERT_SERIAL="3775B6A45ACD588826D15E583A95F5DD00000000",
        WECHAT_PAY_API_BASE_URL=paystandin.url,
    )
    first, second = make_app(**settings), make_app(**settings)
    for n, app in enumerate((first, second)):
        response = post(
            app,
            *notify(
                f"42000000000000000000000006{n}",
                serial=serial_hex(CERT_SERIAL),
                key=cert_keys()["cert"][0],
            ),
        )
        assert response.status_code == 204
    assert paystandin.downloads == 1
    with first.app_context():
        assert redis_store.client.get(wechatpay_certs.CACHE_KEY)
    assert keys()  # the session keys stay untouched
