"""Figure 1: schemathesis on the OpenAPI document of a running `leadloop serve`, on SQLite and
PostgreSQL: valid and invalid requests to every operation with an admin key, each answer
checked for a 5xx, a status the document does not list, and a body that does not match it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import response_schema_conformance, status_code_conformance
from schemathesis.core.failures import Failure, FailureGroup

from benchmarks.reliability import Figure
from benchmarks.service import Service, store

EXAMPLES = 1_000
#: Requests shown per kind of failure in the details.
SHOWN = 3


def fuzz_operation(
    operation: schemathesis.APIOperation, service: Service, key: str, found: list[str]
) -> Counter[str]:
    """`EXAMPLES` generated requests to `operation`: counts of cases, statuses and failures."""
    headers = {"Authorization": f"Bearer {key}"}
    counts: Counter[str] = Counter()
    session = requests.Session()
    cases = st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE, headers=headers),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE, headers=headers),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def send(case: schemathesis.Case) -> None:
        response = case.call(base_url=service.url, session=session, headers=headers)
        counts["cases"] += 1
        counts[f"status {response.status_code}"] += 1
        if response.status_code >= 500:
            counts["server errors"] += 1
            found.append(_shown(case, response, "5xx"))
        try:
            case.validate_response(
                response, checks=[status_code_conformance, response_schema_conformance]
            )
        except (Failure, FailureGroup) as failure:
            counts["schema violations"] += 1
            found.append(_shown(case, response, str(failure).splitlines()[0]))

    send()
    session.close()
    return counts


def _shown(case: schemathesis.Case, response: requests.Response, what: str) -> str:
    body = case.body if isinstance(case.body, (bytes, str, dict, list)) else None
    return (
        f"{what}: {case.method} {case.formatted_path} body {body!r:.300} -> "
        f"{response.status_code} {response.text!r:.300}"
    )


def fuzz_backend(kind: str, directory: Path) -> tuple[dict[str, Counter[str]], list[str]]:
    with store(kind, directory) as url, Service(directory, url) as service:
        service.seed(400, seed=9)
        service.cli("report")  # so that /v1/alerts answers what a report wrote
        key = service.create_key("fuzz", "admin")
        service.start()
        schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
        found: list[str] = []
        per_operation = {}
        for result in schema.get_all_operations():
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            per_operation[label] = fuzz_operation(operation, service, key, found)
        return per_operation, found


def measure(directory: Path) -> Figure:
    rows, found, totals = [], [], Counter[str]()
    for kind in ("sqlite", "postgresql"):
        per_operation, failures = fuzz_backend(kind, directory / kind)
        found += [f"{kind}: {line}" for line in failures]
        for label, counts in per_operation.items():
            totals.update({f"{kind} {k}": v for k, v in counts.items()})
            statuses = ", ".join(
                f"{name.split()[1]}: {n:,}"
                for name, n in sorted(counts.items())
                if name.startswith("status")
            )
            rows.append(
                f"| {kind} | `{label}` | {counts['cases']:,} | {counts['server errors']} "
                f"| {counts['schema violations']} | {statuses} |"
            )
    summary = "; ".join(
        f"{kind}: {totals[f'{kind} cases']:,} cases, {totals[f'{kind} server errors']} "
        f"server errors, {totals[f'{kind} schema violations']} schema violations"
        for kind in ("sqlite", "postgresql")
    )
    failures = totals["sqlite server errors"] + totals["postgresql server errors"]
    failures += totals["sqlite schema violations"] + totals["postgresql schema violations"]
    shown = _first_of_each_kind(found)
    details = [
        f"Up to {EXAMPLES:,} requests per operation (Hypothesis stops sooner when an operation "
        "has fewer distinct inputs: the routes without parameters take one), half drawn from "
        "what the document allows and half from what it refuses, each with an admin key, "
        "against `leadloop serve` on a store of 400 demo leads served by the rules score, with "
        "the reports of `leadloop report` written. "
        "A schema violation is a status the document does not list for the operation, or a "
        "body that does not match the listed one.",
        "",
        "| store | operation | cases | server errors | schema violations | statuses |",
        "| --- | --- | ---: | ---: | ---: | --- |",
        *rows,
    ]
    if shown:
        details += ["", "Failures (the first of each kind):", ""] + [
            f"- `{line}`" for line in shown
        ]
    return Figure(1, "schemathesis on the OpenAPI document", summary, failures == 0, details)


def _first_of_each_kind(found: list[str]) -> list[str]:
    kinds: Counter[str] = Counter()
    shown = []
    for line in found:
        kind = line.split(" body ")[0]
        kinds[kind] += 1
        if kinds[kind] <= SHOWN:
            shown.append(line)
    return shown
