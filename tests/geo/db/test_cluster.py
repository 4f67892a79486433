import os
import shutil
import socket
from urllib.parse import quote

import psycopg
import pytest

from geo.core.settings import DatabaseSettings
from geo.db.cluster import EmbeddedCluster


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postmaster_pid(cluster):
    return int((cluster.data_dir / "postmaster.pid").read_text().split()[0])


@pytest.mark.slow
def test_embedded_cluster_starts_is_reused_and_stops(tmp_path):
    settings = DatabaseSettings(dir=tmp_path / "pg", port=free_port(), name="demo_db")
    cluster = EmbeddedCluster(settings)
    try:
        url = cluster.start()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == "demo_db"
            server_user = conn.execute(
                "SELECT usename FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            ).fetchone()[0]
            assert server_user == "postgres"
        pid = postmaster_pid(cluster)
        if os.geteuid() == 0:
            # As root the server runs as the unprivileged OS user.
            assert os.stat(f"/proc/{pid}").st_uid != 0
            assert (cluster.data_dir).stat().st_uid == os.stat(f"/proc/{pid}").st_uid
        # Starting again reuses the running server and its data.
        assert cluster.start() == url
        assert postmaster_pid(cluster) == pid
        assert cluster.status().running and cluster.status().port == settings.port
        # Loopback password authentication: a wrong password is refused.
        assert quote(cluster.password(), safe="") in url
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url.replace(quote(cluster.password(), safe=""), "wrong"), connect_timeout=5)
        assert cluster.stop() is True
        assert not cluster.status().running
        assert cluster.stop() is False
        # Stopping leaves nothing broken: it starts again on the same data.
        cluster.start()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        cluster.stop()
        shutil.rmtree((tmp_path / "pg").resolve(), ignore_errors=True)
