"""One million members for the identify benchmark, loaded set-based once and then reused.

Phones ``150 00000000`` … ``150 00999999`` (normalised form ``15000000000`` …); each member gets
its phone identity and an empty points account, as ``create_member`` would give it. The load is
one ``INSERT … SELECT generate_series`` statement per chunk of a million (the identities and
accounts from the ids it returns); a run that finds them already there skips it, one that
stopped half way goes on from the last chunk.
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
    dsn: str,
    count: int,
    chunk: int = 1_000_000,
    progress: Callable[[str], None] | None = None,
    bulk: bool = False,
) -> tuple[int, float]:
    """Make sure ``count`` bench members exist; ``(members, seconds spent loading)``.

    Loaded in chunks of ``chunk`` members, each committed with its identities and accounts: an
    interrupted load resumes after the last chunk committed. ``bulk``: in a
    :func:`bulk_session` (the scale bench; foreign keys hold by construction).
    """
    import time

    with psycopg.connect(dsn) as conn:
        have = loaded(conn)
        if have >= count:
            return have, 0.0
        if bulk:
            bulk_session(conn)
        started = time.monotonic()
        for start in range(have, count, chunk):
            stop = min(count, start + chunk) - 1
            # one statement: the members, then their identities and accounts from the ids the
            # insert returned (a chunk commits whole, so a resumed run finds none half made)
            conn.execute(
                """
                WITH m AS (
                    INSERT INTO members (phone, source, status, marketing_opt_out, created_at,
                                         birthday)
                    SELECT %(prefix)s || lpad(g::text, 8, '0'), %(source)s, 'active', false,
                           now(), date '1970-01-01' + (g * 7 %% 15000)
                    FROM generate_series(%(start)s::int, %(stop)s::int) AS g
                    ON CONFLICT (phone) DO NOTHING
                    RETURNING id, phone
                ), i AS (
                    INSERT INTO member_identities (member_id, kind, app, external_id, created_at)
                    SELECT id, 'phone', '', phone, now() FROM m ORDER BY id
                )
                INSERT INTO points_accounts (member_id, balance, updated_at)
                SELECT id, 0, now() FROM m ORDER BY id
                """,
                {"prefix": PREFIX, "source": SOURCE, "start": start, "stop": stop},
            )
            conn.commit()
            if progress:
                progress(f"  members {stop + 1:,}/{count:,} ({time.monotonic() - started:.0f} s)")
        conn.execute("ANALYZE members")
        conn.execute("ANALYZE member_identities")
        conn.execute("ANALYZE points_accounts")
        return loaded(conn), time.monotonic() - started


def bulk_session(conn: psycopg.Connection) -> None:
    """A bulk loader's session (this connection only): no commit waits for the WAL flush, and
    triggers (foreign-key checks, key triggers) do not fire; the loader writes what they would
    have and checks the references itself. Needs a superuser (the bench's ``postgres``)."""
    conn.execute("SET synchronous_commit = off")
    conn.execute("SET session_replication_role = replica")
    conn.commit()  # the settings last the session, not only this transaction


def sample_phones(count: int, how_many: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [phone(rng.randrange(count)) for _ in range(how_many)]
