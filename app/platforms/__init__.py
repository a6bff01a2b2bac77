"""The outside platforms (WeChat, Alipay): clients, which platform is enabled, local stand-ins."""
