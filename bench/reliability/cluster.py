"""Throwaway services on free loopback ports: a PostgreSQL cluster, a Redis and gunicorn.

Everything lives in one temporary directory and is stopped (and removed) by ``close()``, so
restarting or killing any of it disturbs nothing else on the machine. As root, PostgreSQL's
programs run as the ``postgres`` user (``runuser``), which owns the cluster's directory.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


class Postgres:
    """``initdb`` into a temp dir, ``pg_ctl start`` on a free loopback port, trust auth."""

    def __init__(self, root: Path):
        self.dir = root / "pg"
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        self._as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.dir.mkdir()
        if self._as_root:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}"
            " -c max_connections=200 -c fsync=on -c synchronous_commit=on"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")

    def crash_restart(self) -> None:
        """Stop without a checkpoint (as a crash would), then start: recovery replays WAL."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.start()

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        except subprocess.CalledProcessError:
            pass

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres", "postgresql"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


class Redis:
    """``redis-server`` on a free loopback port, no persistence."""

    def __init__(self, root: Path):
        self.dir = root / "redis"
        self.dir.mkdir()
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py wsgi:app`` (the production config) on one database."""

    def __init__(self, root: Path, env: dict[str, str], name: str, workers: int = 4):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **env,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(workers),
        }
        self.log_path = root / f"gunicorn-{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited during start-up; see {self.log_path}")
            try:
                if requests.get(f"{self.base}/healthz", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer in 60 s")

    def worker_pids(self) -> list[int]:
        """The master's children, read from /proc."""
        assert self.proc is not None
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Cluster:
    """One temp dir holding a PostgreSQL cluster and a Redis, plus the app's environment."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="huiyuan-rel-"))
        self.root.chmod(0o755)  # the postgres user needs to reach its own directory
        self.pg = Postgres(self.root)
        self.redis = Redis(self.root)
        self.secret_key = secrets.token_urlsafe(48)
        self.servers: list[Gunicorn] = []

    @staticmethod
    def missing_programs() -> list[str]:
        wanted = [PG_BIN / "initdb", PG_BIN / "pg_ctl"]
        missing = [str(p) for p in wanted if not p.exists()]
        if shutil.which("redis-server") is None:
            missing.append("redis-server")
        return missing

    def start(self) -> None:
        self.pg.init()
        self.pg.start()
        self.redis.start()

    def app_env(self, database_url: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "HUIYUAN_"))}
        return {
            **env,
            "HUIYUAN_ENV": "production",
            "SECRET_KEY": self.secret_key,
            "DATABASE_URL": database_url,
            "REDIS_URL": self.redis.url,
            "API_DOCS_IN_PRODUCTION": "1",  # schemathesis reads /openapi.json
            **extra,
        }

    def flask(
        self, env: dict[str, str], *args: str, check: bool = True
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", *args],
            cwd=ROOT,
            env=env,
            check=check,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def server(self, env: dict[str, str], name: str, workers: int = 4) -> Gunicorn:
        server = Gunicorn(self.root, env, name, workers)
        self.servers.append(server)
        server.start()
        return server

    def close(self, keep: bool = False) -> None:
        for server in self.servers:
            server.stop()
        self.redis.stop()
        self.pg.stop()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)
