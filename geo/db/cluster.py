"""The embedded PostGIS cluster the project runs for itself when no ``DATABASE_URL`` is given.

Its data live under ``var/pg`` (git-ignored). ``initdb`` and ``postgres`` refuse to run as
root, so as root the server runs as an unprivileged OS user (``postgres`` by default, which
Debian's packages create); otherwise it runs as the current user. It listens on a loopback
port with password authentication (the password is generated once and kept in
``var/pg/password``), and on a Unix socket in ``var/pg/run`` that only its owner can reach.

Two roles besides the superuser (:func:`geo.db.roles.ensure_roles`): ``connectivity_owner``
owns the schema and runs the migrations; ``connectivity_app``, with its own generated password
(``var/pg/app-password``), is what the service connects as: it reads and writes the data but
cannot alter tables, disable triggers, or change history and audit rows.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from geo.core.errors import Unavailable
from geo.core.settings import DatabaseSettings

FIRST_PORT = 55432
# Written to postgresql.auto.conf at initdb. Durability stays at PostgreSQL's defaults.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "2GB",
    # JIT compiles short tile and feature queries for longer than they run.
    "jit": "off",
    "log_min_duration_statement": "-1",
}


class ClusterError(Unavailable):
    """The embedded cluster cannot be set up, started or stopped; the message says why."""


@dataclass(frozen=True)
class ClusterStatus:
    """Whether the embedded cluster is initialised and running, and where."""

    initialised: bool
    running: bool
    port: int | None
    directory: Path
    bin_dir: Path | None


def find_pg_bin() -> Path:
    """The newest PostgreSQL ``bin`` directory whose version has PostGIS installed."""
    candidates = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        version = initdb.parent.parent.name
        if Path(f"/usr/share/postgresql/{version}/extension/postgis.control").exists():
            candidates.append((int(version) if version.isdigit() else 0, initdb.parent))
    if not candidates:
        raise ClusterError(
            "PostgreSQL with PostGIS is not installed: run `make setup` as root "
            "(it installs postgresql-15-postgis-3 from apt), or set DATABASE_URL."
        )
    return max(candidates)[1]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class EmbeddedCluster:
    """A PostgreSQL + PostGIS cluster owned by the project, under one directory."""

    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self.root = Path(settings.dir).absolute()
        self.as_root = os.geteuid() == 0

    # Paths -------------------------------------------------------------------------------------
    @property
    def base(self) -> Path:
        """The real cluster directory (``var/pg`` may be a link to it)."""
        return self.root.resolve()

    @property
    def data_dir(self) -> Path:
        """PGDATA."""
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        """The Unix socket directory (only the cluster's owner can enter it)."""
        return self.base / "run"

    @property
    def log_file(self) -> Path:
        """The server log."""
        return self.base / "server.log"

    @property
    def _port_file(self) -> Path:
        return self.root / "port"

    @property
    def _password_file(self) -> Path:
        return self.root / "password"

    @property
    def _app_password_file(self) -> Path:
        return self.root / "app-password"

    # Running commands as the cluster's OS user ----------------------------------------------------
    def _run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        if self.as_root:
            cmd = ["runuser", "-u", self.settings.os_user, "--", *cmd]
        # cwd must be readable by the OS user (root's home usually is not).
        proc = subprocess.run(
            cmd, cwd=self.base if self.base.is_dir() else "/", capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed:\n{proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def _owner(self) -> tuple[int, int]:
        if not self.as_root:
            return os.getuid(), os.getgid()
        try:
            entry = pwd.getpwnam(self.settings.os_user)
        except KeyError as exc:
            raise ClusterError(
                f"OS user {self.settings.os_user!r} does not exist; install PostgreSQL (`make setup`) "
                "or set CONNECTIVITY_DB_OS_USER to an unprivileged user"
            ) from exc
        return entry.pw_uid, entry.pw_gid

    def _prepare_directory(self) -> None:
        """Create the cluster directory so that the OS user can reach it.

        When the project sits below a directory the OS user cannot traverse (root's home,
        say), the data go to ``/var/tmp`` and ``var/pg`` becomes a link to them.
        """
        if self.root.is_symlink() and not self.root.exists():
            self.root.unlink()
        self.root.mkdir(parents=True, exist_ok=True)
        uid, gid = self._owner()
        os.chown(self.base, uid, gid)
        if self.as_root and not self._reachable(self.base):
            if any(self.root.iterdir()):
                raise ClusterError(
                    f"{self.root} holds data that OS user {self.settings.os_user!r} cannot reach; "
                    "set CONNECTIVITY_DB_DIR to a directory it can reach"
                )
            digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:12]
            elsewhere = Path("/var/tmp") / f"connectivity-pg-{digest}"
            elsewhere.mkdir(mode=0o700, exist_ok=True)
            os.chown(elsewhere, uid, gid)
            self.root.rmdir()  # only ever the empty directory just made
            self.root.symlink_to(elsewhere, target_is_directory=True)
        os.chown(self.base, uid, gid)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.socket_dir, uid, gid)

    def _reachable(self, path: Path) -> bool:
        user = self.settings.os_user
        probe = ["runuser", "-u", user, "--", "test", "-w", str(path), "-a", "-x", str(path)]
        return subprocess.run(probe, cwd="/", capture_output=True).returncode == 0

    # State -------------------------------------------------------------------------------------
    def is_initialised(self) -> bool:
        """Whether ``initdb`` has run."""
        return (self.data_dir / "PG_VERSION").exists()

    def is_running(self) -> bool:
        """Whether the server of this cluster is up."""
        if not self.is_initialised():
            return False
        return self._run(find_pg_bin() / "pg_ctl", "status", "-D", self.data_dir, check=False).returncode == 0

    @property
    def port(self) -> int:
        """The loopback port: the setting, or the one chosen when the cluster was first started."""
        if self.settings.port:
            return self.settings.port
        if self._port_file.exists():
            return int(self._port_file.read_text().strip())
        port = next(p for p in range(FIRST_PORT, FIRST_PORT + 500) if _port_is_free(p))
        self._port_file.write_text(f"{port}\n")
        return port

    def status(self) -> ClusterStatus:
        """Where the cluster is and whether it runs."""
        try:
            bin_dir: Path | None = find_pg_bin()
        except ClusterError:
            bin_dir = None
        initialised = self.is_initialised()
        running = bin_dir is not None and self.is_running()
        port = self.port if initialised else None
        return ClusterStatus(initialised, running, port, self.root, bin_dir)

    def password(self) -> str:
        """The superuser password, generated at ``initdb``."""
        try:
            return self._password_file.read_text().strip()
        except FileNotFoundError as exc:
            raise ClusterError(
                f"the embedded cluster in {self.root} is not initialised: run `connectivity db start`"
            ) from exc

    def url(self, dbname: str | None = None) -> str:
        """The superuser's libpq URL for a database of this cluster (the project database by default).

        For set-up only (creating databases and roles, migrations); the service connects as the
        application role (:meth:`app_url`).
        """
        name = dbname or self.settings.name
        return f"postgresql://postgres:{quote(self.password(), safe='')}@127.0.0.1:{self.port}/{quote(name)}"

    def app_password(self) -> str:
        """The application role's password, generated once (``var/pg/app-password``, readable by root only)."""
        if not self._app_password_file.exists():
            self._app_password_file.touch(mode=0o600)
            self._app_password_file.write_text(secrets.token_urlsafe(24) + "\n")
        return self._app_password_file.read_text().strip()

    def app_url(self, dbname: str | None = None) -> str:
        """The application role's URL: what the service connects with (least privilege)."""
        from geo.db.roles import APP_ROLE

        name = dbname or self.settings.name
        return f"postgresql://{APP_ROLE}:{quote(self.app_password(), safe='')}@127.0.0.1:{self.port}/{quote(name)}"

    # Life cycle -------------------------------------------------------------------------------------
    def init(self) -> None:
        """Run ``initdb`` once, with a generated password and the server settings above."""
        bin_dir = find_pg_bin()
        self._prepare_directory()
        if self.is_initialised():
            return
        password = secrets.token_urlsafe(24)
        uid, gid = self._owner()
        pwfile = self.base / ".initdb-password"
        pwfile.write_text(password + "\n")
        os.chown(pwfile, uid, gid)
        pwfile.chmod(0o600)
        try:
            self._run(
                bin_dir / "initdb",
                "-D", self.data_dir,
                "-U", "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E", "UTF8",
                "--locale=C.UTF-8",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        self._password_file.write_text(password + "\n")
        self._password_file.chmod(0o600)
        conf = "".join(f"{k} = {v}\n" for k, v in SERVER_SETTINGS.items())
        with open(self.data_dir / "postgresql.auto.conf", "a") as f:
            f.write(conf)

    def start(self) -> str:
        """Initialise if needed, start if not running, create the project database; return its URL."""
        self.init()
        if not self.is_running():
            port = self.port
            if not _port_is_free(port):
                raise ClusterError(
                    f"port {port} on 127.0.0.1 is taken by another program; set CONNECTIVITY_DB_PORT to a free port"
                )
            self._run(
                find_pg_bin() / "pg_ctl", "start", "-w", "-t", "60",
                "-D", self.data_dir,
                "-l", self.log_file,
                "-o", f"-p {port} -k {self.socket_dir}",
            )  # fmt: skip
        self.ensure_database(self.settings.name)
        self.ensure_roles()
        return self.url()

    def ensure_roles(self) -> None:
        """Create the owner and application roles (and the app role's password) when missing."""
        import psycopg

        from geo.db.roles import ensure_roles

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            ensure_roles(conn, self.app_password())

    def stop(self) -> bool:
        """Stop the server (fast shutdown); False when it was not running."""
        if not self.is_running():
            return False
        self._run(find_pg_bin() / "pg_ctl", "stop", "-w", "-m", "fast", "-D", self.data_dir)
        return True

    def ensure_database(self, name: str) -> None:
        """Create database ``name`` when it does not exist yet."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
