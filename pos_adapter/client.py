"""A signed-request client for the till protocol, used by the tests, the demo and the bench.

    client = PosClient.for_url("http://127.0.0.1:8000")
    client.activate("ABCD-EFGH-JKMN")            # keeps terminal_id and secret
    member = client.identify(phone="13812345678", register=True).json
    client.send_events([{"type": "sale", ...}])

``PosClient.for_flask(app.test_client())`` talks to an app in the same process instead.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pos_adapter.signing import sign

Transport = Callable[[str, str, str, bytes, dict[str, str]], tuple[int, Any]]


@dataclass
class PosResponse:
    status: int
    json: Any

    @property
    def error_code(self) -> str | None:
        if isinstance(self.json, dict) and isinstance(self.json.get("error"), dict):
            return self.json["error"].get("code")
        return None


class PosClient:
    def __init__(
        self,
        transport: Transport,
        *,
        terminal_id: str | None = None,
        secret: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self._transport = transport
        self.terminal_id = terminal_id
        self.secret = secret
        self.clock = clock

    @classmethod
    def for_url(cls, base_url: str, **kwargs: Any) -> PosClient:
        import requests

        session = requests.Session()
        base = base_url.rstrip("/")

        def transport(
            method: str, path: str, query: str, body: bytes, headers: dict[str, str]
        ) -> tuple[int, Any]:
            url = base + path + (f"?{query}" if query else "")
            response = session.request(method, url, data=body or None, headers=headers, timeout=30)
            try:
                return response.status_code, response.json()
            except ValueError:
                return response.status_code, response.text

        return cls(transport, **kwargs)

    @classmethod
    def for_flask(cls, test_client: Any, **kwargs: Any) -> PosClient:
        def transport(
            method: str, path: str, query: str, body: bytes, headers: dict[str, str]
        ) -> tuple[int, Any]:
            response = test_client.open(
                path + (f"?{query}" if query else ""), method=method, data=body, headers=headers
            )
            return response.status_code, response.get_json(silent=True)

        return cls(transport, **kwargs)

    # --- signing --------------------------------------------------------------------------
    def signed_headers(
        self,
        method: str,
        path: str,
        query: str = "",
        body: bytes = b"",
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        if not self.terminal_id or not self.secret:
            raise RuntimeError("activate the terminal first (or pass terminal_id and secret)")
        ts = str(int(self.clock()) if timestamp is None else timestamp)
        nonce = nonce or secrets.token_urlsafe(16)
        return {
            "X-Terminal-Id": self.terminal_id,
            "X-Timestamp": ts,
            "X-Nonce": nonce,
            "X-Signature": sign(self.secret, method, path, query, ts, nonce, body),
        }

    @staticmethod
    def encode(payload: Any) -> bytes:
        return b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()

    def send(
        self,
        method: str,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        query: str = "",
    ) -> PosResponse:
        """Send exact bytes with exact headers (tests use it to tamper after signing)."""
        all_headers = {"Content-Type": "application/json", **headers}
        status, data = self._transport(method, path, query, body, all_headers)
        return PosResponse(status, data)

    def request(
        self, method: str, path: str, payload: Any = None, query: Mapping[str, str] | None = None
    ) -> PosResponse:
        body = self.encode(payload)
        query_string = urlencode(query or {})
        headers = self.signed_headers(method, path, query_string, body)
        return self.send(method, path, body, headers, query_string)

    # --- the protocol ---------------------------------------------------------------------
    def activate(self, activation_code: str) -> PosResponse:
        body = self.encode({"activation_code": activation_code})
        response = self.send("POST", "/pos/v1/activate", body, {})
        if response.status == 201:
            self.terminal_id = response.json["terminal_id"]
            self.secret = response.json["secret"]
        return response

    def identify(
        self,
        *,
        phone: str | None = None,
        member_code: str | None = None,
        register: bool = False,
        consent: bool = False,
    ) -> PosResponse:
        """By ``member_code`` (scanned from the member's app): the answer carries a
        ``presence_token`` for :meth:`hold`. By ``phone``: earning only. ``register`` enrols an
        unknown phone and needs ``consent`` (the customer agreed to the privacy notice)."""
        payload: dict[str, Any] = {"phone": phone} if phone else {"member_code": member_code}
        if register:
            payload["register"] = True
        if consent:
            payload["consent"] = True
        return self.request("POST", "/pos/v1/members/identify", payload)

    def send_events(self, events: list[dict[str, Any]]) -> PosResponse:
        return self.request("POST", "/pos/v1/events", {"events": events})

    def hold(
        self,
        *,
        sale_id: str,
        presence_token: str,
        points: int = 0,
        coupons: list[str] | None = None,
        total_fen: int | None = None,
    ) -> PosResponse:
        """Hold points and coupons of the member whose code this till scanned
        (``presence_token`` from :meth:`identify` by ``member_code``)."""
        payload: dict[str, Any] = {
            "sale_id": sale_id,
            "presence_token": presence_token,
            "coupons": coupons or [],
            "points": points,
        }
        if total_fen is not None:
            payload["total_fen"] = total_fen
        return self.request("POST", "/pos/v1/redemptions", payload)

    def release(self, redemption_id: str) -> PosResponse:
        return self.request("DELETE", f"/pos/v1/redemptions/{redemption_id}")

    def send_tickets(self, vendor: str, tickets: list[dict[str, Any]]) -> PosResponse:
        return self.request("POST", f"/pos/v1/vendors/{vendor}/tickets", {"tickets": tickets})
