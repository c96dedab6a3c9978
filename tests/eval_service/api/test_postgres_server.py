"""The test PostgreSQL server is real, and has the row locking the ledger's claim relies on."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import create_engine, text

from tests.fixtures.postgres import PostgresCluster

CLAIM = "SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"


def test_sqlalchemy_url_reaches_a_real_server(postgres_url):
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        assert int(conn.execute(text("SHOW server_version_num")).scalar_one()) >= 150000
        assert conn.execute(text("SHOW fsync")).scalar_one() == "off"
        assert conn.execute(text("SHOW timezone")).scalar_one() != "UTC"
        conn.execute(text("CREATE TABLE t (id serial PRIMARY KEY, payload jsonb NOT NULL)"))
        conn.execute(text("""INSERT INTO t (payload) VALUES ('{"acc": 0.5}')"""))
        assert conn.execute(text("SELECT payload->>'acc' FROM t")).scalar_one() == "0.5"
    engine.dispose()


def test_each_test_gets_its_own_empty_database(postgres_url, postgres_cluster: PostgresCluster):
    other = postgres_cluster.create_database()
    assert other != postgres_url
    engine = create_engine(other)
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar_one()
    assert tables == 0
    engine.dispose()
    postgres_cluster.drop_database(other.rsplit("/", 1)[1])


def test_template_copies_carry_the_prepared_schema(postgres_cluster: PostgresCluster):
    def setup(url: str) -> None:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE prepared (id int PRIMARY KEY)"))
            conn.execute(text("INSERT INTO prepared VALUES (7)"))
        engine.dispose()

    tpl = postgres_cluster.create_template("duet_tpl_check", setup)
    copies = [postgres_cluster.create_database(template=tpl) for _ in range(2)]
    for url in copies:
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM prepared")).scalar_one() == 7
        engine.dispose()
        postgres_cluster.drop_database(url.rsplit("/", 1)[1])
    postgres_cluster.drop_database(tpl)


def test_concurrent_skip_locked_claims_get_different_rows(postgres_url):
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute("CREATE TABLE jobs (id int PRIMARY KEY, status text NOT NULL)")
        setup.execute("INSERT INTO jobs SELECT g, 'queued' FROM generate_series(1, 3) g")

    a = psycopg.connect(dsn)  # each holds its claim in an open transaction, as a claimer does
    b = psycopg.connect(dsn)
    c = psycopg.connect(dsn)
    try:
        first = a.execute(CLAIM).fetchone()
        second = b.execute(CLAIM).fetchone()
        assert first == (1,)
        assert second == (2,), "the second claimer skipped the locked row and got the next job"

        # Without SKIP LOCKED the second claimer would wait on (or, here, fail at) the first's row.
        c.execute("SET lock_timeout = '100ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            c.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE")
        c.rollback()

        # A committed claim frees nothing for the others; a rolled-back one hands its row on.
        a.execute("UPDATE jobs SET status = 'running' WHERE id = 1")
        a.commit()
        b.rollback()
        assert c.execute(CLAIM).fetchone() == (2,)
    finally:
        for conn in (a, b, c):
            conn.close()
