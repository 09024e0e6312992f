"""`make reliability`: leadloop probed from outside, as an attacker and a careless client would,
each figure measured on real `leadloop serve` processes on loopback, in one run. Writes
`reports/bench/reliability.md`.

Each figure is a module of `benchmarks/reliability/` with a `measure(directory)` returning a
`Figure`; `FIGURES` lists them in the table's order.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import TABLES, Contention, commit, machine, write_table
from benchmarks.reliability import (
    Figure,
    auth_matrix,
    crash,
    hostile_values,
    hot_swap,
    ingest,
    limits,
    pii,
    schema_fuzz,
)
from benchmarks.service import POSTGRES_URL

#: (number, title, how it is measured), in the table's order.
FIGURES: list[tuple[int, str, Callable[[Path], Figure]]] = [
    (1, "schemathesis on the OpenAPI document", schema_fuzz.measure),
    (2, "the auth matrix", auth_matrix.measure),
    (3, "hostile values through the API", hostile_values.measure),
    (4, "duplicates, conflicts and order", ingest.measure),
    (5, "crash safety (PostgreSQL)", crash.measure),
    (6, "hot swap", hot_swap.measure),
    (7, "PII canaries", pii.measure),
    (8, "limits", limits.measure),
]


def run(number: int, title: str, measure: Callable[[Path], Figure], directory: Path) -> Figure:
    print(f"figure {number}: {title}", flush=True)
    started = time.perf_counter()
    try:
        figure = measure(directory / f"figure-{number}")
    except Exception as exc:  # one figure's failure is reported; the others are still measured
        figure = Figure(number, title, f"FAILED: {type(exc).__name__}: {exc}", False)
        figure.details = ["```", traceback.format_exc().rstrip(), "```"]
    figure.seconds = time.perf_counter() - started
    print(f"  {figure.result} ({figure.seconds:.0f} s)", flush=True)
    return figure


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="leadloop-reliability-") as tmp, Contention() as load:
        figures = [run(n, title, measure, Path(tmp)) for n, title, measure in FIGURES]
    verdict = {True: "yes", False: "**no**", None: "–"}
    text = [
        "# Reliability",
        "",
        f"Written by `make reliability` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in "
        f"{time.perf_counter() - started:.0f} s, every figure from this one run, on commit "
        f"{commit()}. Machine: {machine()}. PostgreSQL at `{POSTGRES_URL}`.",
        "",
        f"Contention during the run: {load.describe()}.",
        "",
        "Each figure runs `leadloop serve` as a subprocess on a loopback port, its settings in "
        "`LEADLOOP_*` variables (`LEADLOOP_ENV=production` with a PII key of its own), its keys "
        "made by `leadloop keys create`, its store a new SQLite file or PostgreSQL database "
        "seeded by `leadloop demo-data` (no champion: the rules score serves).",
        "",
        "| # | figure | result | holds | time (s) |",
        "| ---: | --- | --- | --- | ---: |",
        *[
            f"| {f.number} | {f.title} | {f.result} | {verdict[f.holds]} | {f.seconds:.0f} |"
            for f in figures
        ],
    ]
    for figure in figures:
        if figure.details:
            text += ["", f"## {figure.number}. {figure.title}", "", *figure.details]
    write_table(TABLES / "reliability.md", [*text, ""])


if __name__ == "__main__":
    main()
