"""Shared by the benchmarks: the machine, a London-scale database, medians."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from geo.core.settings import DatabaseSettings
from geo.db import database
from geo.demo import load_demo
from geo.reference import model

BENCH_DB = "connectivity_bench_london"


def machine() -> str:
    """One line about the machine and software the figures come from."""
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0]
    return (
        f"{dt.date.today()} {platform.node()}: {os.cpu_count()} x {cpu}, {mem:.0f} GiB RAM, "
        f"{platform.platform()}, Python {platform.python_version()}, load average {load:.2f}"
    )


def server_url() -> str:
    """The PostGIS server (DATABASE_URL or the embedded cluster, started if needed)."""
    return database.owner_url(DatabaseSettings())


def with_dbname(url: str, name: str) -> str:
    """The same server, another database."""
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def london_database(progress: Callable[[str, int, int], None] | None = None) -> str:
    """A database with the ``--scale london`` demo (built once, then reused); its URL."""
    server = server_url()
    url = with_dbname(server, BENCH_DB)
    with psycopg.connect(with_dbname(server, "postgres"), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
    with psycopg.connect(url) as conn:
        model.migrate(conn)
        if conn.execute("SELECT count(*) FROM assets").fetchone()[0] == 0:  # type: ignore[index]
            load_demo(conn, "london", progress or (lambda step, done, total: None))
    return url


def median_time(work: Callable[[], Any], runs: int = 3) -> tuple[float, list[float]]:
    """Median wall time of ``runs`` calls, and all of them."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def gdal_version() -> str:
    """The ogr2ogr on the PATH."""
    return subprocess.run(["ogr2ogr", "--version"], capture_output=True, text=True).stdout.strip()
