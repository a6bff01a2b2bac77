"""Delivery channels behind one small interface, so SMS (or anything) can be added.

A channel gets the message and the delivery id (stable across retries of the same message:
channels that support idempotent sends pass it on, so a retry after a crash cannot double).
"""

from __future__ import annotations

from typing import Protocol

from app.outbox.models import OutboxMessage


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class DeliverySkipped(DeliveryError):
    """Nothing to send on this channel (no template, member refused): recorded as skipped."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False)


class NoRecipient(DeliverySkipped):
    """The member cannot be reached on this channel (e.g. never used the WeChat mini-program)."""


class Channel(Protocol):
    name: str

    def send(self, message: OutboxMessage, delivery_id: str) -> None:
        """Deliver or raise ``DeliveryError``."""


_CHANNELS: dict[str, Channel] = {}


def register_channel(channel: Channel) -> None:
    _CHANNELS[channel.name] = channel


def get_channel(name: str) -> Channel:
    """The channel registered under ``name`` (``create_app`` registers the built-in ones)."""
    try:
        return _CHANNELS[name]
    except KeyError:
        raise DeliveryError(f"no channel {name!r}", retryable=False) from None

