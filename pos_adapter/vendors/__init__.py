"""Vendor adapters: a POS vendor's own ticket shape in, our sale and return events out."""

from __future__ import annotations

from pos_adapter.vendors.base import VendorAdapter, VendorTicketError
from pos_adapter.vendors.pospal import PospalAdapter

ADAPTERS: dict[str, VendorAdapter] = {"pospal": PospalAdapter()}

__all__ = ["ADAPTERS", "VendorAdapter", "VendorTicketError"]
