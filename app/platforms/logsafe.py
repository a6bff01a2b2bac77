"""Keep platform secrets out of logs that third-party libraries write.

urllib3 logs request URLs at DEBUG (WeChat puts ``secret`` and ``access_token`` in the query
string) and wechatpy logs the string it signs, API key included. A filter on those loggers
redacts such values; it is installed once per process by :func:`install_log_redaction`.
"""

from __future__ import annotations

import logging
import re

_SECRET_PARAM = re.compile(
    r"(?i)\b(secret|access_token|js_code|key|sign|session_key|code|app_private_key)=([^&\s\"']+)"
)
LOGGERS = (
    "urllib3.connectionpool",
    "wechatpy",
    "wechatpy.pay.utils",
    "wechatpy.client.base",
    "python-alipay-sdk",
    "wechatpayv3",
)


def redact(text: str) -> str:
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", text)


class SecretRedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction() -> None:
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretRedactingFilter) for f in logger.filters):
            logger.addFilter(SecretRedactingFilter())
