"""Figure 5: crash safety on PostgreSQL. Clients post outcome batches to a real `leadloop serve`
and retry each batch until it is answered 200 (a webhook sender's contract); meanwhile the
server is SIGKILLed `KILLS` times, each time while requests are in flight, and restarted on the
same port. Afterwards: is every acknowledged outcome stored, and stored once?"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import func, select

from benchmarks.reliability import Figure
from benchmarks.service import Service, store
from store.tables import OutcomeEvent
from tests.support import open_store

KILLS = 50
CLIENTS = 4
#: Demo leads the outcomes are posted for (the store holds 400).
LEADS = 400


class Ingest:
    """`CLIENTS` threads posting batches of new outcomes, each retried until acknowledged."""

    def __init__(self, service: Service, key: str) -> None:
        self.service = service
        self.key = key
        self.acknowledged: set[str] = set()
        self.sent = 0
        self.in_flight = 0
        self.answers: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._post, args=(n,)) for n in range(CLIENTS)]

    def __enter__(self) -> Ingest:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def _post(self, client_number: int) -> None:
        rng = random.Random(client_number)
        batch_number = 0
        # A connection per attempt: a kept-alive one may belong to a killed server.
        fresh = httpx.Limits(max_keepalive_connections=0)
        with self.service.client(self.key, limits=fresh) as client:
            while not self.stopping.is_set():
                batch_number += 1
                events = [
                    {
                        "event_id": f"crash-{client_number}-{batch_number}-{i}",
                        "lead_id": f"demo-{rng.randrange(LEADS):06d}",
                        "outcome": "contacted",
                        "occurred_at": "2026-11-15T12:00:00Z",
                    }
                    for i in range(rng.randint(1, 20))
                ]
                self._until_acknowledged(client, events)

    def _until_acknowledged(self, client: httpx.Client, events: list[dict]) -> None:
        while True:
            with self.lock:
                self.in_flight += 1
                self.sent += 1
            try:
                answer = str(client.post("/v1/outcomes", json={"outcomes": events}).status_code)
            except httpx.TransportError as exc:
                answer = type(exc).__name__
            finally:
                with self.lock:
                    self.in_flight -= 1
            with self.lock:
                self.answers[answer] += 1
            if answer == "200":
                with self.lock:
                    self.acknowledged.update(e["event_id"] for e in events)
                return
            time.sleep(0.05)


def stored(service: Service) -> tuple[Counter[str], int]:
    """How many rows each crash-test event id has, and the rows in all."""
    sessions = open_store(service.settings["database_url"])
    try:
        with sessions() as session:
            rows = session.execute(
                select(OutcomeEvent.event_id, func.count())
                .where(OutcomeEvent.event_id.startswith("crash-"))
                .group_by(OutcomeEvent.event_id)
            ).all()
    finally:
        sessions.kw["bind"].dispose()
    counts = Counter(dict(rows))
    return counts, sum(counts.values())


def measure(directory: Path) -> Figure:
    rng = random.Random(5)
    kills_in_flight, restarts = 0, []
    with store("postgresql", directory) as url, Service(directory, url) as service:
        service.seed(LEADS, seed=9)
        key = service.create_key("crash", "ingest")
        service.start()
        with Ingest(service, key) as ingest:
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.3, 1.5))
                while ingest.in_flight == 0:  # kill during ingest, never between requests
                    time.sleep(0.001)
                kills_in_flight += 1
                service.kill()
                started = time.perf_counter()
                service.start()
                restarts.append(time.perf_counter() - started)
            time.sleep(1.0)
        rows, total = stored(service)
    acknowledged = ingest.acknowledged
    lost = sum(1 for event_id in acknowledged if rows[event_id] == 0)
    duplicated = sum(1 for n in rows.values() if n > 1)
    unacknowledged = sum(1 for event_id in rows if event_id not in acknowledged)
    details = [
        f"`leadloop serve` on PostgreSQL, {CLIENTS} clients posting batches of 1 to 20 new "
        f"`contacted` events for {LEADS} demo leads, each batch sent again (after 50 ms) until "
        f"it is answered 200. The server was SIGKILLed {KILLS} times, 0.3 to 1.5 s after it was "
        f"back, each time with requests in flight ({kills_in_flight} of {KILLS}), and "
        f"restarted on the same port (median restart {sorted(restarts)[len(restarts) // 2]:.1f} "
        f"s, until it answered `/healthz`).",
        "",
        f"- requests sent: {ingest.sent:,}; answers: "
        + ", ".join(f"{n:,} x {answer}" for answer, n in sorted(ingest.answers.items())),
        f"- outcomes acknowledged (answered 200): {len(acknowledged):,}; rows stored: {total:,}",
        f"- acknowledged but not stored (lost): **{lost}**; stored more than once "
        f"(duplicated): **{duplicated}**",
        f"- stored but never acknowledged: {unacknowledged} (each client sends its last batch "
        "until it is answered, so none should be)",
    ]
    result = (
        f"{KILLS} SIGKILLs during ingest, {len(acknowledged):,} outcomes acknowledged: "
        f"{lost} lost, {duplicated} duplicated"
    )
    return Figure(5, "crash safety (PostgreSQL)", result, lost == 0 and duplicated == 0, details)
