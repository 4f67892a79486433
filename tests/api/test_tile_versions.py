"""Cached tiles without a database round trip, and data versions that still follow every write."""

import asyncio
import time

import psycopg
from fastapi.testclient import TestClient

from api.app import create_app
from geo.db.versions import KnownVersions

TILE = "/tiles/street_furniture/14/8186/5448.mvt"


def wait_until(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def connections_taken(client):
    return client.app.state.pool.get_stats().get("requests_num", 0)


def test_a_cached_tile_takes_no_database_connection(settings):
    with TestClient(create_app(settings)) as client:
        wait_until(lambda: client.app.state.versions.listening and client.app.state.summaries_startup.done())
        first = client.get(TILE)
        assert first.status_code == 200 and first.content
        before = connections_taken(client)
        again = client.get(TILE)
        assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
        assert client.get(TILE, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
        assert connections_taken(client) == before


def test_a_write_elsewhere_reaches_the_etag_through_the_notice(settings, db_url):
    with TestClient(create_app(settings)) as client:
        wait_until(lambda: client.app.state.versions.listening)
        etag = client.get(TILE).headers["etag"]
        assert client.get(TILE).headers["etag"] == etag  # now known in memory
        # Another process writes (as the CLI or another worker would): the version moves on.
        with psycopg.connect(db_url, autocommit=True) as other:
            other.execute("UPDATE data_versions SET version = version + 1 WHERE layer = 'assets'")
            version = other.execute("SELECT version FROM data_versions WHERE layer = 'assets'").fetchone()[0]
        wait_until(lambda: client.get(TILE).headers["etag"] != etag)
        assert client.get(TILE).headers["etag"] == f'W/"street_furniture-{version}"'


def test_without_the_listener_every_lookup_reads_the_database():
    versions = KnownVersions()
    reads = []

    async def read():
        reads.append(1)
        return "7"

    async def twice():
        return [await versions.get("k", read), await versions.get("k", read)]

    assert asyncio.run(twice()) == ["7", "7"] and len(reads) == 2


def test_a_read_overtaken_by_a_notice_is_not_kept():
    versions = KnownVersions()
    versions.listening = True
    values = iter(["old", "new", "newer"])

    async def read_during_a_write():
        value = next(values)
        versions.forget()  # the notice of a commit arrives while this read is under way
        return value

    async def read():
        return next(values)

    async def run():
        first = await versions.get("k", read_during_a_write)
        second = await versions.get("k", read)
        third = await versions.get("k", read)
        return first, second, third

    # "old" may be stale, so it is not kept; "new" is read after the notice and kept.
    assert asyncio.run(run()) == ("old", "new", "new")


def test_a_version_is_read_again_after_its_maximum_age():
    versions = KnownVersions(max_age=0.05)
    versions.listening = True
    values = iter(["1", "2"])

    async def read():
        return next(values)

    async def run():
        first = await versions.get("k", read)
        again = await versions.get("k", read)
        await asyncio.sleep(0.06)
        return first, again, await versions.get("k", read)

    assert asyncio.run(run()) == ("1", "1", "2")
