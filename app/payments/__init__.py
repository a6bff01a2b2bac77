"""Payment notifications from WeChat Pay and Alipay: verify, then apply once."""
