"""The POS terminal protocol (``/pos/v1``) and vendor adapters."""
