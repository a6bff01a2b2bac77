"""The HQ console at ``/console/``: server-rendered pages over the same services as the API.

Simplified Chinese by default, English on request (Flask-Babel; one catalog under
``app/translations``, shipped compiled). No CDN and no build step: the CSS and the little JS are
served from ``app/console/static``; charts are drawn server-side as inline SVG.
"""

from __future__ import annotations

from flask import Flask
from flask_babel import Babel

from app.console.locale import select_locale


def init_console(app: Flask) -> None:
    from app.console import crm, operators  # noqa: F401  (their pages join the blueprint)
    from app.console.views import bp

    Babel(app, locale_selector=select_locale, default_timezone="Asia/Shanghai")
    app.register_blueprint(bp)
