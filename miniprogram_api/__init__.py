"""Consumer endpoints for the brand's WeChat and Alipay mini-programs (``/mp/v1``)."""
