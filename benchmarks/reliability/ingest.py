"""Figure 4: ingest tells the truth under duplicates, conflicts, races and disorder.

- 20 clients post the same outcome at the same instant (10 rounds, SQLite and PostgreSQL): one
  row, 20 equal answers; 20 clients post one `event_id` with 20 different payloads: one kept,
  19 answered 409.
- Conflicting replays of stored events (another outcome, amount, time, reason or sequence):
  each a 409, the stored row unchanged.
- Two batches of the same new events posted at once, one in the other's reverse order: both
  answered 200.
- 10,000 leads' outcome histories, with ties in `occurred_at` (numbered by the CRM or not),
  shuffled, a third of the events sent twice, posted in batches by 4 parallel clients; and the
  same histories posted once, in order, to another store. One row per event, no 409 nor 5xx,
  and every lead's final state the same in both (PostgreSQL).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from benchmarks.reliability import Figure
from benchmarks.service import Service, store
from store.outcomes import latest_closing_outcomes
from store.repository import training_frames
from store.tables import OutcomeEvent
from tests.support import open_store

HISTORIES = 10_000
PARALLEL = 20
ROUNDS = 10
CROSSED = 50
CLIENTS = 4
CREATED = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
#: Leads read back through `GET /v1/leads/{id}` from each store, beside the store's own rows.
READ_BACK = 500
#: Times a client sends a batch before it gives up.
RETRIES = 20


def at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def event(event_id: str, lead_id: str, outcome: str, moment: datetime) -> dict[str, Any]:
    return {"event_id": event_id, "lead_id": lead_id, "outcome": outcome, "occurred_at": at(moment)}


def create_leads(client: httpx.Client, lead_ids: list[str]) -> None:
    for start in range(0, len(lead_ids), 1_000):
        leads = [
            {"lead_id": lead_id, "created_at": at(CREATED), "source": "webinar"}
            for lead_id in lead_ids[start : start + 1_000]
        ]
        client.post("/v1/scores", json={"leads": leads}).raise_for_status()


def at_once(client: httpx.Client, bodies: list[dict]) -> list[httpx.Response]:
    """Post `bodies` from as many threads, released together."""
    barrier = threading.Barrier(len(bodies))

    def post(body: dict) -> httpx.Response:
        barrier.wait()
        return client.post("/v1/outcomes", json=body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def rows_of(service: Service, prefix: str) -> int:
    sessions = open_store(service.settings["database_url"])
    try:
        with sessions() as session:
            query = select(func.count()).where(OutcomeEvent.event_id.startswith(prefix))
            return session.scalar(query) or 0
    finally:
        sessions.kw["bind"].dispose()


def races(service: Service, client: httpx.Client) -> dict[str, int]:
    """Parallel duplicates and parallel conflicts, `ROUNDS` times each; then `CROSSED` times,
    two batches of the same 20 new events at once, one in the other's reverse order."""
    create_leads(client, [f"race-{n}" for n in range(ROUNDS)])
    counts: Counter[str] = Counter()
    for n in range(ROUNDS):
        same = {"outcomes": [event(f"dup-{n}", f"race-{n}", "won", CREATED + timedelta(days=9))]}
        answers = at_once(client, [same] * PARALLEL)
        counts["duplicate posts"] += len(answers)
        counts["duplicate answers unlike the first"] += sum(
            a.status_code != 200 or a.json() != answers[0].json() for a in answers
        )
        outcomes = ["won", "lost", "disqualified", "handed_over", "contacted"]
        rivals = [
            {"outcomes": [event(f"rival-{n}", f"race-{n}", outcomes[i % 5], CREATED + days)]}
            for i, days in enumerate(timedelta(days=9 + i) for i in range(PARALLEL))
        ]
        statuses = Counter(a.status_code for a in at_once(client, rivals))
        counts["conflicting posts"] += PARALLEL
        counts["conflicting posts kept"] += statuses[200]
        counts["conflicting posts refused 409"] += statuses[409]
    for n in range(CROSSED):
        events = [
            event(
                f"crossed-{n}-{i}", f"race-{n % ROUNDS}", "contacted", CREATED + timedelta(hours=i)
            )
            for i in range(20)
        ]
        answers = at_once(client, [{"outcomes": events}, {"outcomes": events[::-1]}])
        counts["crossed posts"] += len(answers)
        counts["crossed posts not 200"] += sum(a.status_code != 200 for a in answers)
        counts["crossed posts 5xx"] += sum(a.status_code >= 500 for a in answers)
    counts["rows of duplicated events"] = rows_of(service, "dup-")
    counts["rows of conflicting events"] = rows_of(service, "rival-")
    counts["rows of crossed events"] = rows_of(service, "crossed-")
    return counts


def histories(rng: random.Random) -> tuple[list[str], list[list[dict]], int]:
    """Each lead's outcome events in the CRM's order: lifecycle steps, then one to three
    closing outcomes, some at the same second; half the leads' events numbered by the CRM.
    Also how many leads have a tie."""
    lead_ids, all_events, ties = [], [], 0
    for n in range(HISTORIES):
        lead_id = f"hist-{n:05d}"
        moment = CREATED + timedelta(days=rng.randint(1, 60), seconds=rng.randint(0, 86_399))
        steps = [("handed_over", moment), ("contacted", moment + timedelta(hours=5))]
        closing = moment + timedelta(days=rng.randint(1, 30))
        tied = False
        for n_closing in range(rng.randint(1, 3)):
            if n_closing and rng.random() < 0.4:  # a tie: the same second as the one before
                tied = True
            else:
                closing += timedelta(hours=rng.randint(1, 200))
            steps.append((rng.choice(["won", "lost", "disqualified"]), closing))
        ties += tied
        numbered = rng.random() < 0.5
        events = []
        for i, (outcome, when) in enumerate(steps[rng.randint(0, 2) :]):
            one = event(f"{lead_id}-{i}", lead_id, outcome, when)
            one["sequence"] = i if numbered else None
            one["amount"] = rng.choice([None, 1200.5, 99_000]) if outcome == "won" else None
            events.append(one)
        lead_ids.append(lead_id)
        all_events.append(events)
    return lead_ids, all_events, ties


def post_batches(client: httpx.Client, events: list[dict], rng: random.Random) -> Counter[str]:
    """`events` in batches of 1 to 250, from `CLIENTS` threads, each batch retried until it is
    answered 200, as a webhook sender would: the count of each answer, retries included."""
    batches, start = [], 0
    while start < len(events):
        size = rng.randint(1, 250)
        batches.append({"outcomes": events[start : start + size]})
        start += size
    answers: Counter[str] = Counter()

    def post(batch: dict) -> None:
        for _ in range(RETRIES):
            try:
                status = client.post("/v1/outcomes", json=batch).status_code
            except httpx.TransportError as exc:
                status = type(exc).__name__
            answers[str(status)] += 1
            if status == 200:
                return

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(post, batches))
    answers["batches"] = len(batches)
    return answers


def final_states(service: Service, client: httpx.Client, sample: list[str]) -> dict[str, Any]:
    """Each lead's latest closing event as training reads it, and `sample` as the API does."""
    sessions = open_store(service.settings["database_url"])
    try:
        with sessions() as session:
            frames = training_frames(session)
            rows = session.scalar(
                select(func.count()).where(OutcomeEvent.event_id.startswith("hist-"))
            )
    finally:
        sessions.kw["bind"].dispose()
    latest = latest_closing_outcomes(frames.outcomes)
    trained = dict(zip(latest["lead_id"], latest["event_id"], strict=True))
    read = {lead: client.get(f"/v1/leads/{lead}").json()["outcome"]["event_id"] for lead in sample}
    return {"rows": rows, "trained": trained, "read": read}


def orders(directory: Path) -> dict[str, int]:
    rng = random.Random(4)
    lead_ids, events_by_lead, ties = histories(rng)
    in_order = [e for events in events_by_lead for e in events]
    shuffled = in_order + rng.sample(in_order, len(in_order) // 3)
    rng.shuffle(shuffled)
    sample = rng.sample(lead_ids, READ_BACK)
    states, statuses = {}, {}
    for name, events in (("in order", in_order), ("shuffled", shuffled)):
        with store("postgresql", directory) as url, Service(directory / name, url) as service:
            service.seed(400, seed=9)
            key = service.create_key("ingest", "admin")
            service.start()
            with service.client(key, timeout=120) as client:
                create_leads(client, lead_ids)
                if name == "shuffled":
                    statuses[name] = post_batches(client, events, rng)
                else:
                    statuses[name] = Counter(
                        # keyed by text, as post_batches counts (a refusal's name is text)
                        str(client.post("/v1/outcomes", json={"outcomes": batch}).status_code)
                        for batch in (events[i : i + 250] for i in range(0, len(events), 250))
                    )
                states[name] = final_states(service, client, sample)
    expected, got = states["in order"], states["shuffled"]
    return {
        "events": len(in_order),
        "posted": len(shuffled),
        "ties": ties,
        "rows in order": expected["rows"],
        "rows shuffled": got["rows"],
        "batches shuffled": statuses["shuffled"].pop("batches"),
        "answers shuffled": statuses["shuffled"],
        "answers in order": statuses["in order"],
        "closed leads": sum(lead in expected["trained"] for lead in lead_ids),
        "final state mismatches": sum(
            expected["trained"].get(lead) != got["trained"].get(lead) for lead in lead_ids
        ),
        "read-back mismatches": sum(expected["read"][lead] != got["read"][lead] for lead in sample),
    }


def conflicts(client: httpx.Client) -> dict[str, int]:
    """Stored events posted again with one part of their payload changed."""
    create_leads(client, ["conflict-lead"])
    original = event("conflict-0", "conflict-lead", "won", CREATED + timedelta(days=3))
    original |= {"amount": 1000, "reason": "budget approved", "sequence": 7}
    client.post("/v1/outcomes", json={"outcomes": [original]}).raise_for_status()
    changes = [
        {"outcome": "lost"},
        {"amount": 1000.01},
        {"occurred_at": at(CREATED + timedelta(days=3, seconds=1))},
        {"reason": "budget approved."},
        {"sequence": 8},
        {"sequence": None},
        {"lead_id": "race-0"},
    ]
    statuses = Counter(
        client.post("/v1/outcomes", json={"outcomes": [original | change]}).status_code
        for change in changes
    )
    kept = client.get("/v1/leads/conflict-lead").json()["outcome"]
    return {
        "conflicting replays": len(changes),
        "answered 409": statuses[409],
        "stored event changed": int(kept["outcome"] != "won" or kept["amount"] != 1000),
    }


def measure(directory: Path) -> Figure:
    lines, holds, totals = [], True, Counter[str]()
    for kind in ("sqlite", "postgresql"):
        with store(kind, directory / kind) as url, Service(directory / kind, url) as service:
            service.seed(400, seed=9)
            key = service.create_key("ingest", "admin")
            service.start()
            with service.client(key) as client:
                raced = races(service, client)
                conflicted = conflicts(client)
        totals.update(raced)
        totals.update(conflicted)
        holds &= raced["duplicate answers unlike the first"] == 0
        holds &= raced["rows of duplicated events"] == ROUNDS
        holds &= raced["conflicting posts kept"] == ROUNDS
        holds &= raced["conflicting posts refused 409"] == ROUNDS * (PARALLEL - 1)
        holds &= raced["rows of conflicting events"] == ROUNDS
        holds &= conflicted["answered 409"] == conflicted["conflicting replays"]
        holds &= conflicted["stored event changed"] == 0
        holds &= (
            raced["crossed posts not 200"] == 0 and raced["rows of crossed events"] == 20 * CROSSED
        )
        lines.append(
            f"| {kind} | {raced['duplicate posts']} posts of {ROUNDS} events, {PARALLEL} at once: "
            f"{raced['rows of duplicated events']} rows, "
            f"{raced['duplicate answers unlike the first']} answers unlike the first "
            f"| {raced['conflicting posts']} posts of {ROUNDS} event ids, {PARALLEL} payloads at "
            f"once: {raced['conflicting posts kept']} kept, "
            f"{raced['conflicting posts refused 409']} answered 409, "
            f"{raced['rows of conflicting events']} rows "
            f"| {conflicted['conflicting replays']} sent, {conflicted['answered 409']} answered "
            f"409, {conflicted['stored event changed']} stored events changed "
            f"| {raced['crossed posts']} posts: {raced['crossed posts not 200']} not answered "
            f"200 ({raced['crossed posts 5xx']} of them 5xx); {raced['rows of crossed events']} "
            f"rows of {20 * CROSSED} events |"
        )
    ordered = orders(directory / "histories")
    mismatches = ordered["final state mismatches"] + ordered["read-back mismatches"]
    not_200 = {
        name: sum(n for status, n in ordered[f"answers {name}"].items() if status != "200")
        for name in ("in order", "shuffled")
    }
    holds &= mismatches == 0 and not_200["in order"] == not_200["shuffled"] == 0
    holds &= ordered["rows shuffled"] == ordered["rows in order"] == ordered["events"]
    details = [
        f"Crossed batches: {CROSSED} times, two batches of the same 20 new events posted at "
        "once, one in the reverse order of the other (a CRM's retry racing its original, "
        "re-sorted).",
        "",
        "| store | parallel duplicates | parallel conflicts | conflicting replays "
        "| crossed batches |",
        "| --- | --- | --- | --- | --- |",
        *lines,
        "",
        f"{HISTORIES:,} leads' histories (PostgreSQL): {ordered['events']:,} events (lifecycle "
        "steps, then one to three closing outcomes; half the leads' events numbered by the CRM; "
        f"{ordered['ties']:,} leads with two closing outcomes in the same second), posted once "
        f"in order to one store, and shuffled with a third sent twice ({ordered['posted']:,} "
        f"events, {ordered['batches shuffled']} batches of 1 to 250 from {CLIENTS} parallel "
        "clients) to another:",
        "",
        f"- rows: {ordered['rows in order']:,} in order, {ordered['rows shuffled']:,} shuffled "
        f"({ordered['events']:,} events)",
        "- answers: in order "
        + _answers(ordered["answers in order"])
        + "; shuffled "
        + _answers(ordered["answers shuffled"])
        + f" (a batch not answered 200 is sent again, up to {RETRIES} times)",
        f"- final states (the latest closing event training reads, {ordered['closed leads']:,} "
        f"closed leads): {ordered['final state mismatches']} differ; read back through "
        f"`GET /v1/leads/{{id}}` for {READ_BACK} leads: {ordered['read-back mismatches']} differ",
    ]
    refused = totals["conflicting posts refused 409"] + totals["answered 409"]
    should = totals["conflicting posts"] - 2 * ROUNDS + totals["conflicting replays"]
    result = (
        f"{PARALLEL} at once: {totals['rows of duplicated events']} rows for "
        f"{2 * ROUNDS} duplicated events; conflicts: {refused} of {should} answered 409; "
        f"crossed batches: {totals['crossed posts not 200']} of {totals['crossed posts']} not "
        "answered 200; "
        f"{ordered['events']:,} events shuffled and duplicated: {ordered['rows shuffled']:,} "
        f"rows, {mismatches} final-state mismatches, {not_200['shuffled']} answers not 200"
    )
    return Figure(4, "duplicates, conflicts and order", result, holds, details)


def _answers(counts: Counter[str]) -> str:
    return ", ".join(f"{n:,} x {status}" for status, n in sorted(counts.items()))
