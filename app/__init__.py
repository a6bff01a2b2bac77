"""Huiyuan: an open-source membership backend for Chinese retail brands."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from app.config import Config


def create_app(config: Config | None = None, **overrides: Any) -> Flask:
    """Build the application. Nothing is read from the environment before this is called."""
    config = config or Config.from_env(**overrides)
    app = Flask(__name__, instance_path=str(_instance_dir()))
    app.config.from_mapping(config.flask_mapping())
    app.config["HUIYUAN_CONFIG"] = config
    if not config.DATABASE_URL:  # the embedded SQLite default lives under instance/
        _instance_dir().mkdir(parents=True, exist_ok=True)
    from app.errors import SafeJSONProvider

    app.json = SafeJSONProvider(app)  # request.get_json(): nesting limit, no unstorable text
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.converters["int"] = _id_converter()
    _configure_logging(app)

    from app import models  # noqa: F401  (registers every model with the metadata)
    from app.errors import register_error_handlers
    from app.extensions import api, db, migrate, redis_store

    db.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()))
    redis_store.init_app(app)
    from app.common.throttle import init_throttles

    init_throttles(app)
    api.init_app(app)
    api.spec.components.security_scheme(
        "adminToken",
        {"type": "http", "scheme": "bearer", "description": "flask admin create-token"},
    )
    api.spec.components.security_scheme(
        "memberToken",
        {"type": "http", "scheme": "bearer", "description": "from mini-program login"},
    )
    api.spec.components.security_scheme(
        "clerkToken", {"type": "http", "scheme": "bearer", "description": "from /clerk/v1/login"}
    )
    register_error_handlers(app)
    _register_blueprints(app)

    from app.operators.audit import register_write_audit

    register_write_audit(app)

    from app.console import init_console

    init_console(app)

    from app.platforms.sandbox import init_platforms

    init_platforms(app, config)  # log redaction; the offline sandbox in development only
    _register_merge_steps()
    register_hooks()

    from app.cli import register_cli

    register_cli(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from app.cards.views import blp as cards
    from app.catalog.views import blp as admin_catalog
    from app.clerks.admin_views import blp as admin_clerks
    from app.clerks.views import blp as clerk_api
    from app.coupons.views import blp as admin_coupons
    from app.extensions import api
    from app.health import blp as health
    from app.intel.views import blp as admin_intel
    from app.members.views import blp as admin_members
    from app.operators.views import blp as admin_audit
    from app.ops.views import blp as ops
    from app.payments.views import blp as payments
    from app.points.views import blp as admin_points
    from app.pos.views import blp as admin_terminals
    from app.reports.views import blp as admin_reports
    from app.stores.views import blp as admin_stores
    from app.tags.views import blp as admin_tags
    from app.tiers.views import blp as admin_tiers
    from miniprogram_api.account import blp as mp_account
    from miniprogram_api.attribution import blp as mp_attribution
    from miniprogram_api.cards import blp as mp_cards
    from miniprogram_api.coupons import blp as mp_coupons
    from miniprogram_api.points import blp as mp_points
    from miniprogram_api.preferences import blp as mp_preferences
    from pos_adapter.views import blp as pos

    blueprints = [
        health,
        admin_stores,
        ops,
        admin_tags,
        admin_clerks,
        clerk_api,
        mp_attribution,
        mp_preferences,
        admin_points,
        mp_points,
        admin_coupons,
        mp_coupons,
        admin_terminals,
        pos,
        admin_members,
        payments,
        mp_account,
        admin_audit,
        mp_cards,
        cards,
        admin_intel,
        admin_reports,
        admin_tiers,
        admin_catalog,
    ]
    for blueprint in blueprints:
        api.register_blueprint(blueprint)

    if app.config["HUIYUAN_CONFIG"].api_docs_enabled:
        from app.docs_assets import bp as docs_assets

        app.register_blueprint(docs_assets)


def _register_merge_steps() -> None:
    """Features that own member data move it to the survivor inside a member merge."""
    from app.clerks.attribution import on_member_merge as attribution_on_merge
    from app.clerks.merge import on_member_merge as clerks_on_merge
    from app.coupons.merge import on_member_merge as coupons_on_merge
    from app.members.consent import on_member_merge as consents_on_merge
    from app.members.merge import register_merge_step

    register_merge_step(coupons_on_merge)
    register_merge_step(clerks_on_merge)
    register_merge_step(attribution_on_merge)  # after the clerks' step moved it
    register_merge_step(consents_on_merge)


def register_hooks() -> None:
    """Features listen on the engine's hooks (``app.common.hooks``); registering twice: no-op."""
    from app.cards.hooks import register_card_hooks
    from app.common.hooks import MEMBERS_JOINED, PURCHASES_APPLIED
    from app.coupons.welcome import on_members_joined
    from app.intel.services import register_hooks as intel_hooks
    from app.outbox.channels import register_channel
    from app.outbox.services import on_purchases_applied
    from app.outbox.wechat_channel import WeChatSubscribeChannel
    from app.platforms.unionid import PayerUnionidChannel
    from app.platforms.unionid import on_purchases_applied as ask_payer_unionids
    from app.tiers.hooks import register_hooks as register_tier_hooks

    MEMBERS_JOINED.register(on_members_joined)
    PURCHASES_APPLIED.register(on_purchases_applied)
    register_channel(WeChatSubscribeChannel())
    # platforms: unionid lookups after WeChat payments; member cards (open, sync, merge)
    PURCHASES_APPLIED.register(ask_payer_unionids)
    register_channel(PayerUnionidChannel())
    register_card_hooks()
    intel_hooks()  # member stats, lifecycle, journeys, and their merge step
    register_tier_hooks()


def _configure_logging(app: Flask) -> None:
    from app.common.phone import PhoneMaskingFilter

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(PhoneMaskingFilter())
    root = logging.getLogger()
    if not any(isinstance(f, PhoneMaskingFilter) for h in root.handlers for f in h.filters):
        root.addHandler(handler)
    root.setLevel(logging.INFO if not app.config["TESTING"] else logging.WARNING)
    for h in root.handlers:
        if not any(isinstance(f, PhoneMaskingFilter) for f in h.filters):
            h.addFilter(PhoneMaskingFilter())


def _id_converter() -> Any:
    from app.common.urls import IdConverter

    return IdConverter


def _instance_dir() -> Any:
    from app.config import INSTANCE_DIR

    return INSTANCE_DIR


def _migrations_dir() -> Any:
    from app.config import PROJECT_ROOT

    return PROJECT_ROOT / "migrations"
