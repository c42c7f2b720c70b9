"""``python -m bench --workload search``: search over a generated history.

A database of ``--messages`` messages (100,000 by default; the issue's
figure is 1,000,000) is made in SQLite, and on PostgreSQL when
``--search-postgres`` gives a connection string: words drawn from a Zipf
distribution over a vocabulary of 20,000 made-up words (so a few are in
most messages and most are rare), one message in ten Japanese or Chinese
text. Then, through the store's own ``search`` on its database thread:

- p50 and p95 query time for common words, rare words, prefixes, phrases
  and CJK parts, a 20-result page each (the target: p95 at most 50 ms on
  SQLite);
- the database's size with and without the index (target: at most 2.5×);
- the index's cost on the message path: the database thread's CPU per
  message stored, in batches of 256 as the server writes them, with the
  index and without it (target: at most 1.3×).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from muca.store import sql
from muca.store.base import ChatMessage
from muca.store.search import parse
from muca.store.sqlite import DIALECT as SQLITE

#: Messages stored per transaction (the SQLite store's ingest batch).
BATCH = 256
#: Queries timed per kind.
QUERIES = 40
VOCABULARY = 20_000
KANJI = "東京大阪京都会議資料予定確認今日明日来週作業開発設計試験報告問題解決方法" * 2
KANA = "のにをはがでとへもやからまでよりですますしたいるあるなるする"


@dataclasses.dataclass
class SearchFigures:
    """One backend's figures."""

    backend: str
    messages: int
    query_ms: dict[str, tuple[float, float]]  # kind: (p50, p95)
    bytes_with_index: int
    bytes_without_index: int
    cpu_us_per_message_indexed: float
    cpu_us_per_message_plain: float

    @property
    def size_ratio(self) -> float:
        return self.bytes_with_index / max(1, self.bytes_without_index)

    @property
    def cpu_ratio(self) -> float:
        return self.cpu_us_per_message_indexed / max(
            1e-9, self.cpu_us_per_message_plain
        )


def _word(rank: int) -> str:
    # Made-up words, stable for a rank: consonant-vowel syllables.
    letters = "bcdfghjklmnprstvz"
    vowels = "aeiou"
    out = []
    n = rank + 7
    while n:
        out.append(letters[n % 17] + vowels[(n // 17) % 5])
        n //= 85
    return "".join(out)


def generate(count: int, seed: int = 1) -> list[ChatMessage]:
    """``count`` broadcasts in the default room, ids 1 to ``count``."""
    rng = random.Random(seed)
    # Cumulative once: choices() would sum the weights again for each call.
    cumulative = list(itertools.accumulate(1 / (r + 1) for r in range(VOCABULARY)))
    words = [_word(r) for r in range(VOCABULARY)]
    texts: list[str] = []
    for _ in range(count):
        if rng.random() < 0.1:
            chars = [
                rng.choice(KANJI) if rng.random() < 0.6 else rng.choice(KANA)
                for _ in range(rng.randint(8, 30))
            ]
            texts.append("".join(chars))
        else:
            texts.append(
                " ".join(
                    rng.choices(words, cum_weights=cumulative, k=rng.randint(3, 20))
                )
            )
    return [
        ChatMessage(i, 1_800_000_000_000 + i, f"u{i % 500}", "ALL", (), t, None, "")
        for i, t in enumerate(texts, 1)
    ]


def queries(seed: int = 2) -> dict[str, list[str]]:
    """The queries of each kind."""
    rng = random.Random(seed)
    common = [_word(r) for r in range(10)]
    rare = [_word(r) for r in range(5000, 20000, 397)]
    return {
        "common word": [rng.choice(common) for _ in range(QUERIES)],
        "rare word": [rng.choice(rare) for _ in range(QUERIES)],
        "prefix": [_word(rng.randrange(100, 3000))[:4] + "*" for _ in range(QUERIES)],
        "phrase": [
            f'"{_word(rng.randrange(0, 50))} {_word(rng.randrange(0, 50))}"'
            for _ in range(QUERIES)
        ],
        "common + rare": [
            f"{rng.choice(common)} {rng.choice(rare)}" for _ in range(QUERIES)
        ],
        "cjk part": [
            "".join(rng.choice(KANJI) for _ in range(3)) for _ in range(QUERIES)
        ],
    }


def _timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def _sqlite_fill(path: str, messages: list[ChatMessage], indexed: bool) -> float:
    """Store ``messages`` in a new SQLite file in batches; the thread's CPU
    seconds per message (microseconds)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("BEGIN")
    sql.create_or_check(db.cursor(), SQLITE)
    db.execute("COMMIT")
    if not indexed:
        for trigger in ("insert", "delete", "update"):
            db.execute(f"DROP TRIGGER muca_search_{trigger}")
        db.execute("DROP TABLE muca_search_words")
        db.execute("DROP TABLE muca_search_cjk")
    cpu = 0.0
    for start in range(0, len(messages), BATCH):
        batch = messages[start : start + BATCH]
        # One spool line (an array of messages) in an array of lines.
        line = "[" + ",".join(_line(m) for m in batch) + "]"
        before = time.thread_time()
        db.execute("BEGIN IMMEDIATE")
        sql.insert_json(db.cursor(), "[" + line + "]")
        db.execute("COMMIT")
        cpu += time.thread_time() - before
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return cpu / len(messages) * 1e6


def _line(message: ChatMessage) -> str:
    return json.dumps(
        [
            message.id,
            message.ts,
            message.sender,
            message.kind,
            [],
            message.text,
            message.nickname,
            message.room,
        ],
        ensure_ascii=False,
    )


def sqlite_figures(count: int, report: Callable[[str], None]) -> SearchFigures:
    """Generate, store twice (with and without the index), time queries."""
    directory = tempfile.mkdtemp(prefix="muca-bench-search-")
    try:
        report(f"generating {count:,} messages")
        messages = generate(count)
        plain = os.path.join(directory, "plain.db")
        indexed = os.path.join(directory, "indexed.db")
        report("storing them without the index")
        cpu_plain = _sqlite_fill(plain, messages, indexed=False)
        report("storing them with the index")
        cpu_indexed = _sqlite_fill(indexed, messages, indexed=True)
        del messages
        db = sqlite3.connect(indexed, isolation_level=None)
        times: dict[str, tuple[float, float]] = {}
        for kind, texts in queries().items():
            samples = []
            for text in texts:
                query = parse(text)
                samples.append(
                    _timed(
                        lambda q=query: sql.search(
                            db.cursor(),
                            SQLITE,
                            q,
                            None,
                            False,
                            [""],
                            None,
                            sql.NO_UPPER_BOUND,
                            20,
                        )
                    )
                )
            times[kind] = _percentiles(samples)
            report(f"{kind}: p50 {times[kind][0]:.1f} ms, p95 {times[kind][1]:.1f} ms")
        db.close()
        return SearchFigures(
            "sqlite",
            count,
            times,
            os.path.getsize(indexed),
            os.path.getsize(plain),
            cpu_indexed,
            cpu_plain,
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def postgres_figures(
    conninfo: str, count: int, report: Callable[[str], None]
) -> SearchFigures:
    """The same on the PostgreSQL database ``conninfo`` (its muca_ tables
    are dropped first and at the end)."""
    import psycopg

    from muca.store.postgres import DIALECT as POSTGRES

    messages = generate(count)

    def fill(indexed: bool) -> tuple[float, int]:
        with psycopg.connect(conninfo, autocommit=True) as db:
            for (name,) in db.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'muca%'"
            ).fetchall():
                db.execute(f"DROP TABLE IF EXISTS {name} CASCADE")
        with psycopg.connect(conninfo) as db:
            with db.cursor() as cursor:
                sql.create_or_check(cursor, POSTGRES)
                if not indexed:
                    cursor.execute("DROP TABLE muca_search")
            db.commit()
            dialect = (
                POSTGRES if indexed else dataclasses.replace(POSTGRES, full_text="none")
            )
            cpu = 0.0
            for start in range(0, len(messages), BATCH):
                before = time.thread_time()
                with db.cursor() as cursor:
                    sql.insert(cursor, dialect, messages[start : start + BATCH])
                db.commit()
                cpu += time.thread_time() - before
            size = db.execute(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)"
                " FROM pg_class AS c WHERE c.relname LIKE 'muca%'"
                " AND c.relkind = 'r'"
            ).fetchone()[0]
        return cpu / count * 1e6, int(size)

    report("PostgreSQL: storing without the index")
    cpu_plain, size_plain = fill(False)
    report("PostgreSQL: storing with the index")
    cpu_indexed, size_indexed = fill(True)
    times: dict[str, tuple[float, float]] = {}
    with psycopg.connect(conninfo) as db:
        db.execute("ANALYZE")
        for kind, texts in queries().items():
            samples = []
            for text in texts:
                query = parse(text)
                with db.cursor() as cursor:
                    samples.append(
                        _timed(
                            lambda c=cursor, q=query: sql.search(
                                c,
                                POSTGRES,
                                q,
                                None,
                                False,
                                [""],
                                None,
                                sql.NO_UPPER_BOUND,
                                20,
                            )
                        )
                    )
            times[kind] = _percentiles(samples)
            report(
                f"PostgreSQL {kind}: p50 {times[kind][0]:.1f} ms,"
                f" p95 {times[kind][1]:.1f} ms"
            )
    return SearchFigures(
        "postgresql", count, times, size_indexed, size_plain, cpu_indexed, cpu_plain
    )


def format_figures(figures: list[SearchFigures]) -> str:
    """The figures as a table, one row per backend and query kind."""
    lines = []
    for f in figures:
        lines.append(
            f"{f.backend}, {f.messages:,} messages: database"
            f" {f.bytes_with_index / 2**20:.1f} MB with the index,"
            f" {f.bytes_without_index / 2**20:.1f} MB without ({f.size_ratio:.2f}×);"
            f" CPU per message stored {f.cpu_us_per_message_indexed:.1f} µs with,"
            f" {f.cpu_us_per_message_plain:.1f} µs without ({f.cpu_ratio:.2f}×)"
        )
        for kind, (p50, p95) in f.query_ms.items():
            lines.append(f"  {kind:<14} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms")
    return "\n".join(lines)


def run(messages: int, postgres: str | None, report: Callable[[str], None]) -> str:
    """Every figure, as the table and then as JSON."""
    figures = [sqlite_figures(messages, report)]
    if postgres:
        figures.append(postgres_figures(postgres, messages, report))
    document = json.dumps(
        [
            {
                **dataclasses.asdict(f),
                "size_ratio": round(f.size_ratio, 3),
                "cpu_ratio": round(f.cpu_ratio, 3),
            }
            for f in figures
        ],
        indent=1,
    )
    return format_figures(figures) + "\n" + document
