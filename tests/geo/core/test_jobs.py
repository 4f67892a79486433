"""Durable jobs: who owns a job, which owners are gone, and the reaper that marks their jobs interrupted."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from geo.core import jobs


@pytest.fixture
def job(conn):
    """Insert an unfinished upload row owned by ``owner``, heartbeat ``age`` seconds ago; its id."""

    def make(owner: str | None, age: float = 0.0, state: str = "running") -> int:
        return conn.execute(
            """INSERT INTO uploads (borough_code, kind, mode, dry_run, skip_invalid, file_name, file_path, size_bytes,
                                    sha256, created_by, state, owner, heartbeat_at)
               VALUES ('E09000007', 'street_furniture', 'append', true, false, 'x.gpkg', '/nonexistent', 1, 'x',
                       'test', %s, %s, now() - make_interval(secs => %s)) RETURNING id""",
            [state, owner, age],
        ).fetchone()[0]

    return make


def test_owner_names_tell_live_processes_from_gone_ones():
    assert jobs.owner_alive(jobs.owner()) is True
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        name = f"{jobs.socket.gethostname()}:{child.pid}:{jobs._start_time(child.pid)}"
        assert jobs.owner_alive(name) is True
        assert jobs.owner_alive(f"{jobs.socket.gethostname()}:{child.pid}:1") is False  # the pid, reused
    finally:
        child.kill()
        child.wait()
    assert jobs.owner_alive(name) is False
    assert jobs.owner_alive(f"another-host:{os.getpid()}:1") is None  # not ours to tell: the heartbeat says
    assert jobs.owner_alive(None) is False


def test_the_reaper_marks_only_the_jobs_whose_owner_is_gone(conn, job):
    host = jobs.socket.gethostname()
    live_elsewhere = job("another-host:1:1", age=5)
    stale_elsewhere = job("another-host:2:2", age=600)
    dead_here = job(f"{host}:999999:1", age=1)
    queued_here = job(f"{host}:999998:1", age=1, state="queued")
    mine_untracked = job(jobs.owner(), age=60)
    mine_starting = job(jobs.owner(), age=1)  # recorded a moment ago, tracked a moment later
    mine_tracked = job(jobs.owner(), age=60)
    legacy = job(None, age=1)
    another_live_process = job(f"{host}:{os.getppid()}:{jobs._start_time(os.getppid())}", age=600)
    with jobs.ACTIVE.tracking("uploads", mine_tracked):
        marked = jobs.reap(conn, stale_s=60)
    interrupted = {stale_elsewhere, dead_here, queued_here, mine_untracked, legacy}
    assert set(marked["uploads"]) >= interrupted
    assert not {live_elsewhere, mine_tracked, mine_starting, another_live_process} & set(marked["uploads"])
    states = dict(
        conn.execute(
            "SELECT id, state FROM uploads WHERE id = ANY(%s)", [[*interrupted, live_elsewhere]]
        ).fetchall()
    )
    assert {states[i] for i in interrupted} == {"interrupted"} and states[live_elsewhere] == "running"
    message = conn.execute("SELECT message FROM uploads WHERE id = %s", [dead_here]).fetchone()[0]
    assert "upload the file again" in message


def test_the_heartbeat_keeps_tracked_jobs_alive(db_url, conn, job):
    mine = job(jobs.owner(), age=3600)
    conn.commit()
    beat = jobs.Heartbeat(db_url, every=60)
    with jobs.ACTIVE.tracking("uploads", mine):
        beat.beat()
    beat.stop()
    with psycopg.connect(db_url) as fresh:
        age = fresh.execute(
            "SELECT extract(epoch FROM now() - heartbeat_at) FROM uploads WHERE id = %s", [mine]
        ).fetchone()[0]
        fresh.execute("DELETE FROM uploads WHERE id = %s", [mine])
        fresh.commit()
    assert age < 60


def test_a_final_state_is_written_on_a_fresh_connection_even_after_the_jobs_broke(db_url, conn, job):
    upload_id = job(jobs.owner(), age=1)
    conn.commit()
    status = jobs.JobStatus(db_url, "uploads", upload_id)
    status.conn.close()  # the job's own connection is gone, as after a database restart
    assert status.finish(state="failed", message="the database went away") is True
    with psycopg.connect(db_url) as fresh:
        assert fresh.execute("SELECT state FROM uploads WHERE id = %s", [upload_id]).fetchone()[0] == "failed"
        fresh.execute("DELETE FROM uploads WHERE id = %s", [upload_id])
        fresh.commit()


def test_a_job_tracked_twice_stays_alive_until_both_are_done():
    """The job queue and the job's function both track it: the inner end must not drop it."""
    active = jobs.ActiveJobs()
    active.add("uploads", 7)
    with active.tracking("uploads", 7):
        assert active.ids("uploads") == [7]
    assert active.ids("uploads") == [7]  # the queue still records the job's end
    active.discard("uploads", 7)
    assert active.ids("uploads") == []


def test_a_command_line_job_beats_while_it_runs(db_url, conn, job):
    """``beating`` (the CLI's import, report and Pipeline commands): services elsewhere see it alive."""
    import time

    mine = job(jobs.owner(), age=3600)
    conn.commit()
    with jobs.ACTIVE.tracking("uploads", mine), jobs.beating(db_url, every=0.05):
        time.sleep(0.5)
    with psycopg.connect(db_url) as fresh:
        age = fresh.execute(
            "SELECT extract(epoch FROM now() - heartbeat_at) FROM uploads WHERE id = %s", [mine]
        ).fetchone()[0]
        fresh.execute("DELETE FROM uploads WHERE id = %s", [mine])
        fresh.commit()
    assert age < 60
