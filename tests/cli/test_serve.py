"""``connectivity serve`` as root gives up root before it serves, and connects as the application role."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from geo.core.settings import DatabaseSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


@pytest.fixture
def served(app_db_url, db_url):
    # Not below pytest's tmp_path (root's alone): the service's user must reach its upload folder.
    tmp_path = Path(tempfile.mkdtemp(prefix="connectivity-serve-"))
    tmp_path.chmod(0o755)
    # A link the service's user could have planted: root must not hand its target over.
    secret = tmp_path / "root-only"
    secret.write_text("root's")
    secret.chmod(0o600)
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "planted").symlink_to(secret)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": app_db_url,
        "CONNECTIVITY_DB_OWNER_URL": db_url,
        "CONNECTIVITY_UPLOAD_DIR": str(tmp_path / "uploads"),
        "CONNECTIVITY_API_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--no-demo"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"serve did not start:\n{process.communicate()[0]}")
        time.sleep(0.2)
    yield process, tmp_path / "uploads"
    process.terminate()
    out = process.communicate(timeout=20)[0]
    if os.geteuid() == 0:  # the upload folder held a file: its name must not become the user's
        assert "Running as connectivity\n" in out, out
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_serve_runs_as_an_unprivileged_user_that_cannot_read_the_database_files(served, db_url):
    process, uploads = served
    if os.geteuid() != 0:
        assert uid_of(process.pid) == os.geteuid()
        return
    service = pwd.getpwnam("connectivity")
    assert uid_of(process.pid) == service.pw_uid
    assert uploads.stat().st_uid == service.pw_uid and uploads.stat().st_mode & 0o777 == 0o700
    assert (uploads.parent / "root-only").stat().st_uid == 0  # the planted link was not followed
    import psycopg

    with psycopg.connect(db_url) as conn:  # its connections are the application role's
        roles = {r[0] for r in conn.execute(
            "SELECT usename FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )}  # fmt: skip
    assert "connectivity_app" in roles
    cluster = Path(DatabaseSettings().dir)
    password = cluster / "password"
    if password.exists():  # the embedded cluster: its superuser's password is root's alone
        assert password.stat().st_uid == 0 and password.stat().st_mode & 0o077 == 0
        probe = subprocess.run(
            ["runuser", "-u", "connectivity", "--", "cat", str(password)], capture_output=True
        )
        assert probe.returncode != 0 and probe.stdout == b""
