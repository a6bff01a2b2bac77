"""Which language a console page speaks: ``?lang=`` or the language cookie; Chinese by default."""

from __future__ import annotations

from flask import request

LOCALES = {"zh": "zh_Hans_CN", "en": "en"}
LANG_COOKIE = "hy_console_lang"


def select_locale() -> str:
    wanted = request.args.get("lang") or request.cookies.get(LANG_COOKIE) or "zh"
    return LOCALES.get(wanted, LOCALES["zh"])
