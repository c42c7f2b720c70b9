"""Which database a ``--db`` value names: ``open_store`` picks the backend,
and a PostgreSQL URL names the same database as its conninfo."""

from __future__ import annotations

import psycopg
from twisted.trial.unittest import TestCase

from muca.store import open_store
from muca.store.postgres import PostgresStore
from muca.store.sqlite import SQLiteStore
from tests.store.support import PostgresBackend, message
from tests.support import postgres as pgsupport


class OpenStoreTests(TestCase):
    """``open_store`` picks the backend from the --db value."""

    def test_none_means_no_store(self) -> None:
        self.assertIsNone(open_store("none"))

    def test_urls_and_key_value_strings_mean_postgresql(self) -> None:
        for spec in (
            "postgresql://muca@db.example/chat",
            "postgres://db.example/chat",
            "host=db.example dbname=chat",
        ):
            store = open_store(spec)
            self.assertIsInstance(store, PostgresStore, spec)

    def test_anything_else_is_an_sqlite_path(self) -> None:
        store = open_store("/var/lib/muca/history.db")
        self.assertIsInstance(store, SQLiteStore)
        assert isinstance(store, SQLiteStore)
        self.assertEqual(store.path, "/var/lib/muca/history.db")


class PostgresURLTests(PostgresBackend, TestCase):
    """A URL and a conninfo string for one real PostgreSQL database."""

    async def test_a_url_names_the_same_database(self) -> None:
        store = await self.opened()
        await store.append([message(1)])
        dbname = psycopg.conninfo.conninfo_to_dict(self.conninfo)["dbname"]
        url = pgsupport.postgres_server().url(str(dbname))
        by_url = PostgresStore(url)
        await by_url.open()
        self.addCleanup(by_url.close)
        self.assertEqual(by_url.last_id(), 1)
