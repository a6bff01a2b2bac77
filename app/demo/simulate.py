"""``flask demo simulate``: months of a demo brand's life, through the real entrypoints.

Every event goes in as the outside world sends it, through the app's HTTP layer (Flask's test
client, no server needed): payment notifications signed with the development sandbox's keys
(WeChat Pay v2 XML, Alipay RSA2), signed POS event batches from activated terminals (sales,
returns, coupon redemptions), mini-program logins through the WeChat stand-in, gift links and
claims, clerks tagging members, HQ issuing a weekly coupon. The clock is frozen at each
simulated moment, so ledgers, coupons and joins carry the simulated dates.

Deterministic for a given seed: the same seed on an empty demo brand gives the same members,
points and coupons.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import Flask, current_app
from sqlalchemy import select

from app.common.clock import SHANGHAI, advance, frozen, utcnow
from app.coupons.models import CouponTemplate
from app.demo.notifications import (
    alipay_payment_fields,
    alipay_sign,
    wechat_v2_payment_fields,
    wechat_v2_xml,
)
from app.demo.payments import DemoError, _sandbox
from app.extensions import db
from app.jobs.runner import execute
from app.members.codes import issue_member_code
from app.stores import services as stores
from app.stores.models import Clerk, Store
from app.tags.models import Tag, TagGroup
from pos_adapter.client import PosClient

SKUS = [
    ("TEA-FRUIT-500", 1900),  # the demo SKU rule tags its buyers
    ("TEA-01", 1800),
    ("TEA-02", 2200),
    ("MILK-01", 1600),
    ("CAKE-01", 2800),
    ("BEAN-01", 5800),
]


@dataclass
class World:
    rng: random.Random
    tills: dict[str, PosClient] = field(default_factory=dict)
    wechat_payers: list[tuple[str, str]] = field(default_factory=list)  # (openid, store)
    alipay_payers: list[tuple[str, str]] = field(default_factory=list)
    phones: list[tuple[str, str]] = field(default_factory=list)  # (phone, store)
    mp_tokens: dict[str, str] = field(default_factory=dict)  # openid -> member token
    mp_members: list[int] = field(default_factory=list)
    sales: list[tuple[str, str, int]] = field(default_factory=list)  # (store, sale_id, paid)
    refunded: Counter = field(default_factory=Counter)  # sale_id -> fen returned so far
    counts: Counter = field(default_factory=Counter)
    serial: int = 0

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial:07d}"


# The KPI rollup feeds the dashboard; the nightly job moves lifecycle stages and scores RFM.
CATCH_UP_JOBS = ("reports.rollup", "intel.nightly")
# What the worker's schedule runs through a day and which changes what shoppers can spend:
# without it lapsed coupons stayed ``available`` for ever (no expiries in the KPIs, and the
# tills kept picking coupons that could no longer be redeemed) and stale holds stayed held.
DAILY_JOBS = ("coupons.expire", "coupons.return_gifts", "pos.expire_redemptions")


def simulate(days: int = 90, seed: int = 1) -> dict[str, int]:
    """Run ``days`` days ending yesterday; returns what was sent, by kind (and seconds)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    keys = _sandbox()
    store_codes = list(db.session.scalars(select(Store.code).where(Store.status == "active")))
    if not store_codes:
        raise DemoError("no stores: run `flask demo seed` first")
    world = World(random.Random(seed))  # noqa: S311  (a reproducible demo, not secrets)
    client = app.test_client()
    started = time.perf_counter()
    first_day = (utcnow().astimezone(SHANGHAI) - timedelta(days=days)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    with frozen(first_day):
        _setup(world, client, store_codes)
        for day in range(days):
            _day(world, client, keys, store_codes, first_day + timedelta(days=day))
    db.session.remove()
    for job in CATCH_UP_JOBS:  # what the worker's schedule would have run by now
        execute(job)
        db.session.remove()
    world.counts["seconds"] = round(time.perf_counter() - started)
    return dict(world.counts)


def _at(moment: datetime) -> None:
    advance(moment - utcnow())


def _setup(world: World, client: Any, store_codes: list[str]) -> None:
    for code in store_codes:
        _terminal, activation = stores.create_terminal(code, f"{code} 模拟收银台")
        till = PosClient.for_flask(client, clock=lambda: utcnow().timestamp())
        if till.activate(activation).status != 201:
            raise DemoError(f"terminal of {code} did not activate")
        world.tills[code] = till


def _day(world: World, client: Any, keys: dict, store_codes: list[str], day: datetime) -> None:
    rng = world.rng
    weekend = day.weekday() >= 5
    events = rng.randint(6, 9) + (4 if weekend else 0)
    moments = sorted(rng.randint(0, 11 * 3600) for _ in range(events))
    for offset in moments:
        _at(day + timedelta(seconds=offset))
        store = rng.choice(store_codes)
        roll = rng.random()
        if roll < 0.34:
            _wechat_payment(world, client, store)
        elif roll < 0.42:
            _alipay_payment(world, client, keys, store)
        elif roll < 0.80:
            _till_sales(world, client, store)
        elif roll < 0.90:
            _miniprogram_login(world, client)
        elif roll < 0.96:
            _gift(world, client)
        else:
            _till_return(world)
    if day.weekday() == 0:
        _at(day + timedelta(hours=11, minutes=30))
        _weekly_coupon(world)
        _till_redemptions(world, client, store_codes)
    if day.weekday() in (2, 5):  # a clerk's shift: log in on the tablet, tag a few members
        _at(day + timedelta(hours=12))
        _clerk_shift(world, client, store_codes[day.toordinal() % len(store_codes)])
    _at(day + timedelta(hours=12, minutes=30))
    _till_points(world, store_codes)
    _at(day + timedelta(hours=14, minutes=50))  # 23:50: the day's housekeeping
    for job in DAILY_JOBS:
        execute(job)
        db.session.remove()


def _amount(rng: random.Random) -> tuple[int, list[dict[str, Any]]]:
    lines = []
    for sku, price in rng.sample(SKUS, rng.randint(1, 3)):
        qty = rng.randint(1, 2)
        lines.append({"sku": sku, "qty": qty, "amount_fen": price * qty})
    return sum(line["amount_fen"] for line in lines), lines


def _wechat_payment(world: World, client: Any, store: str) -> None:
    rng, config = world.rng, current_app.config
    if world.wechat_payers and rng.random() < 0.55:
        openid, _home = rng.choice(world.wechat_payers)
    else:
        openid = f"oSIM{world.next_id('w')}"
        world.wechat_payers.append((openid, store))
    total, _lines = _amount(rng)
    fields = wechat_v2_payment_fields(
        appid=config["WECHAT_APPID"],
        mch_id=config["WECHAT_MCH_ID"],
        transaction_id="4200" + world.next_id("").zfill(24),
        openid=openid,
        total_fee=total,
        store=store,
        paid_at=utcnow(),
    )
    body = wechat_v2_xml(fields, config["WECHAT_PAY_API_KEY"], "MD5").encode()
    response = client.post("/payments/wechat/notify", data=body, content_type="text/xml")
    world.counts[f"wechat_payment_{response.status_code}"] += 1


def _alipay_payment(world: World, client: Any, keys: dict, store: str) -> None:
    rng, config = world.rng, current_app.config
    if world.alipay_payers and rng.random() < 0.5:
        buyer, _home = rng.choice(world.alipay_payers)
    else:
        buyer = "2088" + world.next_id("").zfill(12)
        world.alipay_payers.append((buyer, store))
    total, _lines = _amount(rng)
    fields = alipay_payment_fields(
        app_id=config["ALIPAY_APP_ID"],
        trade_no="2026" + world.next_id("").zfill(24),
        total_amount=f"{Decimal(total) / 100:.2f}",
        buyer_id=buyer,
        store=store,
        seller_id=config.get("ALIPAY_SELLER_ID") or "2088101117955611",
    )
    form = alipay_sign(fields, keys["sandbox_alipay_private_key"])
    response = client.post("/payments/alipay/notify", data=form)
    world.counts[f"alipay_payment_{response.status_code}"] += 1


def _phone(world: World, store: str) -> str:
    rng = world.rng
    if world.phones and rng.random() < 0.6:
        return rng.choice(world.phones)[0]
    phone = f"13{rng.randint(0, 9)}{rng.randint(0, 99999999):08d}"
    world.phones.append((phone, store))
    return phone


def _till_sales(world: World, client: Any, store: str) -> None:
    """A till that was offline a while sends a batch of sales at once."""
    rng = world.rng
    events = []
    for _ in range(rng.randint(1, 4)):
        paid, lines = _amount(rng)
        discount = rng.choice((0, 0, 0, 200, 500))
        sale_id = world.next_id(f"{store}-S")
        event: dict[str, Any] = {
            "type": "sale",
            "sale_id": sale_id,
            "occurred_at": utcnow().astimezone(SHANGHAI).isoformat(),
            "total_fen": paid,
            "paid_fen": max(paid - discount, 1),
            "lines": lines,
        }
        if rng.random() < 0.7:
            event["member"] = {"phone": _phone(world, store)}
        events.append(event)
        world.sales.append((store, sale_id, event["paid_fen"]))
    response = world.tills[store].send_events(events)
    for result in (response.json or {}).get("results", []):
        world.counts[f"pos_sale_{result['status']}"] += 1


def _till_return(world: World) -> None:
    if not world.sales:
        return
    store, sale_id, paid = world.rng.choice(world.sales[-200:])
    left = paid - world.refunded[sale_id]  # a till returns no more than is left of a sale
    if left <= 0:
        return
    event = {
        "type": "return",
        "return_id": world.next_id(f"{store}-R"),
        "sale_id": sale_id,
        "occurred_at": utcnow().astimezone(SHANGHAI).isoformat(),
        "refund_fen": max(1, left // world.rng.choice((1, 2, 3))),
    }
    response = world.tills[store].send_events([event])
    for result in (response.json or {}).get("results", []):
        world.counts[f"pos_return_{result['status']}"] += 1
        if result["status"] != "rejected":  # accepted, or parked until its sale lands
            world.refunded[sale_id] += event["refund_fen"]


def _miniprogram_login(world: World, client: Any) -> str | None:
    """A shopper opens the mini-program (the WeChat stand-in answers code2session); some bind
    their phone, which joins them with what they did at the till."""
    rng = world.rng
    openid_seed = world.next_id("mp")
    response = client.post("/mp/v1/wechat/login", json={"code": f"sandbox-{openid_seed}"})
    world.counts[f"mp_login_{response.status_code}"] += 1
    if response.status_code != 200:
        return None
    token = response.get_json()["token"]
    world.mp_tokens[openid_seed] = token
    world.mp_members.append(response.get_json()["member"]["id"])
    if world.phones and rng.random() < 0.3:
        phone = rng.choice(world.phones)[0] if rng.random() < 0.5 else _phone(world, "")
        bound = client.post(
            "/mp/v1/wechat/phone",
            json={"code": f"sandbox-phone-{phone}"},
            headers={"Authorization": f"Bearer {token}"},
        )
        world.counts[f"mp_phone_{bound.status_code}"] += 1
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _gift(world: World, client: Any) -> None:
    """A member gifts a coupon; a friend (often new to the brand) claims it."""
    rng = world.rng
    for giver in rng.sample(list(world.mp_tokens.values()), min(3, len(world.mp_tokens))):
        mine = client.get("/mp/v1/coupons?state=available", headers=_bearer(giver)).get_json()
        link = None
        for coupon in (mine or {}).get("items", []):
            link = client.post(f"/mp/v1/coupons/{coupon['code']}/gift", headers=_bearer(giver))
            if link.status_code == 201:
                break
        if link is None or link.status_code != 201:
            continue
        world.counts["gift_link_201"] += 1
        friend = _miniprogram_login(world, client)
        if friend:
            claim = client.post(
                f"/mp/v1/gifts/{link.get_json()['gift_token']}/claim", headers=_bearer(friend)
            )
            world.counts[f"gift_claim_{claim.status_code}"] += 1
        return


def _clerk_shift(world: World, client: Any, store: str) -> None:
    """A clerk logs in on the store's tablet, looks up members who shop there and tags some."""
    from app.demo.brand import DEMO_CLERK_PASSWORD

    username = db.session.scalar(
        select(Clerk.username)
        .join(Store, Store.id == Clerk.store_id)
        .where(Store.code == store, Clerk.status == "active")
        .order_by(Clerk.id)
    )
    tags = db.session.scalars(
        select(Tag.id)
        .join(TagGroup, TagGroup.id == Tag.group_id)
        .where(
            Tag.archived_at.is_(None),
            TagGroup.archived_at.is_(None),
            TagGroup.exclusive.is_(False),
        )
        .order_by(Tag.id)
    ).all()
    db.session.rollback()
    home_phones = sorted({p for p, s in world.phones if s == store})
    if not username or not tags or not home_phones:
        return
    login = client.post(
        "/clerk/v1/login", json={"username": username, "password": DEMO_CLERK_PASSWORD}
    )
    world.counts[f"clerk_login_{login.status_code}"] += 1
    if login.status_code != 200:
        return
    headers = _bearer(login.get_json()["token"])
    for phone in world.rng.sample(home_phones, min(4, len(home_phones))):
        found = client.post("/clerk/v1/members/lookup", json={"phone": phone}, headers=headers)
        if found.status_code != 200:
            world.counts[f"clerk_lookup_{found.status_code}"] += 1
            continue
        tagged = client.post(
            f"/clerk/v1/members/{found.get_json()['id']}/tags",
            json={"add": [world.rng.choice(tags)], "remove": []},
            headers=headers,
        )
        world.counts[f"clerk_tag_{tagged.status_code}"] += 1
    client.post("/clerk/v1/logout", headers=headers)


def _weekly_coupon(world: World) -> None:
    """HQ's Monday campaign: a giftable coupon to some recent members (the bulk-issue service,
    as the console's issue form calls it)."""
    from app.coupons.services import issue_batch
    from app.members.models import Member

    template_id = db.session.scalar(
        select(CouponTemplate.id)
        .where(CouponTemplate.status == "active", CouponTemplate.giftable.is_(True))
        .order_by(CouponTemplate.id)
    )
    members = db.session.scalars(
        select(Member.id)
        .where(Member.merged_into_id.is_(None))
        .order_by(Member.id.desc())
        .limit(40)
    ).all()
    db.session.rollback()
    if template_id is None or not members:
        return
    chosen = sorted(
        set(world.rng.sample(list(members), min(15, len(members))))
        | set(world.rng.sample(world.mp_members, min(5, len(world.mp_members))))
    )
    results = issue_batch(template_id, chosen, admin_name="demo-campaign")
    world.counts["coupons_issued"] += sum(1 for r in results if r.coupon is not None)


def _till_redemptions(world: World, client: Any, store_codes: list[str]) -> None:
    """Some members spend a coupon at a till: hold, then the sale captures it."""
    from app.coupons.models import Coupon

    now = utcnow()
    coupons = db.session.execute(
        select(Coupon.code, Coupon.owner_id)
        .where(
            Coupon.state == "available",
            Coupon.valid_from <= now,
            Coupon.expires_at > now + timedelta(hours=1),
        )
        .order_by(Coupon.id)
        .limit(60)
    ).all()
    db.session.rollback()
    for code, owner in world.rng.sample(list(coupons), min(6, len(coupons))):
        store = world.rng.choice(store_codes)
        till = world.tills[store]
        total = max(_amount(world.rng)[0], 5000)
        sale_id = world.next_id(f"{store}-S")
        # the member shows the dynamic code in the mini-program; the till scans it
        member_code, _ = issue_member_code(owner)
        shown = till.identify(member_code=member_code)
        world.counts[f"pos_identify_code_{shown.status}"] += 1
        if shown.status != 200:
            continue
        held = till.hold(
            sale_id=sale_id,
            presence_token=shown.json["presence_token"],
            coupons=[code],
            total_fen=total,
        )
        _count_answer(world, "pos_hold", held)
        if held.status != 201:
            continue
        event = {
            "type": "sale",
            "sale_id": sale_id,
            "occurred_at": utcnow().astimezone(SHANGHAI).isoformat(),
            "total_fen": total,
            "paid_fen": total - held.json["discount_fen"],
            "lines": [{"sku": "TEA-01", "qty": 1, "amount_fen": total}],
            "member": {"member_id": owner},
            "redemption_id": held.json["id"],
        }
        response = till.send_events([event])
        for result in (response.json or {}).get("results", []):
            world.counts[f"pos_redeem_{result['status']}"] += 1


def _count_answer(world: World, kind: str, response: Any) -> None:
    """Count a till answer by status, a refusal also by its error code (so a spend that
    fails shows in the simulation's report instead of vanishing from the figures)."""
    error = (response.json or {}).get("error") if response.status >= 400 else None
    code = (error or {}).get("code")
    world.counts[f"{kind}_{response.status}" + (f"_{code}" if code else "")] += 1


def _till_points(world: World, store_codes: list[str]) -> None:
    """A member with points to spare shows the member code and pays part of a sale with
    points (100 points = 1 yuan): hold at the till, then the sale captures the hold."""
    from app.points.models import PointsAccount

    rich = db.session.execute(
        select(PointsAccount.member_id, PointsAccount.balance)
        .where(PointsAccount.balance >= 200)
        .order_by(PointsAccount.member_id)
    ).all()
    db.session.rollback()
    rng = world.rng
    for owner, balance in rng.sample(list(rich), min(2, len(rich))):
        store = rng.choice(store_codes)
        till = world.tills[store]
        total, lines = _amount(rng)
        points = min(balance // 100 * 100, total // 2, 500)
        if points <= 0:
            continue
        member_code, _ = issue_member_code(owner)
        shown = till.identify(member_code=member_code)
        _count_answer(world, "pos_identify_code", shown)
        if shown.status != 200:
            continue
        sale_id = world.next_id(f"{store}-S")
        held = till.hold(
            sale_id=sale_id,
            presence_token=shown.json["presence_token"],
            points=points,
            total_fen=total,
        )
        _count_answer(world, "pos_points_hold", held)
        if held.status != 201:
            continue
        event = {
            "type": "sale",
            "sale_id": sale_id,
            "occurred_at": utcnow().astimezone(SHANGHAI).isoformat(),
            "total_fen": total,
            "paid_fen": total - held.json["discount_fen"],
            "lines": lines,
            "member": {"member_id": owner},
            "redemption_id": held.json["id"],
        }
        response = till.send_events([event])
        for result in (response.json or {}).get("results", []):
            world.counts[f"pos_points_sale_{result['status']}"] += 1
        world.sales.append((store, sale_id, event["paid_fen"]))
