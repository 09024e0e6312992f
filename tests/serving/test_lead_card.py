"""A rep's view of a lead: why its score moved (`/changes`), the card a CRM frames, opened by a
signed link, and the links themselves (API and `leadloop card-link`)."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from markupsafe import escape
from playwright.sync_api import Browser, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import create_engine, select, update
from starlette.testclient import TestClient
from typer.testing import CliRunner

from features.schema import LeadSchema
from models.registry import promote_by_hand
from serving.card_links import CardLinks
from serving.cli import app as cli
from serving.model_versions import ModelVersions, VersionUnavailable
from serving.settings import Settings
from store.demo_funnel import generate_demo_funnel
from store.tables import ScoreSnapshot
from tests.support import (
    CARD_KEY,
    TrainedSetup,
    api_client,
    api_key,
    bearer,
    chromium,
    register_candidate,
    running_server,
    stored_scores,
    train_setup,
)

#: A lead as marketing first sends it, and the same lead a few weeks on.
FIRST = {"source": "paid_search", "lead_type": "MQL", "page_views": 1, "company_size": 8}
LATER = {
    "source": "webinar",
    "lead_type": "SQL",
    "page_views": 14,
    "company_size": 250,
    "demo_requested": True,
}
LINKS = CardLinks(CARD_KEY, 3600)
STYLE = re.compile(r"<style>(.*?)</style>", re.S)


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, demo_schema: LeadSchema
) -> Iterator[TrainedSetup]:
    """A registry of its own: version 1 (the run's choice) is champion, version 2 (the same
    run's logistic regression) waits, so a test can move the alias without touching others."""
    trained = train_setup(
        tmp_path_factory.mktemp("card"), generate_demo_funnel(3_000, seed=5), demo_schema
    )
    register_candidate(
        trained.client,
        trained.settings.tracking_target(),
        trained.run.candidate.switch("logistic_regression"),
    )
    promote_by_hand(trained.client, trained.settings.model_name, "1", "test", "card tests")
    yield trained
    trained.close()


@pytest.fixture(scope="module")
def settings(setup: TrainedSetup) -> Settings:
    return setup.settings.model_copy(update={"model_poll_seconds": 0.05})


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with api_client(settings) as running:
        yield running


def scored(client: TestClient, lead_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/v1/scores", json={"leads": [{"lead_id": lead_id} | fields]})
    assert answer.status_code == 200, answer.text
    return answer.json()["scores"][0] | {"model_version": answer.json()["model_version"]}


def card_url(client: TestClient, lead_id: str, **body: Any) -> str:
    answer = client.post(f"/v1/leads/{quote(lead_id)}/card-link", json=body or None)
    assert answer.status_code == 200, answer.text
    return answer.json()["url"]


def local(url: str) -> str:
    """A link's path and query, for the test client (add options to its query by hand:
    `params=` would replace the signed query)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def wait_for_version(client: TestClient, version: str) -> None:
    deadline = time.monotonic() + 60  # only stops a broken test
    while client.get("/readyz").json()["model_version"] != version:
        assert time.monotonic() < deadline, f"version {version} never served"
        time.sleep(0.05)


def check_parts(change: dict[str, Any]) -> None:
    """The documented sums: fields to the data part, parts and rounding to the change."""
    fields = sum(f["points"] for f in change["fields"])
    assert fields == pytest.approx(change["data_points"], abs=0.01 * len(change["fields"]) + 1e-9)
    total = change["data_points"] + change["model_points"] + change["rounding_points"]
    assert total == pytest.approx(change["score_change"], abs=0.02)
    assert abs(change["rounding_points"]) < 1
    assert change["score_change"] == change["later"]["score"] - change["earlier"]["score"]


def test_changes_split_the_data_from_a_new_model(client: TestClient, setup: TrainedSetup) -> None:
    lead_id = "changes/lead-1"  # an id with a slash
    first = scored(client, lead_id, FIRST)
    second = scored(client, lead_id, LATER)
    change = client.get(f"/v1/leads/{lead_id}/changes", params={"lang": "en"}).json()
    check_parts(change)
    assert (change["earlier"]["score"], change["later"]["score"]) == (
        first["score"],
        second["score"],
    )
    assert change["model_points"] == 0.0 and change["score_change"] != 0
    assert {f["field"] for f in change["fields"]} == set(LATER) - {
        k for k in FIRST if FIRST[k] == LATER.get(k)
    }
    by_field = {f["field"]: f for f in change["fields"]}
    assert (by_field["page_views"]["old_value"], by_field["page_views"]["new_value"]) == (1, 14)
    assert by_field["demo_requested"]["old_value"] is None
    assert "from the lead's data" in change["summary"] and "new model" not in change["summary"]
    assert change["summary"].startswith("Up " if change["score_change"] > 0 else "Down ")

    # The champion moves: the same data scored again changes only by the model.
    promote_by_hand(setup.client, setup.settings.model_name, "2", "test", "model part")
    try:
        wait_for_version(client, "2")
        third = scored(client, lead_id, LATER)
        by_model = client.get(f"/v1/leads/{lead_id}/changes").json()
        check_parts(by_model)
        assert by_model["fields"] == [] and by_model["data_points"] == 0.0
        assert by_model["later"]["model_version"] == "2"
        assert "version 1 \u2192 2" in by_model["summary"]
        # From the first score to the last: both parts, each field's points under version 1.
        span = client.get(
            f"/v1/leads/{lead_id}/changes",
            params={"from": change["earlier"]["scored_at"], "to": by_model["later"]["scored_at"]},
        ).json()
        check_parts(span)
        assert span["score_change"] == third["score"] - first["score"]
        assert span["data_points"] == pytest.approx(change["data_points"], abs=1e-6)
        assert span["model_points"] == pytest.approx(by_model["model_points"], abs=1e-6)
    finally:
        promote_by_hand(setup.client, setup.settings.model_name, "1", "test", "back")
        wait_for_version(client, "1")


def test_a_move_the_models_cannot_account_for_is_told_not_split(
    client: TestClient, settings: Settings
) -> None:
    """A stored score its model no longer gives (a registry rebuilt under the same version
    numbers, a hand-edited store): the parts are null and the sentence says why, no 500."""
    scored(client, "changes-rewritten", FIRST)
    scored(client, "changes-rewritten", LATER)
    stored_scores(client)
    engine = create_engine(settings.database_url)
    with engine.begin() as connection:
        first_id = connection.execute(
            select(ScoreSnapshot.id)
            .where(ScoreSnapshot.lead_id == "changes-rewritten")
            .order_by(ScoreSnapshot.id)
        ).first()[0]
        connection.execute(
            update(ScoreSnapshot)
            .where(ScoreSnapshot.id == first_id)
            .values(probability=0.5, score=50)
        )
    engine.dispose()
    change = client.get("/v1/leads/changes-rewritten/changes").json()
    assert change["data_points"] is None and change["fields"] == []
    assert "no longer scores the lead's data" in change["summary"]
    card = client.get(local(card_url(client, "changes-rewritten")))
    assert card.status_code == 200 and "no longer scores" in card.text


def test_reasons_stored_before_they_had_words_get_words_on_the_card(
    client: TestClient, settings: Settings
) -> None:
    scored(client, "card-old-reasons", LATER)
    stored_scores(client)
    engine = create_engine(settings.database_url)
    with engine.begin() as connection:
        snapshot = connection.execute(
            select(ScoreSnapshot.id, ScoreSnapshot.reasons).where(
                ScoreSnapshot.lead_id == "card-old-reasons"
            )
        ).one()
        wordless = [{k: v for k, v in r.items() if k != "text"} for r in snapshot.reasons]
        connection.execute(
            update(ScoreSnapshot).where(ScoreSnapshot.id == snapshot.id).values(reasons=wordless)
        )
    engine.dispose()
    page = client.get(local(card_url(client, "card-old-reasons")))
    assert page.status_code == 200
    for reason in snapshot.reasons:  # the same words, without a standing (no quantiles then)
        if round(reason["impact"]):
            assert str(escape(reason["text"].split(" (")[0])) in page.text


def test_older_versions_are_loaded_once_and_the_least_used_let_go(setup: TrainedSetup) -> None:
    versions = ModelVersions(setup.client, setup.settings.model_name, keep=1)
    first = versions.get("1")
    assert versions.get("1") is first
    assert versions.get("2").version == "2"
    assert versions.get("1") is not first  # let go when version 2 came, loaded again
    for _ in range(2):  # the second answer comes from what the first attempt learnt
        with pytest.raises(VersionUnavailable, match="version 99 cannot be loaded"):
            versions.get("99")


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ({}, "from"),  # one score: nothing to compare
        ({"from": "2020-01-01T00:00:00Z"}, "from"),  # before the first score
        ({"to": "2020-01-01T00:00:00Z"}, "to"),
        ({"from": "2020-01-01T00:00:00Z", "to": "2999-01-01T00:00:00+00:00"}, "from"),
        ({"tz": "Europe"}, "tz"),  # a folder of zones, not a zone
        ({"lang": "xx-nowhere"}, "lang"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"from": "yesterday"}, "from"),
    ],
)
def test_changes_refusals_name_what_is_wrong(
    client: TestClient, query: dict[str, str], where: str
) -> None:
    scored(client, "changes-once", FIRST)
    answer = client.get("/v1/leads/changes-once/changes", params=query)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][-1] == where


def test_changes_of_an_unknown_or_unscored_lead_is_404(client: TestClient) -> None:
    assert client.get("/v1/leads/never-seen/changes").status_code == 404
    imported = client.get("/v1/leads/demo-000001/changes")  # a lead of the seeded funnel
    assert imported.status_code == 404 and "no score" in imported.json()["detail"]


def test_from_after_to_is_refused(client: TestClient) -> None:
    scored(client, "changes-order", FIRST)
    later = scored(client, "changes-order", LATER)
    history = client.get("/v1/leads/changes-order/history").json()["scores"]
    params = {"from": history[0]["scored_at"], "to": history[1]["scored_at"]}
    answer = client.get("/v1/leads/changes-order/changes", params=params)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["query", "from"]
    assert later["score"] == history[0]["score"]


def test_the_card_shows_the_score_reasons_and_why_it_moved(client: TestClient) -> None:
    scored(client, "card-1", FIRST)
    latest = scored(client, "card-1", LATER)
    page = client.get(local(card_url(client, "card-1")) + "&lang=en")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert f'<p class="score">{latest["score"]}<' in html
    assert f"Grade {latest['grade']}" in html
    for reason in latest["reasons"]:
        if round(reason["impact"]):
            assert reason["text"] in html
    summary = client.get("/v1/leads/card-1/changes", params={"lang": "en"}).json()["summary"]
    assert str(escape(summary)) in html
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert '<html lang="en">' in html and '<th scope="col">' in html


def test_the_card_is_locked_to_its_style_and_framed_by_no_one_by_default(
    client: TestClient,
) -> None:
    scored(client, "card-headers", FIRST)
    page = client.get(local(card_url(client, "card-headers")))
    policy = page.headers["content-security-policy"]
    style = STYLE.search(page.text).group(1)  # type: ignore[union-attr]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"


def test_numbers_and_dates_follow_the_readers_language_and_zone(client: TestClient) -> None:
    scored(client, "card-lang", FIRST)
    url = local(card_url(client, "card-lang"))
    german = client.get(url + "&lang=de&tz=Europe/Berlin").text
    assert "(Europe/Berlin)" in german and re.search(r"\d{2}\.\d{2}\.\d{4}", german)  # 30.11.2026
    assert '<html lang="en">' in german  # the words stay the schema's and the page's English
    swiss = client.get(url, headers={"Accept-Language": "fr-CH, en;q=0.5"}).text
    assert re.search(r"\d{1,2} [a-zéû]+\.? \d{4}", swiss)  # 30 nov. 2026
    odd = client.get(url, headers={"Accept-Language": "*, ;;;, x-klingon"}).text
    assert re.search(r"[A-Z][a-z]{2} \d{1,2}, \d{4}", odd)  # English: Nov 30, 2026
    assert client.get(url + "&lang=xx-nowhere").status_code == 422


def test_a_tampered_expired_or_missing_link_is_403(client: TestClient) -> None:
    scored(client, "card-locked", FIRST)
    scored(client, "card-other", FIRST)
    url = local(card_url(client, "card-locked"))
    query = parse_qs(urlsplit(url).query)
    signature, expires = query["signature"][0], int(query["expires"][0])
    altered = signature[:-1] + ("B" if signature.endswith("A") else "A")
    attempts = [
        f"/v1/leads/card-locked/card?expires={expires}&signature={altered}",
        f"/v1/leads/card-locked/card?expires={expires + 3600}&signature={signature}",
        f"/v1/leads/card-other/card?expires={expires}&signature={signature}",
        "/v1/leads/card-locked/card",
        f"/v1/leads/card-locked/card?expires=soon&signature={signature}",
        f"/v1/leads/card-locked/card?expires=1e9&signature={signature}",
        f"/v1/leads/card-locked/card?expires={10**40}&signature={signature}",
        f"/v1/leads/card-locked/card?expires={expires}&signature=%C3%A9t%C3%A9",
    ]
    past = datetime.now(UTC) - timedelta(hours=2)
    attempts.append(local(LINKS.link("", "card-locked", past, 60).url))
    # Signed with the service's key, but for longer than the service allows any link to last.
    lasting = CardLinks(CARD_KEY, 10 * 3600).link("", "card-locked", datetime.now(UTC), 7200)
    attempts.append(local(lasting.url))
    for attempt in attempts:
        answer = client.get(attempt, headers={"Authorization": ""})
        assert answer.status_code == 403, attempt
        assert "text/html" in answer.headers["content-type"] and "No lead card" in answer.text
    assert client.get(url, headers={"Authorization": ""}).status_code == 200  # no key needed


def test_a_signed_link_to_an_unscored_lead_is_404(client: TestClient) -> None:
    link = LINKS.link("", "never-scored", datetime.now(UTC), 600)
    assert client.get(local(link.url)).status_code == 404


def test_card_links_need_a_read_key_and_a_scored_lead(
    client: TestClient, settings: Settings
) -> None:
    scored(client, "card-link", FIRST)
    path = "/v1/leads/card-link/card-link"
    assert client.post(path, headers={"Authorization": ""}).status_code == 401
    assert client.post(path, headers=bearer(api_key(settings, "score"))).status_code == 403
    assert client.post(path, headers=bearer(api_key(settings, "read"))).status_code == 200
    assert client.post("/v1/leads/unknown/card-link").status_code == 404
    short = client.post(path, json={"expires_in": 120}).json()
    expires_at = datetime.fromisoformat(short["expires_at"])
    assert timedelta(seconds=100) < expires_at - datetime.now(UTC) <= timedelta(seconds=120)
    too_long = client.post(path, json={"expires_in": settings.card_link_seconds + 1})
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["body", "expires_in"]


def test_the_cli_prints_a_working_link(client: TestClient, settings: Settings) -> None:
    scored(client, "card-cli", FIRST)
    stored_scores(client)  # the CLI reads the store itself
    env = {
        "LEADLOOP_DATABASE_URL": settings.database_url,
        "LEADLOOP_CARD_KEY": CARD_KEY.decode(),
        "LEADLOOP_PII_KEY": "unused-here",
    }
    made = CliRunner().invoke(
        cli, ["card-link", "card-cli", "--base-url", "https://leads.example.com/"], env=env
    )
    assert made.exit_code == 0, made.output
    url = made.stdout.strip()
    assert url.startswith("https://leads.example.com/v1/leads/card-cli/card?expires=")
    assert client.get(local(url)).status_code == 200
    unknown = CliRunner().invoke(cli, ["card-link", "nobody"], env=env)
    assert unknown.exit_code == 2 and "no score of lead 'nobody'" in unknown.output
    too_long = CliRunner().invoke(cli, ["card-link", "card-cli", "--expires-in", "999999"], env=env)
    assert too_long.exit_code == 2 and "--expires-in" in too_long.output


def test_settings_mistakes_are_one_line_errors_not_tracebacks(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    scored(client, "card-settings", FIRST)
    stored_scores(client)
    base = {"LEADLOOP_DATABASE_URL": settings.database_url, "LEADLOOP_PII_KEY": "unused-here"}
    short = tmp_path / "short.key"
    short.write_text("short")
    mistakes = {
        "LEADLOOP_CARD_KEY_FILE": (str(tmp_path), "is a folder"),
        "LEADLOOP_CARD_KEY": ("too-short", "at least 32"),
        "LEADLOOP_SHARED_EMAIL_DOMAINS": ("[gmail.com", "LEADLOOP_SHARED_EMAIL_DOMAINS"),
        "LEADLOOP_PUBLIC_URL": ("https://leads.example.com?x=1", "no query"),
    }
    for variable, (value, said) in mistakes.items():
        made = CliRunner().invoke(cli, ["card-link", "card-settings"], env=base | {variable: value})
        assert made.exit_code == 2 and said in made.output, (variable, made.output)
    for path, said in ((short, "holds a key of 5 bytes"), (tmp_path / "typo" / "k", "mistyped")):
        env = base | {"LEADLOOP_CARD_KEY_FILE": str(path)}
        made = CliRunner().invoke(cli, ["card-link", "card-settings"], env=env)
        assert made.exit_code == 2 and said in made.output, made.output
    assert not (tmp_path / "typo").exists()  # no folder made for a mistyped path
    # Lists read as JSON or between commas alike.
    env = base | {"LEADLOOP_CARD_KEY": "k" * 32}
    for listed in (
        '["https://a.example", "https://b.example"]',
        "https://a.example, https://b.example",
    ):
        made = CliRunner().invoke(
            cli, ["card-link", "card-settings"], env=env | {"LEADLOOP_CARD_FRAME_ANCESTORS": listed}
        )
        assert made.exit_code == 0, made.output


# --- In a real browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_a_reps_view_end_to_end_in_chromium(
    settings: Settings, browser: Browser, tmp_path: Path
) -> None:
    """Score a lead, change its data, score it again, open its signed card link in a 400 px
    frame: the rep reads the score, the grade, the reasons in words and why it moved."""
    lead_id = "rep-view/" + "x" * 150  # a long id must not push the card wider
    with running_server(settings) as address:
        api = httpx.Client(base_url=address, headers=bearer(api_key(settings, "score", "read")))
        for fields in (FIRST, LATER):
            answer = api.post("/v1/scores", json={"leads": [{"lead_id": lead_id} | fields]})
            assert answer.status_code == 200, answer.text
        latest = answer.json()["scores"][0]
        path = f"/v1/leads/{quote(lead_id)}"
        summary = api.get(f"{path}/changes", params={"lang": "en"}).json()["summary"]
        url = api.post(f"{path}/card-link").json()["url"]
        api.close()

        page = browser.new_page(viewport={"width": 400, "height": 700}, locale="en-US")
        problems: list[str] = []
        page.on("console", lambda message: problems.append(message.text))
        assert page.goto(url + "&lang=en").status == 200
        page.screenshot(path=tmp_path / "card.png", full_page=True)
        assert (tmp_path / "card.png").stat().st_size > 5_000

        assert page.inner_text(".score").startswith(str(latest["score"]))
        assert page.inner_text(".grade") == f"Grade {latest['grade']}"
        shown = page.locator("table").first.inner_text()
        for reason in latest["reasons"]:
            if round(reason["impact"]):
                assert reason["text"] in shown
        assert page.inner_text(".change") == summary
        assert page.get_by_role("heading", name="What changed").is_visible()
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1] == 400, "the card scrolls sideways in a 400 px frame"
        # The style ran (its hash is in the policy): the grade wears its colour.
        assert page.eval_on_selector(".grade", "e => getComputedStyle(e).backgroundColor") != (
            "rgba(0, 0, 0, 0)"
        )
        assert not [p for p in problems if "Content Security Policy" in p], problems
        page.emulate_media(media="print")  # printed: no white-on-colour badge
        assert page.eval_on_selector(".grade", "e => getComputedStyle(e).color") == "rgb(0, 0, 0)"
        page.close()


@contextmanager
def crm_site() -> Iterator[str]:
    """A CRM served on loopback at an origin of its own (its address): its page `/?card=URL`
    shows the card at URL in a 400 px frame."""

    class Crm(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            card = parse_qs(urlsplit(self.path).query)["card"][0]
            page = f"<html><body><iframe src='{escape(card)}' width=400 height=600></iframe>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Crm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def framed_text(browser: Browser, crm: str, card: str) -> str:
    """The text the CRM's page shows of `card` in its frame."""
    page = browser.new_page()
    page.goto(f"{crm}/?card={quote(card)}", wait_until="load")  # after the frame's own load
    try:
        return page.frames[1].evaluate("document.body ? document.body.textContent : ''")
    except PlaywrightError:  # a blocked frame holds the browser's error page
        return ""
    finally:
        page.close()


def test_only_configured_crm_origins_may_frame_the_card(
    settings: Settings, browser: Browser
) -> None:
    with crm_site() as crm:
        allowed = settings.model_copy(update={"card_frame_ancestors": [crm]})
        for config, shown in ((settings, False), (allowed, True)):
            with running_server(config) as address:
                api = httpx.Client(
                    base_url=address, headers=bearer(api_key(config, "score", "read"))
                )
                api.post("/v1/scores", json={"leads": [{"lead_id": "framed"} | FIRST]})
                card = api.post("/v1/leads/framed/card-link").json()["url"]
                api.close()
                assert ("Why this score" in framed_text(browser, crm, card)) is shown
