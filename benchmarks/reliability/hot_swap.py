"""Figure 6: the champion alias moved 20 times while clients score without pause, then moved to
a version whose files do not exist: how many requests failed, which versions answered, and
whether the broken version was refused while the old one kept serving."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from benchmarks.reliability import Figure
from benchmarks.service import Service, store
from models.registry import mlflow_client

MOVES = 20
CLIENTS = 4
LEADS = 3_000
#: Seconds a move may take to be served before the figure says it was not (it is not a speed
#: target: the poll interval below is what sets the pace).
MOVE_LIMIT = 60.0
BODY = {"leads": [{"lead_id": "swap-lead", "source": "webinar", "page_views": 7}]}


def measure(directory: Path) -> Figure:
    with (
        store("sqlite", directory) as url,
        Service(directory, url, model_poll_seconds=0.2) as service,
    ):
        service.seed(LEADS)
        service.cli("train")
        service.cli("train", "--json")  # a second version, champion or not
        key = service.create_key("swap", "admin")
        service.start()
        answers, moves = _moves_under_load(service, key)
        broken, refused, after = _broken_version(service, key, directory)
    statuses = Counter(status for status, _ in answers)
    versions = Counter(version for _, version in answers)
    failed = sum(n for status, n in statuses.items() if status != 200)
    holds = failed == 0 and set(versions) <= {"1", "2"} and moves == MOVES and refused
    result = (
        f"{MOVES} moves under load ({moves} served within {MOVE_LIMIT:g} s): "
        f"{len(answers):,} requests, {failed} failed, versions answering "
        f"{', '.join(f'{v}: {n:,}' for v, n in sorted(versions.items()))}; a version without "
        f"files ({broken}) {'refused' if refused else 'NOT refused'}, version {after} served on"
    )
    details = [
        f"A store of {LEADS:,} demo leads trained twice (versions 1 and 2); `leadloop serve` "
        f"looks at the alias every 0.2 s. {CLIENTS} clients post one lead to `/v1/scores` "
        f"without pause while `leadloop promote` moves the alias {MOVES} times between the two "
        "versions, each move waited for on `/readyz`. Then a version is registered whose files "
        "do not exist and promoted: the service must refuse it (`/v1/model`'s "
        "`refused_versions`) and keep answering with the version before.",
        "",
        f"Answers by status: {dict(statuses)}; by `model_version`: {dict(versions)}.",
    ]
    return Figure(6, "hot swap", result, holds, details)


def _moves_under_load(service: Service, key: str) -> tuple[list[tuple[int, str]], int]:
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def score() -> None:
        with service.client(key) as client:
            while not stop.is_set():
                response = client.post("/v1/scores", json=BODY)
                answers.append((response.status_code, response.json().get("model_version")))

    workers = [threading.Thread(target=score) for _ in range(CLIENTS)]
    for worker in workers:
        worker.start()
    served = 0
    with service.client() as probe:
        for move in range(MOVES):
            version = "2" if move % 2 == 0 else "1"
            service.cli("promote", version, "--reason", f"move {move + 1} under load")
            served += _wait(lambda v=version: probe.get("/readyz").json()["model_version"] == v)
    stop.set()
    for worker in workers:
        worker.join()
    return answers, served


def _broken_version(service: Service, key: str, directory: Path) -> tuple[str, bool, str]:
    registry = mlflow_client(service.settings["mlflow_tracking_uri"])
    name = service.settings.get("model_name", "lead-scoring")
    broken = registry.create_model_version(name, source=str(directory / "nothing"), run_id=None)
    version = str(broken.version)
    service.cli("promote", version, "--reason", "a version whose files are gone")
    with service.client(key) as client:
        refused = _wait(lambda: version in client.get("/v1/model").json()["refused_versions"])
        after = client.post("/v1/scores", json=BODY).json().get("model_version", "none")
    return version, refused, after


def _wait(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + MOVE_LIMIT
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
