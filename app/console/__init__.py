"""The HQ console at ``/console/``: server-rendered pages over the same services as the API.

Simplified Chinese by default, English on request (Flask-Babel; one catalog under
``app/translations``, shipped compiled). No CDN and no build step: the CSS and the little JS are
served from ``app/console/static``; charts are drawn server-side as inline SVG.
"""

from __future__ import annotations

from flask import Flask, request
from flask_babel import Babel

LOCALES = {"zh": "zh_Hans_CN", "en": "en"}
LANG_COOKIE = "hy_console_lang"


def _locale() -> str:
    wanted = request.args.get("lang") or request.cookies.get(LANG_COOKIE) or "zh"
    return LOCALES.get(wanted, LOCALES["zh"])


def init_console(app: Flask) -> None:
    from app.console.views import bp

    Babel(app, locale_selector=_locale, default_timezone="Asia/Shanghai")
    app.register_blueprint(bp)
