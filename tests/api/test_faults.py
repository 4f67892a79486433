"""Faults: the database stopped and started under traffic, the service killed in the middle of its jobs.

The database fault runs on a cluster of its own (stopping the shared one would stop every
other test); the kills on a service process of their own.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from servers import serving

from geo.core.settings import DatabaseSettings, Settings
from geo.db.cluster import EmbeddedCluster, _port_is_free
from geo.reference import model
from geo.reference.boroughs import load_boroughs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def own_cluster():
    """A throwaway PostGIS cluster, migrated, with the boroughs."""
    folder = Path(tempfile.mkdtemp(prefix="connectivity-fault-"))
    port = next(p for p in range(56500, 57000) if _port_is_free(p))
    cluster = EmbeddedCluster(DatabaseSettings(dir=folder / "pg", port=port, name="faults"))
    owner_url = cluster.start()
    with psycopg.connect(owner_url) as conn:
        model.migrate(conn)
        load_boroughs(conn)
        conn.commit()
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.base, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


class Traffic:
    """Clients requesting database-backed pages without pause, recording every answer."""

    PATHS = ("/health", "/boroughs", "/collections/boroughs/items?limit=2", "/collections/boroughs")

    def __init__(self, base: str, clients: int = 4) -> None:
        self.base = base
        self.answers: list[tuple[float, float, int, str, str | None]] = []  # sent, took, status, type, retry
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def _run(self, n: int) -> None:
        with httpx.Client(base_url=self.base, timeout=15) as client:
            i = n
            while not self._stop.is_set():
                path = self.PATHS[i % len(self.PATHS)]
                i += 1
                sent = time.monotonic()
                try:
                    r = client.get(path)
                    self.answers.append(
                        (
                            sent,
                            time.monotonic() - sent,
                            r.status_code,
                            r.headers.get("content-type", ""),
                            r.headers.get("retry-after"),
                        )
                    )
                except httpx.HTTPError as exc:
                    self.errors.append(f"{path}: {type(exc).__name__}: {exc}")
                time.sleep(0.02)

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(20)


def test_database_restart_under_traffic_is_503s_then_recovery_within_5_s(own_cluster):
    settings = Settings(db=DatabaseSettings(url=own_cluster.app_url()))
    with serving(settings) as base, Traffic(base) as traffic:
        time.sleep(2)
        assert own_cluster.stop()
        stopped = time.monotonic()
        time.sleep(4)
        own_cluster.start()
        started = time.monotonic()
        time.sleep(6)
    answers = traffic.answers
    assert traffic.errors == [], traffic.errors[:5]  # every request got an answer: no reset, no timeout
    assert [a for a in answers if a[2] >= 500 and a[2] != 503] == []  # never a 500
    down = [a for a in answers if stopped + 0.5 < a[0] < started - 0.5]
    assert down, "no request while the database was down"
    assert all(a[2] == 503 and a[3].startswith("application/problem+json") and a[4] for a in down), down[:5]
    assert max(a[1] for a in down) < 1.5, "a request waited too long while the database was down"
    back = [a for a in answers if a[0] > started and a[2] == 200]
    assert back, "no success after the database came back"
    recovery = min(a[0] + a[1] for a in back) - started
    assert recovery < 5, f"recovered {recovery:.1f} s after the database did"
    after = [a for a in answers if a[0] > started + 5]
    assert after and all(a[2] == 200 for a in after)
    slowest = max(a[1] for a in down)
    summary = (
        f"{len(down)} answers while down (all 503, slowest {slowest:.2f} s), recovered in {recovery:.2f} s"
    )
    print(f"\nrestart: {summary}")  # noqa: T201


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """The API under uvicorn in a process of its own, to be killed."""

    def __init__(self, app_url: str, upload_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DATABASE_URL": app_url, "CONNECTIVITY_UPLOAD_DIR": str(upload_dir)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--port", str(self.port), "--log-level", "warning"],
            env=env, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None and time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the service process alone; what it started (the job's own process) must die with it."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        deadline = time.monotonic() + 10
        while True:
            try:
                os.killpg(self.process.pid, 0)  # anyone left of its session?
            except ProcessLookupError:
                return
            assert time.monotonic() < deadline, "processes the service started outlived it"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)


def wait_for(check, seconds: float = 60, every: float = 0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


def test_killed_during_an_upload_and_a_report_then_restarted(isolated, camden_stops, tmp_path):
    import geopandas as gpd
    import numpy as np
    import pyogrio

    uploads = Path(tempfile.mkdtemp(prefix="connectivity-kill-"))
    # A file large enough to be caught in the middle: Camden's stops spread over 150,000 rows.
    rng = np.random.default_rng(1)
    frame = camden_stops.sample(150_000, replace=True, random_state=1).reset_index(drop=True)
    frame["UNITNO"] = [f"K{i:06d}" for i in range(len(frame))]
    x = frame.geometry.x.to_numpy() + rng.uniform(-20, 20, len(frame))
    y = frame.geometry.y.to_numpy() + rng.uniform(-20, 20, len(frame))
    frame = frame.set_geometry(gpd.points_from_xy(x, y), crs=27700)
    path = tmp_path / "big.gpkg"
    pyogrio.write_dataframe(frame, path, layer="lamps")
    with psycopg.connect(isolated.url) as conn:
        before = conn.execute("SELECT count(*), coalesce(sum(version), 0) FROM assets").fetchone()
    auth = isolated.auth
    blocker = psycopg.connect(isolated.url)
    service = Service(isolated.app_url, uploads)
    try:
        with open(path, "rb") as f:
            sent = httpx.post(
                f"{service.base}/uploads", files={"file": (path.name, f)},
                data={"borough": "E09000007", "kind": "street_furniture"}, headers=auth("camden"), timeout=120,
            )  # fmt: skip
        assert sent.status_code == 202, sent.text
        upload_id = sent.json()["id"]
        # Held until the kill: the job, still reading 150,000 rows, then waits on it at its apply
        # step, inside its transaction. So the kill lands in the middle of the job on any machine.
        blocker.execute("LOCK TABLE loads IN ACCESS EXCLUSIVE MODE")
        report = httpx.post(
            f"{service.base}/coverage/reports",
            json={"area": {"boroughs": ["E09000007", "E09000001", "E09000033"]}, "demand": "grid", "cell_size": 50},
            headers=auth("operator"), timeout=60,
        )  # fmt: skip
        assert report.status_code == 201, report.text
        report_id = report.json()["id"]

        def waiting_to_apply() -> bool:
            with psycopg.connect(isolated.url) as conn:
                up = conn.execute("SELECT state, message FROM uploads WHERE id = %s", [upload_id]).fetchone()
                assert up[0] in ("queued", "running"), f"the upload ended before it could be killed: {up}"
                waits = conn.execute(
                    """SELECT count(*) FROM pg_stat_activity
                       WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%%INSERT INTO loads%%'"""
                ).fetchone()[0]
            return up[0] == "running" and waits > 0

        wait_for(waiting_to_apply, 120)
        service.kill()
    finally:
        service.stop()
        blocker.rollback()
        blocker.close()
    restarted = Service(isolated.app_url, uploads)
    try:
        upload = httpx.get(f"{restarted.base}/uploads/{upload_id}", headers=auth("camden")).json()
        assert upload["state"] == "interrupted" and "upload the file again" in upload["message"]
        record = httpx.get(f"{restarted.base}/coverage/reports/{report_id}", headers=auth("operator")).json()
        if record["state"] != "done":  # it may have finished before the kill
            assert record["state"] == "interrupted" and "request the report again" in record["message"]
            results = httpx.get(
                f"{restarted.base}/coverage/reports/{report_id}/gaps.geojson", headers=auth("operator")
            )
            assert results.status_code == 409 and "interrupted" in results.json()["detail"]
        with psycopg.connect(isolated.url) as conn:
            assert conn.execute("SELECT count(*), coalesce(sum(version), 0) FROM assets").fetchone() == before
            assert (
                conn.execute("SELECT count(*) FROM uploads WHERE state IN ('queued', 'running')").fetchone()[
                    0
                ]
                == 0
            )
        # The same file again works.
        with open(path, "rb") as f:
            again = httpx.post(
                f"{restarted.base}/uploads", files={"file": (path.name, f)},
                data={"borough": "E09000007", "kind": "street_furniture"}, headers=auth("camden"), timeout=120,
            )  # fmt: skip
        assert again.status_code == 202, again.text

        def ended():
            state = httpx.get(f"{restarted.base}/uploads/{again.json()['id']}", headers=auth("camden")).json()
            return state if state["state"] not in ("queued", "running") else None

        final = wait_for(ended, 180, 0.5)
        assert final["state"] == "applied", final
        assert final["counts"]["new"] + final["counts"]["changed"] >= 100_000
    finally:
        restarted.stop()
        shutil.rmtree(uploads, ignore_errors=True)
