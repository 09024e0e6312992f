"""Figure 3: Hypothesis puts hostile values in the fields of leads and outcomes posted to a
running `leadloop serve` (SQLite and PostgreSQL): out-of-range and overflowing times, control
characters and lone surrogates, extreme and non-finite numbers, unseen categories, booleans as
numbers and numbers as booleans, wrong types. Counted: 200s (with a finite score, for leads),
4xx and 5xx; then training and the reports run on what the store kept."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.reliability import Figure
from benchmarks.service import Service, store
from serving.settings import Settings
from tests.support import open_store, report, train

EXAMPLES = 600
#: Enough closed demo leads for `train` to fit a model.
LEADS = 3_000

TIMES = st.sampled_from(
    [
        "3000-01-01T00:00:00Z",
        "9999-12-31T23:00:00-05:00",
        "0001-01-01T00:00:00+01:00",
        "1989-12-31T23:59:59Z",
        "2200-01-01",
        "",
        "NaN",
        "2026-02-30T00:00:00Z",
    ]
) | st.datetimes(timezones=st.timezones() | st.just(UTC)).map(datetime.isoformat)
CONTROL = st.text(st.characters(categories=["Cc"]), min_size=1, max_size=3)
NASTY_TEXT = (
    st.tuples(st.text(max_size=10), CONTROL, st.text(max_size=10)).map("".join)
    | st.sampled_from(["\ud800", "a\udfffb", "\u202egnp.exe", "\ufeff", "x" * 10_000, ""])
    | st.text(max_size=60)
)
NUMBERS = (
    st.sampled_from([True, False, 2**63, -(2**63) - 1, 2**70, -1, -0.0, 1e308, -1e308, 5e-324])
    | st.sampled_from([math.inf, -math.inf, math.nan])  # sent as JSON's Infinity and NaN
    | st.integers()
    | st.floats()
)
ANY_VALUE = st.none() | NUMBERS | NASTY_TEXT | TIMES | st.lists(st.integers(), max_size=3)
LEAD_FIELDS = {
    "lead_id": NASTY_TEXT,
    "created_at": TIMES,
    "source": NASTY_TEXT,
    "lead_type": NASTY_TEXT,
    "industry": NASTY_TEXT,
    "country": NASTY_TEXT,
    "seniority": NASTY_TEXT,
    "company_size": NUMBERS,
    "page_views": NUMBERS,
    "email_opens": NUMBERS,
    "form_fills": NUMBERS,
    "days_since_first_touch": NUMBERS,
    "demo_requested": NUMBERS | st.sampled_from(["true", "yes", 1, 0]),
    "email": NASTY_TEXT,
    "full_name": NASTY_TEXT,
}
EVENT_FIELDS = {
    "event_id": NASTY_TEXT,
    "lead_id": NASTY_TEXT,
    "outcome": NASTY_TEXT | st.sampled_from(["WON", "won ", "closed"]),
    "occurred_at": TIMES,
    "amount": NUMBERS,
    "reason": NASTY_TEXT,
    "sequence": NUMBERS,
}


def hostile(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """One to three fields, each a hostile value of its kind or any value at all."""
    names = st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3, unique=True)
    return names.flatmap(
        lambda chosen: st.fixed_dictionaries({name: fields[name] | ANY_VALUE for name in chosen})
    )


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response | None:
    """The server's answer, or None if the connection broke before one came."""
    # Python's json writes inf and nan as Infinity and NaN, which the server's parser reads.
    content = json.dumps(body, allow_nan=True)
    try:
        return client.post(path, content=content, headers={"content-type": "application/json"})
    except httpx.TransportError:
        return None


def fuzz(service: Service, key: str, counts: Counter[str], found: list[str]) -> None:
    numbered = iter(range(10**9))

    def classify(route: str, body: dict[str, Any], response: httpx.Response | None) -> None:
        if response is None:
            counts[f"{route} no answer"] += 1
            found.append(f"POST /v1/{route} {json.dumps(body)[:300]} -> connection broken")
            return
        status, bad = response.status_code, response.status_code >= 500
        if status == 200 and route == "scores":
            finite = all(math.isfinite(s["probability"]) for s in response.json()["scores"])
            counts[f"{route} 200 finite" if finite else f"{route} 200 not finite"] += 1
            bad = not finite
        else:
            counts[f"{route} {status // 100}xx"] += 1
        if bad:
            found.append(
                f"POST /v1/{route} {json.dumps(body)[:300]} -> {status} {response.text[:200]}"
            )

    # A connection per request: an answer that ends the connection cannot hit the next one.
    with service.client(key, limits=httpx.Limits(max_keepalive_connections=0)) as client:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(changes=hostile(LEAD_FIELDS))
        def leads(changes: dict[str, Any]) -> None:
            lead = {
                "lead_id": f"hostile-{next(numbered)}",
                "created_at": "2026-10-01T09:00:00Z",
                "source": "webinar",
            } | changes
            body = {"leads": [lead]}
            classify("scores", body, post(client, "/v1/scores", body))

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(changes=hostile(EVENT_FIELDS))
        def outcomes(changes: dict[str, Any]) -> None:
            event = {
                "event_id": f"hostile-{next(numbered)}",
                "lead_id": "demo-000001",
                "outcome": "won",
                "occurred_at": "2026-11-01T12:00:00Z",
                "amount": 5000,
            }
            body = {"outcomes": [event | changes]}
            classify("outcomes", body, post(client, "/v1/outcomes", body))

        leads()
        outcomes()


def loop_still_runs(service: Service) -> tuple[bool, str]:
    """`train` and `report`, the services as `tests.support` wires them, on the fuzzed store."""
    settings = Settings(**service.settings)
    sessions = open_store(settings.database_url)
    try:
        run = train(settings, sessions, datetime.now(UTC))
        written = report(settings, sessions, settings.reports_dir)
    except Exception as exc:  # the figure reports any failure, whatever it is
        return False, f"failed: {type(exc).__name__}: {exc}"
    finally:
        sessions.kw["bind"].dispose()
    return True, (
        f"`train` succeeded (version {run.model_version}, {run.card.model_kind}, "
        f"{run.card.n_train:,} training leads) and `report` succeeded ({len(written.reports)} "
        f"reports, {len(written.alerts)} alerts)"
    )


def measure(directory: Path) -> Figure:
    rows, found, afterwards, results, holds = [], [], [], [], True
    for kind in ("sqlite", "postgresql"):
        counts: Counter[str] = Counter()
        with store(kind, directory / kind) as url, Service(directory / kind, url) as service:
            service.seed(LEADS, seed=3)
            key = service.create_key("hostile", "admin")
            service.start()
            fuzz(service, key, counts, found)
            service.stop()
            loop_ok, loop = loop_still_runs(service)
        afterwards.append(f"{kind}: {loop}")
        holds &= loop_ok
        for route in ("scores", "outcomes"):
            ok = counts[f"{route} 200 finite" if route == "scores" else f"{route} 2xx"]
            fours, fives = counts[f"{route} 4xx"], counts[f"{route} 5xx"]
            not_finite = counts[f"{route} 200 not finite"]
            broken = counts[f"{route} no answer"]
            sent = sum(n for name, n in counts.items() if name.startswith(route))
            rows.append(
                f"| {kind} | `POST /v1/{route}` | {sent:,} | {ok:,} | {fours:,} | {fives} "
                f"| {not_finite} | {broken} |"
            )
            results.append(f"{kind} {route}: {ok}/{fours}/{fives}")
            holds &= fives == 0 and not_finite == 0 and broken == 0
    details = [
        f"{EXAMPLES:,} requests per route and store, each a valid lead or outcome (for a demo "
        "lead) with one to three fields replaced by a hostile value of the field's kind or by "
        "any value at all: times out of range, overflowing, impossible or of any zone; ids and "
        "categories with control characters, lone surrogates, a right-to-left override, a BOM, "
        "10,000 characters; integers past 64 bits, -0.0, 1e308, the smallest subnormal, "
        "Infinity and NaN (JSON's extensions, which Python's parser reads); booleans where "
        "numbers go and numbers where a boolean goes; unseen categories; lists. A store of "
        f"{LEADS:,} demo leads, served by the rules score; a new connection for each request.",
        "",
        "| store | route | requests | 200 (leads: with a finite score) | 4xx | 5xx "
        "| 200 without a finite score | no answer (connection broken) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "Afterwards, with the server stopped, on the same stores:",
        *[f"- {line}" for line in afterwards],
    ]
    if found:
        details += ["", "Requests answered 5xx, without a finite score, or not at all:", ""]
        details += [f"- `{line}`" for line in found[:10]]
    result = (
        "; ".join(results)
        + " (200/4xx/5xx); "
        + (
            "train and report succeed"
            if all("failed" not in a for a in afterwards)
            else "train or report FAIL"
        )
    )
    return Figure(3, "hostile values through the API", result, holds, details)
