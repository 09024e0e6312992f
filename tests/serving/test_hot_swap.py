"""The served model follows the registry's champion without a restart: swapped whole under
load, a version that cannot serve refused while the old one goes on, a registry that does not
answer bounding start-up."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from features.schema import LeadSchema
from models.registry import LoadedScorer, promote_by_hand
from serving.champion_watch import schema_problem
from serving.settings import Settings
from store.demo_funnel import generate_demo_funnel
from tests.support import TrainedSetup, api_client, make_settings, register_candidate, train_setup

LEADS = {"leads": [{"lead_id": "swap-1", "source": "webinar", "page_views": 7}]}


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, demo_schema: LeadSchema
) -> Iterator[TrainedSetup]:
    """A registry of its own (version 1 champion), so moving the alias touches no other test."""
    trained = train_setup(
        tmp_path_factory.mktemp("swap"), generate_demo_funnel(3_000, seed=4), demo_schema
    )
    yield trained
    trained.close()


def polling(settings: Settings) -> Settings:
    return settings.model_copy(update={"model_poll_seconds": 0.05})


def wait_until(condition: Any, what: str, limit: float = 60.0) -> None:
    """Wait for an event (not a speed assertion: the limit only stops a broken test)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def promote(trained: TrainedSetup, version: str) -> None:
    client, name = trained.client, trained.settings.model_name
    promote_by_hand(client, name, version, "test", "hot swap under test")


def test_a_moved_champion_is_served_under_load_and_a_broken_one_is_refused(
    setup: TrainedSetup, tmp_path: Path
) -> None:
    second = register_candidate(
        setup.client, setup.settings.tracking_target(), setup.run.candidate
    ).model_version
    promote(setup, "1")
    answers: list[tuple[int, str | None]] = []
    with api_client(polling(setup.settings)) as client:
        assert client.get("/readyz").json()["model_version"] == "1"
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                response = client.post("/v1/scores", json=LEADS)
                answers.append((response.status_code, response.json().get("model_version")))

        worker = threading.Thread(target=load)
        worker.start()
        for version in [second, "1", second]:
            promote(setup, version)
            wait_until(
                lambda v=version: client.get("/readyz").json()["model_version"] == v, version
            )
        stop.set()
        worker.join()

        broken = setup.client.create_model_version(
            setup.settings.model_name, source=str(tmp_path / "no-such-model"), run_id=None
        ).version
        promote(setup, str(broken))
        wait_until(lambda: str(broken) in client.get("/v1/model").json()["refused_versions"], "")
        ready = client.get("/readyz").json()
        assert ready["model_version"] == second and ready["registry_champion"] == str(broken)
        assert ready["stale"] is True
        assert client.post("/v1/scores", json=LEADS).json()["model_version"] == second
    assert answers and {status for status, _ in answers} == {200}
    assert {version for _, version in answers} == {"1", second}


def test_a_model_reading_fields_the_service_lacks_cannot_serve(
    setup: TrainedSetup, demo_schema: LeadSchema
) -> None:
    loaded = LoadedScorer(setup.run.candidate.scorer, version="9", run_id="")
    assert schema_problem(loaded, demo_schema) is None
    gone = loaded.scorer.feature_fields[0]
    document = demo_schema.model_dump()
    document["fields"] = [f for f in document["fields"] if f["name"] != gone]
    fewer = LeadSchema.model_validate(document)
    problem = schema_problem(loaded, fewer)
    assert problem is not None and gone in problem


@pytest.fixture
def silent_registry() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_start_up_is_bounded_when_the_registry_does_not_answer(
    silent_registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    settings = make_settings(tmp_path).model_copy(
        update={"mlflow_tracking_uri": silent_registry, "model_load_timeout_seconds": 0.5}
    )
    with api_client(settings) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "did not answer within 0.5 s" in ready.json()["detail"]
        assert client.post("/v1/scores", json=LEADS).status_code == 503
