"""A real `leadloop serve` for the benchmarks and for the tests that need a real process: a
subprocess on a loopback port, its settings in `LEADLOOP_*` variables, its keys made by
`leadloop keys create`, its store on SQLite or on a PostgreSQL database of its own."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.common import ROOT

POSTGRES_URL = os.environ.get(
    "LEADLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
#: The virtualenv's command (this checkout's code reaches it through PYTHONPATH, see `env`).
LEADLOOP = Path(sys.executable).parent / "leadloop"
#: Seconds a server may take to answer /healthz after it was started.
START_TIMEOUT = 60.0


@contextmanager
def postgres_database() -> Iterator[str]:
    """The URL of a new database on the PostgreSQL server, dropped afterwards."""
    base = make_url(POSTGRES_URL)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"leadloop_reliability_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def store(kind: str, directory: Path) -> Iterator[str]:
    """A new, empty store of `kind` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        yield f"sqlite:///{directory}/leadloop.db"
    else:
        with postgres_database() as url:
            yield url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answering(
    process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = START_TIMEOUT
) -> None:
    """Wait until the server `process` answers 200 at `url`; an error naming its `log` if it
    exits first or stays silent for `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited {process.returncode}: see {log}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{process.args[0]} did not answer within {timeout:g} s: see {log}")


class Service:
    """One leadloop set-up in `directory`: settings, store, MLflow store, reports, a server.

    `settings` override the defaults below (names as in `serving.settings.Settings`).
    """

    def __init__(self, directory: Path, database_url: str, **settings: Any) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.settings: dict[str, Any] = {
            "env": "production",
            "database_url": database_url,
            "mlflow_tracking_uri": f"sqlite:///{directory}/mlflow.db",
            "mlflow_artifact_root": str(directory / "mlartifacts"),
            "reports_dir": str(directory / "reports"),
            "pii_key": secrets.token_urlsafe(32),
            # The figures send hundreds of requests a second with one key; figure 8 sets one.
            "rate_limit_per_minute": 0,
        } | settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def env(self) -> dict[str, str]:
        """The environment of a `leadloop` command: the settings, and this checkout's code."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("LEADLOOP_")}
        own = {f"LEADLOOP_{name.upper()}": str(value) for name, value in self.settings.items()}
        return inherited | own | {"PYTHONPATH": str(ROOT), "COLUMNS": "200"}

    def cli(self, *args: str, log: Path | None = None) -> str:
        """Run `leadloop ARGS`; its stdout (its stderr goes to `log`, if given)."""
        stderr = log.open("ab") if log else subprocess.PIPE
        try:
            done = subprocess.run(
                [str(LEADLOOP), *args], env=self.env, stdout=subprocess.PIPE, stderr=stderr
            )
        finally:
            if log:
                stderr.close()  # type: ignore[union-attr]
        if done.returncode != 0:
            raise RuntimeError(f"leadloop {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done.stdout.decode()

    def seed(self, leads: int, seed: int = 0) -> None:
        self.cli("demo-data", "--leads", str(leads), "--seed", str(seed))

    def create_key(self, name: str, *scopes: str) -> str:
        """A new key, as `leadloop keys create` prints it."""
        scope_options = [option for scope in scopes for option in ("--scope", scope)]
        return self.cli("keys", "create", "--name", name, *scope_options).splitlines()[-1]

    def start(self, workers: int = 1) -> Service:
        """Start `leadloop serve` (in `workers` processes) and wait until it answers."""
        command = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(LEADLOOP), *command, "--workers", str(workers)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        wait_until_answering(self.process, f"{self.url}/healthz", self.log)
        return self

    def kill(self) -> None:
        """SIGKILL the server: no shutdown, no flush, no goodbye."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None

    def memory(self) -> dict[str, int]:
        """The server's resident memory now and at its peak (bytes), from /proc."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in status)
        return {name: int(fields[name].split()[0]) * 1024 for name in ("VmRSS", "VmHWM")}

    def client(self, key: str | None = None, **options: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, **({"timeout": 30} | options))

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
