"""One million members for the identify benchmark, loaded set-based once and then reused.

Phones ``150 00000000`` … ``150 00999999`` (normalised form ``15000000000`` …); each member gets
its phone identity and an empty points account, as ``create_member`` would give it. The load is
three ``INSERT … SELECT generate_series`` statements per chunk of a million (about a minute
on a 2-core machine); a run that finds them already there skips it, one that stopped half way
goes on from the last chunk.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import psycopg

SOURCE = "bench"
PREFIX = "150"


def phone(n: int) -> str:
    return f"{PREFIX}{n:08d}"


def loaded(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM members WHERE source = %s", (SOURCE,)).fetchone()[0]


def ensure_members(
    dsn: str, count: int, chunk: int = 1_000_000, progress: Callable[[str], None] | None = None
) -> tuple[int, float]:
    """Make sure ``count`` bench members exist; ``(members, seconds spent loading)``.

    Loaded in chunks of ``chunk`` members, each committed with its identities and accounts: an
    interrupted load resumes after the last chunk committed.
    """
    import time

    with psycopg.connect(dsn) as conn:
        have = loaded(conn)
        if have >= count:
            return have, 0.0
        started = time.monotonic()
        for start in range(have, count, chunk):
            stop = min(count, start + chunk) - 1
            conn.execute(
                """
                INSERT INTO members (phone, source, status, marketing_opt_out, created_at, birthday)
                SELECT %(prefix)s || lpad(g::text, 8, '0'), %(source)s, 'active', false, now(),
                       date '1970-01-01' + (g * 7 %% 15000)
                FROM generate_series(%(start)s, %(stop)s) AS g
                ON CONFLICT (phone) DO NOTHING
                """,
                {"prefix": PREFIX, "source": SOURCE, "start": start, "stop": stop},
            )
            first = conn.execute(
                "SELECT id FROM members WHERE phone = %s", (phone(start),)
            ).fetchone()[0]
            for sql in (
                """INSERT INTO member_identities (member_id, kind, app, external_id, created_at)
                   SELECT m.id, 'phone', '', m.phone, now() FROM members m
                   WHERE m.source = %(source)s AND m.id >= %(first)s
                     AND NOT EXISTS (SELECT 1 FROM member_identities i
                                     WHERE i.member_id = m.id)""",
                """INSERT INTO points_accounts (member_id, balance, updated_at)
                   SELECT m.id, 0, now() FROM members m
                   WHERE m.source = %(source)s AND m.id >= %(first)s
                     AND NOT EXISTS (SELECT 1 FROM points_accounts a WHERE a.member_id = m.id)""",
            ):
                conn.execute(sql, {"source": SOURCE, "first": first})
            conn.commit()
            if progress:
                progress(f"  members {stop + 1:,}/{count:,} ({time.monotonic() - started:.0f} s)")
        conn.execute("ANALYZE members")
        conn.execute("ANALYZE member_identities")
        conn.execute("ANALYZE points_accounts")
        return loaded(conn), time.monotonic() - started


def sample_phones(count: int, how_many: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [phone(rng.randrange(count)) for _ in range(how_many)]
