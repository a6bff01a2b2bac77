"""One typed configuration, read from the environment (listed in the README, "Production").

Development defaults are safe and local: SQLite under ``instance/`` and an in-process Redis
stand-in. In production mode (``HUIYUAN_ENV=production``) secrets and services have no
default: a missing one stops start-up with a clear message.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"

REQUIRED_IN_PRODUCTION = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL")
DEVELOPMENT_SECRET_KEY = "dev-insecure-secret-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY_MIN_LENGTH = 32
SECRET_KEY_MIN_DISTINCT = 8


class ConfigError(RuntimeError):
    """The configuration cannot run: the message says which variable and why."""


def _read_pem(value: str | None) -> str | None:
    """PEM keys may be given as text or as a path to a file holding the text."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text.replace("\\n", "\n") + "\n"
    path = Path(text)
    if path.is_file():
        return path.read_text()
    raise ConfigError(f"expected PEM text or a readable file path, got {text[:16]!r}…")


@dataclass
class Config:
    ENV: str = "development"
    SECRET_KEY: str | None = None
    DATABASE_URL: str | None = None
    # a read replica (streaming standby) for reports (KPIs) and segment counts and previews;
    # unset: they read the primary. See docs/scaling.md.
    REPORTS_DATABASE_URL: str | None = None
    # psycopg 3 prepares a statement on the server after this many runs of it (psycopg's
    # default: 5). "none" turns server-side prepared statements off, as PgBouncer in
    # transaction mode before 1.21 needs (1.21+ with max_prepared_statements keeps them).
    DATABASE_PREPARE_THRESHOLD: str | None = None
    REDIS_URL: str | None = None
    TESTING: bool = False
    # /openapi.json and /docs: always served in development and testing; in production only
    # when this is set (the API's shape helps an attacker more than a brand's developers)
    API_DOCS_IN_PRODUCTION: bool = False
    MAX_REQUEST_BYTES: int = 4 * 1024 * 1024  # larger bodies answer 413 PAYLOAD_TOO_LARGE
    POS_MAX_SALE_FEN: int = 10_000_000  # a sale or return above it is rejected AMOUNT_TOO_LARGE
    # each process keeps the terminals it verified this long; a revocation or rotation made
    # through the app reaches every process at once (app/pos/terminals.py), so this only bounds
    # a change made in the database by hand. 0: read the terminal on every till request
    TERMINAL_CACHE_SECONDS: int = 60
    PRIVACY_POLICY_VERSION: str = "1"  # recorded with every consent to store a phone

    POINTS_PER_YUAN: int = 1
    POINTS_REDEEM_FEN_PER_POINT: int = 1  # till discount per redeemed point (100 points = 1 yuan)
    POINTS_EXPIRY: str = "year_end_next"
    BIRTHDAY_COUPON_TEMPLATE_ID: int | None = None  # unset: a greeting without a coupon
    # JSON: {"points_earned": {"template_id": "…", "page": "pages/points/index",
    #        "data": {"number1": "{points}", "thing2": "{name}"}}, …}; kinds left out are skipped
    WECHAT_SUBSCRIBE_TEMPLATES: str | None = None
    # history on PostgreSQL: monthly partitions made this many months ahead; journal events
    # and outbox messages in a final state deleted after these many days (0: kept)
    PARTITION_MONTHS_AHEAD: int = 3
    JOURNAL_RETENTION_DAYS: int = 90
    OUTBOX_RETENTION_DAYS: int = 30
    OUTBOX_LEASE_SECONDS: int = 60  # a message claimed by a dispatcher that died is retried after
    TIMEZONE: str = "Asia/Shanghai"
    # Where the money engine applies journalled payment notifications: "inline" (in the request
    # that stored them, after its commit: the embedded default) or "worker" (``flask engine
    # apply``, a process of its own). Empty: "worker" in production, "inline" otherwise.
    ENGINE_APPLY: str = ""
    # The applier gathers: after a partial batch it waits until this many milliseconds have
    # passed since that batch began, so that under load one transaction applies many events
    # (a batch's fixed cost, about 7 ms of CPU, is then shared). It bounds the apply lag it
    # adds under load; an idle journal is looked at 20 ms after it emptied, then at most
    # every 200 ms. 0: apply at once.
    ENGINE_APPLY_GATHER_MS: int = 250

    WECHAT_APPID: str | None = None
    WECHAT_APP_SECRET: str | None = None
    WECHAT_API_BASE_URL: str = "https://api.weixin.qq.com/"
    WECHAT_MCH_ID: str | None = None
    WECHAT_PAY_API_KEY: str | None = None
    WECHAT_PAY_API_V3_KEY: str | None = None
    WECHAT_PAY_PUBLIC_KEY: str | None = None
    WECHAT_PAY_PUBLIC_KEY_ID: str | None = None
    # platform certificates (certificate mode, or both during the move to the public key)
    WECHAT_PAY_PLATFORM_CERTS: str | None = None
    # the merchant's API key and certificate serial: to download platform certificates
    WECHAT_PAY_MCH_PRIVATE_KEY: str | None = None
    WECHAT_PAY_MCH_CERT_SERIAL: str | None = None
    WECHAT_PAY_API_BASE_URL: str = "https://api.mch.weixin.qq.com/"
    WECHAT_OA_APPID: str | None = None  # the brand's official account (公众号), same merchant
    WECHAT_OA_APP_SECRET: str | None = None
    # member cards: "wechat", "alipay" or "wechat,alipay"; unset: no cards
    MEMBER_CARDS: str | None = None
    WECHAT_CARD_ID: str | None = None  # the member card template (card/create)
    WECHAT_SERVER_TOKEN: str | None = None  # the Token of the account's server URL (card events)
    ALIPAY_CARD_TEMPLATE_ID: str | None = None  # alipay.marketing.card.template.create

    ALIPAY_APP_ID: str | None = None
    ALIPAY_APP_PRIVATE_KEY: str | None = None
    ALIPAY_PUBLIC_KEY: str | None = None
    ALIPAY_SELLER_ID: str | None = None
    ALIPAY_GATEWAY_URL: str = "https://openapi.alipay.com/gateway.do"
    ALIPAY_AES_KEY: str | None = None

    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.ENV == "production"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Config:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            key = "HUIYUAN_ENV" if f.name == "ENV" else f.name
            raw = env.get(key)
            if raw is None or raw == "":
                continue
            if f.type in ("int", "int | None"):
                try:
                    values[f.name] = int(raw)
                except ValueError as exc:
                    raise ConfigError(f"{key} must be an integer, got {raw!r}") from exc
            elif f.type in ("bool",):
                values[f.name] = raw.lower() in ("1", "true", "yes", "on")
            else:
                values[f.name] = raw
        values.update(overrides)
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.ENV not in ("development", "production", "testing"):
            raise ConfigError(
                f"HUIYUAN_ENV must be development, production or testing, not {self.ENV!r}"
            )
        threshold = (self.DATABASE_PREPARE_THRESHOLD or "").strip().lower()
        if threshold and threshold not in ("none", "off") and not threshold.isdigit():
            raise ConfigError(
                "DATABASE_PREPARE_THRESHOLD must be a number of runs, or none (no server-side "
                f"prepared statements, for PgBouncer in transaction mode), not {threshold!r}"
            )
        if self.is_production:
            missing = [name for name in REQUIRED_IN_PRODUCTION if not getattr(self, name)]
            if missing:
                raise ConfigError(
                    "production mode (HUIYUAN_ENV=production) needs "
                    + ", ".join(missing)
                    + ": set them in the environment"
                )
        self._check_secret_key()
        if self.MAX_REQUEST_BYTES < 1024:
            raise ConfigError("MAX_REQUEST_BYTES must be at least 1024")
        if self.POS_MAX_SALE_FEN < 1:
            raise ConfigError("POS_MAX_SALE_FEN must be positive")
        if self.TERMINAL_CACHE_SECONDS < 0:
            raise ConfigError("TERMINAL_CACHE_SECONDS must not be negative")
        if self.ENGINE_APPLY not in ("", "inline", "worker"):
            raise ConfigError("ENGINE_APPLY must be inline or worker")
        if not self.ENGINE_APPLY:
            self.ENGINE_APPLY = "worker" if self.is_production else "inline"
        if not 0 <= self.ENGINE_APPLY_GATHER_MS <= 1000:
            raise ConfigError("ENGINE_APPLY_GATHER_MS must be between 0 and 1000")
        if self.POINTS_PER_YUAN < 0:
            raise ConfigError("POINTS_PER_YUAN must not be negative")
        from app.common.expiry import parse_policy

        try:
            parse_policy(self.POINTS_EXPIRY)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        for name in (
            "WECHAT_PAY_PUBLIC_KEY",
            "WECHAT_PAY_PLATFORM_CERTS",
            "WECHAT_PAY_MCH_PRIVATE_KEY",
            "ALIPAY_APP_PRIVATE_KEY",
            "ALIPAY_PUBLIC_KEY",
        ):
            setattr(self, name, _read_pem(getattr(self, name)))
        cards = {c.strip() for c in (self.MEMBER_CARDS or "").split(",") if c.strip()}
        if not cards <= {"wechat", "alipay"}:
            raise ConfigError('MEMBER_CARDS lists "wechat" and/or "alipay", comma-separated')
        if self.WECHAT_SUBSCRIBE_TEMPLATES:
            try:
                templates = json.loads(self.WECHAT_SUBSCRIBE_TEMPLATES)
            except ValueError as exc:
                raise ConfigError("WECHAT_SUBSCRIBE_TEMPLATES must be JSON") from exc
            if not isinstance(templates, dict) or not all(
                isinstance(v, dict) and v.get("template_id") for v in templates.values()
            ):
                raise ConfigError(
                    "WECHAT_SUBSCRIBE_TEMPLATES maps message kinds to {template_id, data, page?}"
                )

    @property
    def on_embedded_sqlite(self) -> bool:
        return not self.DATABASE_URL or self.DATABASE_URL.startswith("sqlite")

    @property
    def api_docs_enabled(self) -> bool:
        return not self.is_production or self.API_DOCS_IN_PRODUCTION

    def _check_secret_key(self) -> None:
        """The built-in development key only in development (or tests) on SQLite; any key
        given must be strong: tokens forged with a guessable key would act as any member."""
        key = self.SECRET_KEY
        if not key:
            if self.ENV in ("development", "testing") and self.on_embedded_sqlite:
                return
            where = "in production" if self.is_production else "with a database other than SQLite"
            raise ConfigError(
                f"SECRET_KEY is required {where}: the built-in development key is public, and "
                "tokens signed with it could be forged. Set SECRET_KEY (for example: python -c "
                "'import secrets; print(secrets.token_urlsafe(48))')"
            )
        stripped = key.strip()
        if (
            len(stripped) < SECRET_KEY_MIN_LENGTH
            or len(set(stripped)) < SECRET_KEY_MIN_DISTINCT
            or stripped != key
            or key == DEVELOPMENT_SECRET_KEY
        ):
            raise ConfigError(
                f"SECRET_KEY is too weak: it needs at least {SECRET_KEY_MIN_LENGTH} characters "
                f"with at least {SECRET_KEY_MIN_DISTINCT} different ones, no surrounding "
                "white space, and must not be the development key (for example: python -c "
                "'import secrets; print(secrets.token_urlsafe(48))')"
            )

    def flask_mapping(self) -> dict[str, Any]:
        """The values Flask and its extensions read from ``app.config``."""
        database_url = self.DATABASE_URL or f"sqlite:///{INSTANCE_DIR / 'huiyuan.db'}"
        secret = self.SECRET_KEY or DEVELOPMENT_SECRET_KEY
        mapping: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"
        }
        mapping.update(
            SECRET_KEY=secret,
            SQLALCHEMY_DATABASE_URI=database_url,
            SQLALCHEMY_ENGINE_OPTIONS=engine_options(database_url, self.DATABASE_PREPARE_THRESHOLD),
            TESTING=self.TESTING,
            API_TITLE="Huiyuan membership API",
            API_VERSION="v1",
            OPENAPI_VERSION="3.0.3",
            OPENAPI_URL_PREFIX="/" if self.api_docs_enabled else None,
            MAX_CONTENT_LENGTH=self.MAX_REQUEST_BYTES,
            OPENAPI_JSON_PATH="openapi.json",
            OPENAPI_SWAGGER_UI_PATH="/docs",
            OPENAPI_SWAGGER_UI_URL="/docs-assets/",
            JSON_SORT_KEYS=False,
        )
        mapping.update(self.extra)
        return mapping


def engine_options(url: str, prepare_threshold: str | None = None) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    options: dict[str, Any] = {}
    if prepare_threshold:
        off = prepare_threshold.strip().lower() in ("none", "off", "0")
        options["connect_args"] = {"prepare_threshold": None if off else int(prepare_threshold)}
    # No pool_pre_ping: it costs a round trip on every checkout (a third of a till lookup's).
    # A connection the server dropped fails its request once; SQLAlchemy then sees the
    # disconnect and replaces the whole pool, so the next requests reconnect.
    return {"pool_size": 10, "max_overflow": 20, "pool_recycle": 3600, **options}
