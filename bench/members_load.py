"""One million members for the identify benchmark, loaded set-based once and then reused.

Phones ``150 00000000`` … ``150 00999999`` (normalised form ``15000000000`` …); each member gets
its phone identity and an empty points account, as ``create_member`` would give it. The load is
three ``INSERT … SELECT generate_series`` statements (about a minute on a 2-core machine); a run
that finds them already there skips it.
"""

from __future__ import annotations

import random

import psycopg

SOURCE = "bench"
PREFIX = "150"


def phone(n: int) -> str:
    return f"{PREFIX}{n:08d}"


def loaded(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM members WHERE source = %s", (SOURCE,)).fetchone()[0]


def ensure_members(dsn: str, count: int) -> tuple[int, float]:
    """Make sure ``count`` bench members exist; ``(members, seconds spent loading)``."""
    import time

    with psycopg.connect(dsn) as conn:
        have = loaded(conn)
        if have >= count:
            return have, 0.0
        started = time.monotonic()
        conn.execute(
            """
            INSERT INTO members (phone, source, status, marketing_opt_out, created_at)
            SELECT %(prefix)s || lpad(g::text, 8, '0'), %(source)s, 'active', false, now()
            FROM generate_series(%(start)s, %(stop)s) AS g
            ON CONFLICT (phone) DO NOTHING
            """,
            {"prefix": PREFIX, "source": SOURCE, "start": have, "stop": count - 1},
        )
        conn.execute(
            """
            INSERT INTO member_identities (member_id, kind, app, external_id, created_at)
            SELECT m.id, 'phone', '', m.phone, now() FROM members m
            WHERE m.source = %(source)s
              AND NOT EXISTS (SELECT 1 FROM member_identities i WHERE i.member_id = m.id)
            """,
            {"source": SOURCE},
        )
        conn.execute(
            """
            INSERT INTO points_accounts (member_id, balance, updated_at)
            SELECT m.id, 0, now() FROM members m
            WHERE m.source = %(source)s
              AND NOT EXISTS (SELECT 1 FROM points_accounts a WHERE a.member_id = m.id)
            """,
            {"source": SOURCE},
        )
        conn.commit()
        conn.execute("ANALYZE members")
        conn.execute("ANALYZE member_identities")
        conn.execute("ANALYZE points_accounts")
        return loaded(conn), time.monotonic() - started


def sample_phones(count: int, how_many: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [phone(rng.randrange(count)) for _ in range(how_many)]
