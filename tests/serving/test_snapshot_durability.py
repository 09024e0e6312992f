"""What a real `leadloop serve` process promises about the scores it answered (README, "Scores
are stored after the answer"): SIGTERM stores every queued score; a SIGKILL of the service
loses none (its writer process stores them and ends); a SIGKILL of both loses those still
queued; with the queue off (`LEADLOOP_SNAPSHOT_QUEUE=0`) a SIGKILL loses nothing answered."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from benchmarks.service import Service
from features.schema import LeadSchema
from store.api_keys import create_key
from store.demo_funnel import DemoFunnel
from store.tables import ScoreSnapshot
from tests.support import NOW, PII_KEY, open_store, seed

#: Long enough that the scores are still queued when the test signals the server.
LINGER = 5.0
REQUESTS = 5


@pytest.fixture
def service(
    tmp_path: Path,
    small_funnel: DemoFunnel,
    demo_schema: LeadSchema,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Service, str]]:
    """A server on a seeded SQLite store (served by the rules score) and a scoring key."""
    url = f"sqlite:///{tmp_path}/leadloop.db"
    sessions = open_store(url)
    seed(sessions, small_funnel, demo_schema)
    with sessions.begin() as session:
        key = create_key(session, "durability", ["score"], NOW)
    sessions.kw["bind"].dispose()
    options = dict(request.param)
    workers = options.pop("workers", 1)
    settings = {"pii_key": PII_KEY.decode(), "snapshot_linger_seconds": LINGER} | options
    with Service(tmp_path, url, **settings) as server:
        yield server.start(workers), key


def score_some(server: Service, key: str, pause: float = 0.0) -> None:
    with server.client(key) as client:
        for n in range(REQUESTS):
            time.sleep(pause)
            leads = [{"lead_id": f"durable-{n}-{i}", "source": "webinar"} for i in range(2)]
            response = client.post("/v1/scores", json={"leads": leads, "reasons": n % 2 == 0})
            assert response.status_code == 200, response.text


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")


def writer_process(server: Service) -> int:
    """The PID of the service's snapshot writer, its one child process."""
    assert server.process is not None
    (child,) = children(server.process.pid)
    return child


def wait_until_gone(pid: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"the writer process {pid} did not end"
        time.sleep(0.05)


def stored_snapshots(server: Service) -> int:
    sessions = open_store(server.settings["database_url"])
    with sessions() as session:
        count = session.scalar(
            select(func.count()).where(ScoreSnapshot.lead_id.startswith("durable-"))
        )
    sessions.kw["bind"].dispose()
    return count or 0


@pytest.mark.parametrize("service", [{}], indirect=True)
def test_sigterm_stores_every_queued_score(service: tuple[Service, str]) -> None:
    server, key = service
    score_some(server, key)
    assert stored_snapshots(server) == 0  # all still queued: the linger has not passed
    server.stop()  # SIGTERM
    assert stored_snapshots(server) == 2 * REQUESTS


@pytest.mark.parametrize("service", [{}], indirect=True)
def test_a_sigkill_of_the_service_loses_nothing_its_writer_holds(
    service: tuple[Service, str],
) -> None:
    server, key = service
    score_some(server, key)
    writer = writer_process(server)
    # The service hands each batch to its writer within milliseconds of answering (a thread of
    # its own sends it): a second is plenty, and far less than the writer's linger.
    time.sleep(1.0)
    server.kill()
    wait_until_gone(writer)  # it stores what it was handed, then ends
    assert stored_snapshots(server) == 2 * REQUESTS


@pytest.mark.parametrize("service", [{"snapshot_linger_seconds": 0}], indirect=True)
def test_a_sigkill_of_the_service_loses_nothing_when_the_writer_is_behind(
    service: tuple[Service, str],
) -> None:
    """An import holds SQLite's write lock: the writer is several transactions behind when the
    service dies, and stores them all once the lock is released."""
    server, key = service
    blocker = create_engine(server.settings["database_url"]).connect()
    blocker.execute(text("BEGIN IMMEDIATE"))
    score_some(server, key, pause=0.1)  # each request a transaction of its own
    writer = writer_process(server)
    time.sleep(1.0)
    server.kill()
    blocker.execute(text("ROLLBACK"))
    blocker.close()
    wait_until_gone(writer)
    assert stored_snapshots(server) == 2 * REQUESTS


@pytest.mark.parametrize("service", [{}], indirect=True)
def test_a_sigkill_of_the_service_and_its_writer_loses_the_queued_scores(
    service: tuple[Service, str],
) -> None:
    server, key = service
    score_some(server, key)
    os.kill(writer_process(server), signal.SIGKILL)
    server.kill()
    assert stored_snapshots(server) == 0


@pytest.mark.parametrize("service", [{"snapshot_queue": 0}], indirect=True)
def test_without_the_queue_sigkill_loses_nothing_answered(service: tuple[Service, str]) -> None:
    server, key = service
    score_some(server, key)
    server.kill()
    assert stored_snapshots(server) == 2 * REQUESTS


def started_workers(parent: int) -> list[int]:
    """The worker processes of `leadloop serve --workers N` that have started their writer."""
    workers = [p for p in children(parent) if "spawn_main" in command_line(p)]
    return [
        w for w in workers if any("store.snapshot_writer" in command_line(c) for c in children(w))
    ]


def wait_for_workers(parent: int, count: int) -> list[int]:
    """The workers, once `count` have started (/healthz answers as soon as one has)."""
    deadline = time.monotonic() + 60
    while len(workers := started_workers(parent)) < count:
        assert time.monotonic() < deadline, f"workers with a writer: {workers}"
        time.sleep(0.1)
    return workers


@pytest.mark.parametrize("service", [{"workers": 2, "header_timeout_seconds": 1}], indirect=True)
def test_each_worker_stores_its_scores_on_sigterm_and_keeps_the_limits(
    service: tuple[Service, str],
) -> None:
    """`leadloop serve --workers 2`: two processes serve the port, each with its own writer;
    SIGTERM to the parent stops both, and each stores what it answered."""
    server, key = service
    assert server.process is not None
    wait_for_workers(server.process.pid, 2)
    for _ in range(4):  # a new connection each time: either worker may take it
        score_some(server, key)
    # The worker's header timeout (1 s) is its settings', not the default (10 s).
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as silent:
        assert silent.recv(64).startswith(b"HTTP/1.1 408")
    parent = server.process
    server.stop()  # SIGTERM
    assert parent.returncode == 0
    assert stored_snapshots(server) == 4 * 2 * REQUESTS


@pytest.mark.parametrize("service", [{"workers": 2}], indirect=True)
def test_workers_stop_and_store_their_scores_when_the_parent_is_sigkilled(
    service: tuple[Service, str],
) -> None:
    """Without its parent no worker serves on unsupervised: each gets a SIGTERM from the kernel,
    stops, and stores what it answered."""
    server, key = service
    assert server.process is not None
    workers = wait_for_workers(server.process.pid, 2)
    for _ in range(4):
        score_some(server, key)
    server.kill()
    for worker in workers:
        wait_until_gone(worker)
    assert stored_snapshots(server) == 4 * 2 * REQUESTS


def test_a_worker_that_cannot_start_fails_the_command(tmp_path: Path) -> None:
    """uvicorn stops the other workers when one cannot start; `leadloop serve` then exits
    non-zero (a supervisor restarting on failure sees a failure)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    server = Service(tmp_path, f"sqlite:///{tmp_path}/leadloop.db")
    server.settings["reports_dir"] = str(blocker / "reports")  # only a worker's start makes it
    with pytest.raises(RuntimeError, match="exited 3"):
        server.start(workers=2)
